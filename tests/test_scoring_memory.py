"""Scoring in bounded memory, on tiny random causal LMs with a large vocabulary and options of 100+ tokens:
`score_options` and `score` give the numbers of the plain computation (one unpadded sequence, logits at
every position, log_softmax, gather), no forward pass holds more than its token budget, and the process's
peak memory is set by lm.LOGIT_BUDGET, not by rows x length x vocabulary."""

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lib import lm as L

VOCAB = 2**16
ROOT = Path(__file__).resolve().parents[1]


def _tokenizer(vocab: int):
    """Word-level: "w<i>" is token i, so random texts reach every part of the vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<s>", "</s>", "<unk>"]
    words = {w: i for i, w in enumerate(special)} | {f"w{i}": i for i in range(len(special), vocab)}
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def big_vocab_lm(family: str = "llama", vocab: int = VOCAB) -> L.LM:
    """A 2-layer, 16-wide random model; initializer_range 0.5 spreads its logits (at 0.02 every token
    would be about equally likely and a wrong projection could hide in the noise)."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    size = dict(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        initializer_range=0.5,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**size, tie_word_embeddings=True))
    else:  # Gemma 3's soft-capped logits and a sliding-window layer shorter than the options
        cfg = Gemma3TextConfig(
            **size,
            head_dim=8,
            sliding_window=32,
            layer_types=["sliding_attention", "full_attention"],
            final_logit_softcapping=2.0,
        )
        model = Gemma3ForCausalLM(cfg)
    return L.LM(model.eval(), _tokenizer(vocab), name=f"big-vocab-{family}")


def _text(rng: random.Random, n: int, vocab: int = VOCAB) -> str:
    return " ".join(f"w{rng.randrange(4, vocab)}" for _ in range(n))


def _data(n: int, n_opt: tuple[int, int], opt_len: tuple[int, int], seed: int = 0):
    """n prompts of 5-30 tokens, each with n_opt options of opt_len tokens (ranges, inclusive)."""
    rng = random.Random(seed)
    prompts = [_text(rng, rng.randint(5, 30)) for _ in range(n)]
    options = [
        [" " + _text(rng, rng.randint(*opt_len)) for _ in range(rng.randint(*n_opt))] for _ in range(n)
    ]
    return prompts, options


def plain_logprobs(lm: L.LM, prompt: str, cont: str) -> torch.Tensor:
    """The plain computation: one unpadded sequence, logits at every position, log_softmax, gather."""
    p, c = lm.prompt_ids(prompt), lm.encode(cont)
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([p + c])).logits[0]
    lp = torch.log_softmax(logits.float(), -1)[len(p) - 1 : len(p) + len(c) - 1]
    return lp.gather(-1, torch.tensor(c)[:, None])[:, 0]


def _record_passes(lm: L.LM) -> tuple[list[int], object]:
    """rows x padded length (a cached prompt included: the attention mask spans it) of every forward pass."""
    seen = []
    hook = lm.model.get_decoder().register_forward_pre_hook(
        lambda m, args, kw: seen.append(kw["attention_mask"].numel()), with_kwargs=True
    )
    return seen, hook


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_bounded_scores_equal_the_plain_computation_within_the_token_budget(family):
    lm = big_vocab_lm(family)
    prompts, options = _data(8, n_opt=(2, 4), opt_len=(100, 110))
    want = [[plain_logprobs(lm, p, o) for o in os] for p, os in zip(prompts, options)]
    flat_p = [p for p, os in zip(prompts, options) for _ in os]
    flat_o = [o for os in options for o in os]
    for budget in (600, L.TOKEN_BUDGET):  # 600: 4 rows of ~140 tokens a pass, prompts split from options
        seen, hook = _record_passes(lm)
        try:
            got = lm.score_options(prompts, options, batch_size=64, token_budget=budget)
            seq = lm.score(flat_p, flat_o, batch_size=64, token_budget=budget)
        finally:
            hook.remove()
        assert max(seen) <= budget and (budget == L.TOKEN_BUDGET or len(seen) > 10)
        it = iter(seq)
        for per, ref in zip(got, want):
            assert len(per) == len(ref)
            for g, r in zip(per, ref):
                assert len(r) >= 100
                torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-5)
                torch.testing.assert_close(next(it), r, atol=1e-4, rtol=1e-5)


# The bound on the peak memory scoring adds to the process. The scoring below (64 option rows of 104 tokens,
# then the same 64 as full sequences, as TA confidence scores rationales) projects LOGIT_BUDGET = 2^26 logits
# at a time: one fp32 buffer of 256 MiB, turned into its logsumexp in place; the model is 16 wide, so its
# activations, KV cache and target hidden states for TOKEN_BUDGET tokens are a few MiB: 64 MiB covers them
# and the allocator. The plain computation holds rows x length x vocabulary fp32 logits,
# 64 x 104 x 65,536 x 4 B = 1.7 GiB, twice (logits and log_softmax).
PEAK_BOUND_MIB = 256 + 64


def _status_kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def peak_scoring_mib(logit_budget: int = L.LOGIT_BUDGET) -> float:
    """Peak RSS added by scoring, in MiB: the process's RSS high-water mark, reset to the current RSS
    right before scoring (writing 5 to clear_refs), minus that RSS. (ru_maxrss would not do: a child
    starts with its parent's RSS at fork as its maximum.)"""
    torch.set_num_threads(1)
    L.LOGIT_BUDGET = logit_budget
    lm = big_vocab_lm()
    prompts, options = _data(32, n_opt=(2, 2), opt_len=(104, 104))
    lm.score_options(prompts[:1], options[:1])  # lazily built kernels and allocator pools count in the base
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS")
    lm.score_options(prompts, options, batch_size=64)
    lm.score([p for p, os in zip(prompts, options) for _ in os], [o for os in options for o in os], 64)
    return (_status_kib("VmHWM") - base) / 1024


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's RSS high-water reset")
def test_peak_memory_of_scoring_is_set_by_the_logit_budget():
    code = "from tests.test_scoring_memory import peak_scoring_mib; print(peak_scoring_mib())"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    peak = float(run.stdout.split()[-1])
    assert peak <= PEAK_BOUND_MIB, f"scoring added {peak:.0f} MiB, bound {PEAK_BOUND_MIB} MiB"
