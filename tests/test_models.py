import pytest
import torch

from lib import models as M
from lib.common import ReproError

from .conftest import needs_assets

PROMPTS = [
    "Question: Is 3 larger than 2?\nAnswer:",
    "Question: Which of these is a color? It is a long question indeed.\nAnswer:",
    "Q:",
]
CONTS = [" yes", " red and blue", " no no no no"]


def hand_logprobs(lm, prompt, cont):
    """Per-token log-probs computed the plain way: one sequence, no padding, explicit loop over positions."""
    p = lm.prompt_ids(prompt)
    c = lm.encode(cont)
    with torch.no_grad():
        if lm.arch == "causal":
            logits = lm.model(input_ids=torch.tensor([p + c])).logits[0]
            return torch.stack([torch.log_softmax(logits[len(p) + j - 1], -1)[t] for j, t in enumerate(c)])
        dec = [lm.model.config.decoder_start_token_id] + c[:-1]
        logits = lm.model(input_ids=torch.tensor([p]), decoder_input_ids=torch.tensor([dec])).logits[0]
        return torch.stack([torch.log_softmax(logits[j], -1)[t] for j, t in enumerate(c)])


def test_score_equals_hand_computation(tiny_lm):
    got = tiny_lm.score(PROMPTS, CONTS)
    for g, p, c in zip(got, PROMPTS, CONTS):
        torch.testing.assert_close(g, hand_logprobs(tiny_lm, p, c), atol=1e-5, rtol=1e-5)


def test_padding_and_batch_composition_never_change_a_score(tiny_lm):
    alone = [tiny_lm.score([p], [c])[0] for p, c in zip(PROMPTS, CONTS)]
    together = tiny_lm.score(PROMPTS * 3, CONTS * 3, batch_size=4)
    for i, t in enumerate(together):
        torch.testing.assert_close(t, alone[i % 3], atol=1e-5, rtol=1e-5)


OPTIONS = [[" yes", " no", " maybe not today"], [" red", " a dog and a cat"], [" x", " y y", " z z z", " w"]]


def test_shared_prefix_option_scores_equal_hand_computation_in_any_batch(tiny_lm, tiny_seq2seq):
    # KV-shared scoring (one prompt pass, options share its cache; prompts left-padded with explicit position
    # ids) must give each option exactly the hand-computed log-probs, whatever the batch around it
    for lm in (tiny_lm, tiny_seq2seq):
        for bs in (1, 4, 64):
            got = lm.score_options(PROMPTS * 2, OPTIONS * 2, batch_size=bs)
            for i, per in enumerate(got):
                assert len(per) == len(OPTIONS[i % 3])
                for g, c in zip(per, OPTIONS[i % 3]):
                    torch.testing.assert_close(g, hand_logprobs(lm, PROMPTS[i % 3], c), atol=1e-5, rtol=1e-5)


def test_greedy_generate_batched_equals_one_by_one(tiny_lm):
    batched = tiny_lm.generate(PROMPTS, max_new_tokens=12, stop=())
    single = [tiny_lm.generate([p], max_new_tokens=12, stop=())[0] for p in PROMPTS]
    assert batched == single


def test_sampling_returns_k_per_prompt_and_is_seeded(tiny_lm):
    a = tiny_lm.generate(PROMPTS, max_new_tokens=6, do_sample=True, num_return_sequences=3, seed=1)
    b = tiny_lm.generate(PROMPTS, max_new_tokens=6, do_sample=True, num_return_sequences=3, seed=1)
    assert len(a) == 3 and all(len(x) == 3 for x in a) and a == b


def test_shared_prefill_sampling_draws_the_same_samples_as_plain_generate(tiny_lm):
    if tiny_lm.arch != "causal":
        pytest.skip("prefill sharing is for causal models")
    kw = dict(max_new_tokens=8, do_sample=True, temperature=1.0, num_return_sequences=4, seed=3, stop=())
    shared = tiny_lm.generate(PROMPTS, **kw)
    tiny_lm.share_prefill = False
    try:
        plain = tiny_lm.generate(PROMPTS, **kw)
    finally:
        tiny_lm.share_prefill = True
    assert shared == plain


FEWSHOT = "".join(f"Question: what is {i} plus {i}?\nAnswer: {2 * i}.\n\n" for i in range(6))


def varied_tiny_llama():
    """tiny-llama with weights redrawn at a larger scale: the random checkpoint greedily repeats one token
    whatever its prompt, so no comparison of greedy text could fail on it."""
    lm = M.load_model("tiny-llama")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in lm.model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.ndim == 1 else 0.0))
    return lm


def test_greedy_prompts_sharing_a_few_shot_prefix_generate_the_same_text_with_it_run_once(monkeypatch):
    # the prefix runs once and its rows are [prefix][pads][rest]: each row must see the same tokens at the
    # same positions as the plain left-padded path, so greedy text is the same, in any batch
    from lib.lm import SHARED_ROWS

    lm = varied_tiny_llama()
    prompts = [FEWSHOT + p for p in PROMPTS * 3]  # 6 shots: a common prefix far above SHARED_PREFIX_MIN
    calls = []
    real = lm.model.generate
    monkeypatch.setattr(lm.model, "generate", lambda **kw: calls.append(len(kw["input_ids"])) or real(**kw))
    shared = lm.generate(prompts, max_new_tokens=12, stop=(), batch_size=2)
    assert calls == [2 * SHARED_ROWS, 9 - 2 * SHARED_ROWS]  # SHARED_ROWS x batch_size rows per pass
    lm.share_prefill = False
    plain = lm.generate(prompts, max_new_tokens=12, stop=(), batch_size=2)
    assert calls[2:] == [2, 2, 2, 2, 1]
    alone = [lm.generate([p], max_new_tokens=12, stop=())[0] for p in prompts]
    assert len(set(shared)) == 3  # the text depends on the prompt
    assert shared == plain == alone


def test_a_training_step_lowers_the_loss(tiny_lm):
    model = tiny_lm.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    before = tiny_lm.loss(PROMPTS, CONTS)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = tiny_lm.loss(PROMPTS, CONTS)
    model.load_state_dict(state)
    model.eval()
    assert after < before


def test_weights_select_examples(tiny_lm):
    with torch.no_grad():
        only_first = tiny_lm.loss(PROMPTS, CONTS, weights=torch.tensor([3.0, 0.0, 0.0]))
        first = tiny_lm.loss(PROMPTS[:1], CONTS[:1])
    torch.testing.assert_close(only_first, first)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ReproError, match="unknown model 'gpt5'; valid: .*smollm2-135m-instruct"):
        M.load_model("gpt5")


def test_local_checkpoint_loads_like_a_hub_id(tmp_path, tiny_seq2seq):
    """The paper preset's from_pretrained path, on a tiny local checkpoint in hub layout."""
    tiny_seq2seq.model.save_pretrained(tmp_path)
    tiny_seq2seq.tok.save_pretrained(tmp_path)
    lm = M.load_model(str(tmp_path))
    assert lm.arch == "seq2seq"
    torch.testing.assert_close(lm.score(PROMPTS, CONTS)[0], tiny_seq2seq.score(PROMPTS, CONTS)[0])


@needs_assets
def test_a_gguf_build_parses_the_file_once(tmp_path, monkeypatch):
    """The tokenizer, config and weights of a GGUF build share one parse of the file (a parse of Gemma's
    vocabulary is ~20 s); the round trip below checks the weights it builds."""
    import gguf

    parses = []

    class Counting(gguf.GGUFReader):
        def __init__(self, path, *args, **kw):
            parses.append(str(path))
            super().__init__(path, *args, **kw)

    monkeypatch.setattr(gguf, "GGUFReader", Counting)
    M._build_from_gguf(M.REGISTRY["smollm2-135m-instruct"], tmp_path)
    assert len(parses) == 1 and (tmp_path / "model.safetensors").exists()
    assert gguf.GGUFReader is Counting  # the build puts the module's reader back


@needs_assets
def test_gguf_cache_round_trips_to_identical_logits():
    from transformers import AutoModelForCausalLM

    spec = M.REGISTRY["smollm2-135m-instruct"]
    gguf = M.cache_dir() / "assets" / spec.where[0] / spec.where[1]
    direct = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    cached = M.load_model("smollm2-135m-instruct")
    ids = cached.tok(["Question: Where do fish live?\nAnswer: in water"], return_tensors="pt")
    with torch.no_grad():
        a = direct(**ids).logits
        b = cached.model(**ids).logits
    assert torch.equal(a, b)
