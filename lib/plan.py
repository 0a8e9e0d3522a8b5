"""`make plan`: every hot path of a preset run once at full scale on PyTorch's meta device, and what the
whole preset costs.

Dry run. Every model of the preset is built from its real configuration (lib/model_configs/<name>/config.json,
the hub's config.json; no weights, no tokenizer) on the meta device, in the dtype lib.models loads it in,
and every hot path of every notebook runs once at the preset's batch sizes and sequence lengths: teacher
generation (prefill and KV-cache decode steps), TA scoring, self-consistency sampling, option scoring,
attribution (forward and backward to the input embeddings), the student's training step (forward, backward,
AdamW) and the encoder student's. Meta tensors hold shapes and dtypes, no data, so a shape or dtype error at
full scale fails here in seconds, on a laptop. Meta tensors check no index, so sequence lengths are checked
against each model's position limit explicitly. Batches are unpadded (every row at the assumed length),
so no attention mask is passed; a padded batch of the same shape costs the same FLOPs.

Measured on meta: FLOPs (torch.utils.flop_counter.FlopCounterMode: matmuls and attention, not elementwise
ops such as AdamW's ~12 per parameter, < 0.1 % of a step here); peak memory, the bytes of every tensor a
path allocates, tracked while alive (a dispatch mode releasing each storage when it is freed: activations,
logits, KV cache, gradients, AdamW state), on top of the weights; and the aten ops dispatched, which bound
eager PyTorch's host time. Decoding is measured at its first and its last step, at full cache length: a
step's FLOPs are linear in the cache length, so (first + last) / 2 per step is exact.

Cost model. The grid of `make reproduce` at the preset (datasets, caps, seeds, methods, budgets, epochs,
ablations: lib/config.py PRESETS), cold, each notebook reusing what an earlier one cached (teacher outputs,
attributions and runs are cached per example or per run, so a notebook pays only for what is new), counted
in calls of each path and multiplied by the measured FLOPs. Wall time at stated throughputs: a CPU's fp32
matmul peak (results/bench.md's, or measured here), an H100's dense bf16 peak at a stated utilisation, and
the same with every call taking at least OP_SECONDS per op (small batches leave a GPU waiting for the host).
Where results/<preset>/run_times.md has measured cold times, the report sets the prediction beside them.

What is assumed, in one place below: split sizes of the hub datasets (the paper preset's caps are mostly
None), token lengths of every dataset's questions, options and rationales, few-shot exemplar lengths (from
lib.prompts' exemplars), and that every generation runs to its max_new_tokens (an upper bound: a batch
stops early only when every row has ended).
"""

from __future__ import annotations

import argparse
import copy
import math
import pathlib
import re
import sys
import time
import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch

from .common import ROOT, ReproError, check_choice
from .config import DEFAULTS, get_preset
from .data import EXPECTED_SIZES, HUB, MATH, SPLIT_FRACTIONS
from .lm import SHARED_PREFIX_MIN, SHARED_ROWS
from .models import REGISTRY

CONFIGS = pathlib.Path(__file__).resolve().parent / "model_configs"

# ---------------------------------------------------------------- assumptions (the only place they live)

# the paper preset's hub splits (lib.data.HUB): (train split = the pool, evaluation split = dev + test)
HUB_SPLITS = {
    "commonsense_qa": (9741, 1221),  # tau/commonsense_qa train / validation
    "strategyqa": (1603, 687),  # ChilleD/StrategyQA train / test
    "arc_challenge": (1119, 1172),  # allenai/ai2_arc ARC-Challenge train / test
    "arc_easy": (2251, 2376),
    "openbookqa": (4957, 500),  # allenai/openbookqa main train / test
    "gsm8k": (7473, 1319),  # openai/gsm8k main train / test
    "esnli": (549367, 9824),  # esnli train / test
    "anli": (16946, 1000),  # facebook/anli train_r1 / test_r1
    "svamp": (700, 300),  # ChilleD/SVAMP train / test
}


@dataclass(frozen=True)
class Lengths:
    """Mean token lengths of one dataset's examples (SentencePiece / BPE, about 4 characters a token)."""

    kind: str  # mc | yesno | numeric (lib.data.Example.kind)
    question: int
    n_options: int = 0
    option: int = 0  # one option's text
    rationale: int = 0  # the gold explanation (0: the dataset has none)
    answer: int = 2  # a numeric answer; an option answer is `option` long


LENGTHS = {
    "commonsense_qa": Lengths("mc", 17, 5, 2),
    "strategyqa": Lengths("yesno", 13, 2, 1, rationale=40),
    "arc_challenge": Lengths("mc", 28, 4, 6),
    "arc_easy": Lengths("mc", 24, 4, 5),
    "openbookqa": Lengths("mc", 14, 4, 4),
    "gsm8k": Lengths("numeric", 58, rationale=100),
    "mathqa": Lengths("mc", 45, 5, 4, rationale=20),
    "esnli": Lengths("mc", 42, 3, 3, rationale=16),  # "Premise: ... Hypothesis: ... Does the premise ..."
    "anli": Lengths("mc", 115, 3, 3, rationale=30),
    "svamp": Lengths("numeric", 38, rationale=10),
    "boolq": Lengths("yesno", 150, 2, 1),  # the passage, then the question
    "sciq": Lengths("mc", 20, 4, 2, rationale=80),  # the support passage
    "piqa": Lengths("mc", 12, 2, 20),
    "social_iqa": Lengths("mc", 35, 3, 4),
}
# share of pool questions without a gold rationale where the hub's train split has one only for some rows
# (Distilling Step-by-Step then asks the LM teacher): ANLI's `reason`, assumed absent (an upper bound)
NO_RATIONALE = {"anli": 1.0, "sciq": 1 / 9}
CHARS_PER_TOKEN = 4.0
OPENAI_RATIONALE = 60  # tokens of an API teacher's rationale
# self-consistency samples without a parseable answer, which answer_by="options" scores (an assumption:
# an un-warmed student leaves most unparsed, a warmed one answers in its trained format; notebook 11
# measures it, 11_parse_rate.csv)
UNPARSED = {"unwarmed": 0.75, "warmed": 0.1}
LM_MAX_LEN = 512  # lib.lm.LM cuts prompts to their last 512 tokens
H100_BF16 = 989e12  # dense bf16 FLOP/s (H100 SXM)
# an fp32 matmul without tensor cores (TF32 off, torch's default)
H100_FP32 = 67e12
UTILISATION = 0.30
# eager PyTorch's host time per aten op (Python, dispatcher, kernel launch), whatever the op's size: a call
# takes at least ops x this on a GPU, where small batches leave the GPU waiting for the host
OP_SECONDS = 10e-6

NOTEBOOKS = (
    "00_data_and_models",
    "05_student_recipe",
    "06_premises",
    "10_teacher_annotations",
    "11_signals",
    "12_A_main_table",
    "13_A_ablations",
    "20_influential_tokens",
    "21_B_main_table",
    "22_B_ablations",
    "23_ground_truth",
    "24_B_encoder_student",
    "25_B_ta_weighted_tokens",
    "30_improvement_tables",
)


def shot_tokens(kind: str) -> float:
    """Mean length of one few-shot chain-of-thought exemplar of lib.prompts (the text every shot adds)."""
    from .prompts import FEWSHOT

    texts = [f"Question: {q}\nAnswer: {r} So the answer is {a}.\n\n" for q, r, a in FEWSHOT[kind]]
    return sum(len(t) for t in texts) / len(texts) / CHARS_PER_TOKEN


# ---------------------------------------------------------------- prompt and target lengths (lib.prompts)


def with_options(d: str) -> int:
    """The question as prompts show it: an mc question lists its options ("Options: a, b, c")."""
    L = LENGTHS[d]
    return L.question + (3 + L.n_options * (L.option + 1) if L.kind == "mc" else 0)


def answer_len(d: str) -> int:
    L = LENGTHS[d]
    return L.option if L.n_options else L.answer


def p_answer(d: str) -> int:  # "Question: q\nAnswer:" + a special token
    return LENGTHS[d].question + 5


def few_shot_prefix(d: str, shots: int) -> int:
    """Tokens of the exemplars that open every chain-of-thought prompt of `d` (the same for each question)."""
    return round(shots * shot_tokens(LENGTHS[d].kind))


def p_cot(d: str, shots: int) -> int:
    return min(LM_MAX_LEN, few_shot_prefix(d, shots) + with_options(d) + 5)


def p_attr(d: str, form: str = "text") -> int:  # lib.attribution.build_prompt
    return with_options(d) + 5 + (3 * LENGTHS[d].n_options if form == "letter" else 0)


def p_predict(d: str, hint_k: int = 0) -> int:  # "predict: q[\nHint: words]\nAnswer:"
    return LENGTHS[d].question + 7 + (3 + round(1.5 * hint_k) if hint_k else 0)


def p_explain(d: str) -> int:
    return LENGTHS[d].question + 8


def template_rationale(d: str) -> int:  # lib.teachers._template_rationale
    L = LENGTHS[d]
    return 14 + L.n_options * (L.option + 1)


def demo_rationale(d: str, teacher: str, lm_tokens: int) -> int:
    """Tokens of the rationale in a teacher's demonstration (lib.teachers)."""
    if teacher.startswith("lm:"):
        return lm_tokens
    if teacher.startswith("openai:"):
        return OPENAI_RATIONALE
    return LENGTHS[d].rationale or template_rationale(d)


def demo_len(d: str, teacher: str, lm_tokens: int) -> int:  # rationale + " So the answer is X."
    return demo_rationale(d, teacher, lm_tokens) + 6 + answer_len(d)


# ---------------------------------------------------------------- models on the meta device


def config_dir(name: str) -> pathlib.Path:
    d = CONFIGS / name.replace("/", "--")
    if not (d / "config.json").exists():
        raise ReproError(f"no configuration for model {name!r}: add {d.relative_to(ROOT)}/config.json")
    return d


def arch(name: str) -> str:
    check_choice("model", name, REGISTRY)
    return REGISTRY[name].arch


def max_positions(name: str) -> int | None:
    """The longest sequence the model's position embeddings cover (None: relative positions, no limit)."""
    cfg = model_config(name)
    return None if cfg.model_type == "t5" else getattr(cfg, "max_position_embeddings", None)


_CONFIGS: dict = {}
_BUILT: dict = {}


def model_config(name: str):
    """The model's configuration (lib/model_configs), read once."""
    from transformers import AutoConfig

    if name not in _CONFIGS:
        try:
            _CONFIGS[name] = AutoConfig.from_pretrained(config_dir(name))
        except (ValueError, TypeError, OSError) as e:
            raise ReproError(f"model {name}: its configuration does not load: {_first_line(e)}") from None
    return _CONFIGS[name]


def build(name: str, dtype: torch.dtype):
    """The model of `name` with no weights: its real configuration, on the meta device, in `dtype`."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if (name, dtype) not in _BUILT:
        cls = {"causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM, "encoder": AutoModel}
        try:
            with torch.device("meta"):
                _BUILT[name, dtype] = cls[arch(name)].from_config(model_config(name), dtype=dtype)
        except (ValueError, RuntimeError, TypeError) as e:
            raise ReproError(
                f"model {name} does not build from its configuration: {_first_line(e)}"
            ) from None
    return _BUILT[name, dtype]


def n_params(name: str) -> int:
    """Parameters of the model as built (any dtype: the count is the same)."""
    m = next((m for (n, _), m in _BUILT.items() if n == name), None) or build(name, torch.float32)
    return sum(p.numel() for p in m.parameters())


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


# ---------------------------------------------------------------- measuring a path: FLOPs and peak bytes


class _LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """Bytes of every storage allocated inside the mode while it is alive, and their peak. Views and in-place
    results share a storage and are not counted again."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = self.ops = 0
        self.seen: set = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        returns = func._schema.returns
        leaves = out if isinstance(out, (tuple, list)) else (out,)
        for i, t in enumerate(leaves):
            if isinstance(t, torch.Tensor) and not (i < len(returns) and returns[i].alias_info):
                self._track(t.untyped_storage())
        return out

    def _track(self, storage) -> None:
        key = storage._cdata
        if key in self.seen:
            return
        self.seen.add(key)
        n = storage.nbytes()
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._release, key, n)

    def _release(self, key, n) -> None:
        self.live -= n
        self.seen.discard(key)


@dataclass
class Cost:
    flops: float = 0.0
    peak: float = 0.0  # bytes on top of the weights
    ops: float = 0.0  # aten ops dispatched: each costs eager PyTorch CPU time, whatever its size


def measure(fn) -> tuple[Cost, object]:
    """Run fn() once under the FLOP counter and the live-bytes tracker."""
    from torch.utils.flop_counter import FlopCounterMode

    live = _LiveBytes()
    with FlopCounterMode(display=False) as fc, live:
        out = fn()
    return Cost(fc.get_total_flops(), live.peak, live.ops), out


def _ids(*shape) -> torch.Tensor:
    return torch.zeros(*shape, dtype=torch.long, device="meta")


def _cache_bytes(cache) -> int:
    """Bytes of a KV cache (a DynamicCache, or the two of an EncoderDecoderCache)."""
    if hasattr(cache, "self_attention_cache"):
        return _cache_bytes(cache.self_attention_cache) + _cache_bytes(cache.cross_attention_cache)
    return sum(
        t.untyped_storage().nbytes()
        for layer in cache.layers
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
        if isinstance(t, torch.Tensor)
    )


def _logprobs(logits: torch.Tensor) -> torch.Tensor:
    # what lib.lm.LM.token_logprobs does with the logits: log-softmax in fp32, then the target's entry
    return torch.log_softmax(logits.float(), -1)[..., :1]


# -- the paths, each as lib.lm / lib.attribution / lib.encoder runs it


def path_score(m, kind: str, B: int, P: int, T: int) -> Cost:
    """Teacher-forced log-probs of a T-token continuation after a P-token prompt (LM.score, TA confidence)."""

    def run():
        if kind == "seq2seq":
            return _logprobs(m(input_ids=_ids(B, P), labels=_ids(B, T)).logits)
        keep = torch.arange(P - 1, P + T - 1, device="meta")
        return _logprobs(m(input_ids=_ids(B, P + T), logits_to_keep=keep).logits)

    with torch.no_grad():
        return measure(run)[0]


def path_options(m, kind: str, B: int, P: int, n_opt: int, T: int) -> Cost:
    """LM.score_options of a causal model: the prompt's prefill once, its cache repeated for every option,
    then all options in one pass (seq2seq models score options as flat sequences: path_score)."""
    with torch.no_grad():
        pre, out = measure(lambda: m(input_ids=_ids(B, P), use_cache=True, logits_to_keep=1))
        if T <= 1:
            return pre
        cache = out.past_key_values
        rows = torch.arange(B, device="meta").repeat_interleave(n_opt)

        def rest():
            cache.batch_select_indices(rows)
            return _logprobs(m(input_ids=_ids(B * n_opt, T), past_key_values=cache, logits_to_keep=T).logits)

        opt, _ = measure(rest)
        return Cost(pre.flops + opt.flops, max(pre.peak, _cache_bytes(cache) + opt.peak), pre.ops + opt.ops)


def _step(m, kind: str, rows: int, cache, enc=None) -> tuple[Cost, object]:
    """One decode step of `rows` sequences on `cache` (a seq2seq step also reads the encoder's output); its
    peak counts the cache it starts from."""
    before = _cache_bytes(cache) if cache is not None else 0

    def run():
        if kind == "seq2seq":
            return m(
                encoder_outputs=(enc,), decoder_input_ids=_ids(rows, 1), past_key_values=cache, use_cache=True
            )
        return m(input_ids=_ids(rows, 1), past_key_values=cache, use_cache=True, logits_to_keep=1)

    cost, out = measure(run)
    return Cost(cost.flops, before + cost.peak, cost.ops), out.past_key_values


def _cache_at(m, kind: str, rows: int, length: int, enc=None):
    """A KV cache `length` tokens long (built unmeasured: only the step on it is measured)."""
    if kind == "seq2seq":
        return m(encoder_outputs=(enc,), decoder_input_ids=_ids(rows, length), use_cache=True).past_key_values
    return m(input_ids=_ids(rows, length), use_cache=True, logits_to_keep=1).past_key_values


def path_generate(m, kind: str, B: int, P: int, N: int, K: int = 1, C: int = 0) -> Cost:
    """LM.generate: N new tokens for B prompts of P tokens, K samples each, with a KV cache. Causal, K > 1:
    the prompt minus its last token is prefilled once and its cache repeated K times (LM's shared prefill);
    causal, C > 0: the prompts share a C-token few-shot prefix, run once for the pass and its cache repeated
    for the B rows, which prefill only their own P - C tokens (LM's common prefix); seq2seq: the encoder
    runs once per prompt and the decoder on B * K rows."""
    with torch.no_grad():
        if kind == "seq2seq":
            return _generate_seq2seq(m, B, P, N, K)
        shared = K > 1
        if C:
            head, out = measure(lambda: m(input_ids=_ids(1, C), use_cache=True, logits_to_keep=1))
            cache = out.past_key_values
            cache.batch_repeat_interleave(B)
            rest, out = measure(
                lambda: m(input_ids=_ids(B, P - C), past_key_values=cache, use_cache=True, logits_to_keep=1)
            )
            pre = Cost(head.flops + rest.flops, max(head.peak, rest.peak), head.ops + rest.ops)
        else:
            pre, out = measure(lambda: m(input_ids=_ids(B, P - shared), use_cache=True, logits_to_keep=1))
        cache = out.past_key_values
        if shared:
            cache.batch_repeat_interleave(K)
        steps = N if shared else N - 1
        if steps <= 0:
            return pre
        c0 = P - shared
        first, _ = _step(m, kind, B * K, cache)
        last, _ = _step(m, kind, B * K, _cache_at(m, kind, B * K, c0 + steps - 1))
        return Cost(
            pre.flops + steps * (first.flops + last.flops) / 2,
            max(pre.peak, first.peak, last.peak),
            pre.ops + steps * first.ops,  # a step dispatches the same ops at any cache length
        )


def _generate_seq2seq(m, B: int, P: int, N: int, K: int) -> Cost:
    enc_cost, enc = measure(lambda: m.get_encoder()(input_ids=_ids(B, P)).last_hidden_state)
    enc = enc.repeat_interleave(K, 0)  # generate expands the encoder's output for K samples
    first, cache = _step(m, "seq2seq", B * K, None, enc)
    enc_bytes = enc.untyped_storage().nbytes()
    cost = Cost(
        enc_cost.flops + first.flops, max(enc_cost.peak, first.peak + enc_bytes), enc_cost.ops + first.ops
    )
    if N > 1:
        second, _ = _step(m, "seq2seq", B * K, cache, enc)
        last, _ = _step(m, "seq2seq", B * K, _cache_at(m, "seq2seq", B * K, N - 1, enc), enc)
        cost.flops += (N - 1) * (second.flops + last.flops) / 2
        cost.peak = max(cost.peak, last.peak + enc_bytes)
        cost.ops += (N - 1) * second.ops
    return cost


def _group_loss(m, kind: str, B: int, P: int, T: int) -> torch.Tensor:
    if kind == "seq2seq":
        logits = m(input_ids=_ids(B, P), labels=_ids(B, T)).logits
    else:
        logits = m(
            input_ids=_ids(B, P + T), logits_to_keep=torch.arange(P - 1, P + T - 1, device="meta")
        ).logits
    return _logprobs(logits).mean()


def path_train(m, kind: str, groups: tuple) -> Cost:
    """One optimizer step of lib.training.fit on an LM student: the loss of each length group (B rows of a
    P-token prompt and a T-token target), one backward, gradient clipping, AdamW (foreach: fused AdamW has no
    meta kernel; both keep the same state)."""
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, foreach=True)

    def step():
        loss = sum(_group_loss(m, kind, *g) for g in groups)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    try:
        return measure(step)[0]
    finally:
        m.eval()
        opt.zero_grad()


def path_attribute(m, kind: str, B: int, P: int, T: int, method: str, n_steps: int) -> Cost:
    """lib.attribution: the target log-prob of B examples, its gradient to the input embeddings (captum
    Saliency / InputXGradient: one forward and backward); the integrated-gradients methods run n_steps rows
    per example in chunks of max(32, B) rows, measured per chunk."""
    rows, chunks = B, 1
    if "integrated" in method:
        rows = min(max(32, B), B * n_steps)
        chunks = B * n_steps / rows
    frozen = [p.requires_grad for p in m.parameters()]
    m.requires_grad_(False)  # lib.attribution._frozen: no weight gradient
    emb = m.get_input_embeddings()

    def run():
        if kind == "seq2seq":
            x = emb(_ids(rows, P)).requires_grad_()
            dec = emb(_ids(rows, T))
            logits = m(inputs_embeds=x, decoder_inputs_embeds=dec).logits
        else:
            x = emb(_ids(rows, P + T)).requires_grad_()
            logits = m(inputs_embeds=x, logits_to_keep=_ids(rows, T)).logits
        _logprobs(logits).sum().backward()
        return x.grad

    try:
        cost = measure(run)[0]
    finally:
        for p, f in zip(m.parameters(), frozen):
            p.requires_grad_(f)
    return Cost(cost.flops * chunks, cost.peak, cost.ops * math.ceil(chunks))


def path_encoder(m, B: int, n_opt: int, L: int, train: bool) -> Cost:
    """lib.encoder: B examples as B * n_opt (question, option) pairs of L tokens through the cross-encoder;
    training adds the option cross-entropy and the tagging loss, backward and AdamW."""
    from .encoder import CrossEncoder

    with torch.device("meta"):
        model = CrossEncoder(m)  # its heads, sized by the encoder's configuration
    ids = _ids(B * n_opt, L)

    def forward():
        # CrossEncoder.forward without its attention mask (unpadded pairs): encoder, mean pooling, both heads
        hs = model.enc(input_ids=ids).last_hidden_state
        return model.score(hs.mean(1)).squeeze(-1), model.tag(hs).squeeze(-1)

    if not train:
        with torch.no_grad():
            return measure(forward)[0]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)

    def step():
        scores, tags = forward()
        ce = torch.nn.functional.cross_entropy(scores.view(B, n_opt).float(), _ids(B))
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            tags.float(), torch.zeros_like(tags.float())
        )
        (ce + 0.5 * bce).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    try:
        return measure(step)[0]
    finally:
        model.eval()


# ---------------------------------------------------------------- the ledger: calls of each path


@dataclass(frozen=True)
class Path:
    """One hot path at one shape: measured once, called many times."""

    kind: str  # score | options | generate | train | attribute | encoder_train | encoder_eval
    model: str
    dtype: str  # what the weights are loaded in: fp32 | bf16
    shape: tuple

    def label(self) -> str:
        names = {
            "score": "B,P,T",
            "options": "B,P,options,T",
            "generate": "B,P,new,K,prefix",
            "attribute": "B,P,T,method,steps",
            "encoder_train": "B,options,L",
            "encoder_eval": "B,options,L",
        }
        if self.kind == "train":
            return "train " + " + ".join(f"[B={b} P={p} T={t}]" for b, p, t in self.shape)
        keys = names[self.kind].split(",")
        return f"{self.kind} " + " ".join(f"{k}={v}" for k, v in zip(keys, self.shape))


@dataclass
class Line:
    notebook: str
    what: str  # the step of the notebook, in words
    path: Path
    calls: float
    bf16_on_gpu: bool  # whether a GPU runs its matmuls in bf16 at this preset's precision
    dataset: str = ""


# roles whose model lib.models loads with load_shared (read-only: bf16 on a GPU); the rest load_model (fp32)
SHARED_ROLES = {"ta", "attribution teacher", "reference teacher", "read-only student", "read-only teacher"}


@dataclass
class Planner:
    """Walks the notebooks of one preset, as `make reproduce` runs them (cold, in order), and writes down
    every call of every hot path; caches shared between notebooks are modelled, so each artefact is paid for
    once."""

    preset: str
    cfg: dict
    device: str = "cuda"  # the loading rules: cuda (read-only models in bf16) | cpu (everything fp32)
    lines: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    api: Counter = field(default_factory=Counter)  # dataset -> API teacher requests (before its cache)
    api_pool: dict = field(default_factory=dict)
    _done: dict = field(default_factory=dict)
    _once: set = field(default_factory=set)
    nb: str = ""
    d: str = ""  # the dataset the notebook works on

    # -- data
    def sec(self, *names: str) -> dict:
        """The merged config sections of a notebook's parameters cell (later sections win, as in
        config.params)."""
        out: dict = {}
        for n in names:
            # keys an older configuration lacks (measured_config) take today's defaults
            out.update({**copy.deepcopy(DEFAULTS.get(n, {})), **copy.deepcopy(self.cfg.get(n, {}))})
        out["models"], out["data"] = self.cfg["models"], self.cfg["data"]
        return out

    def known(self, datasets) -> list[str]:
        """The datasets this preset loads and the plan has lengths for; the others are problems, skipped."""
        paper = self.preset == "paper"
        ok = []
        for d in datasets:
            if d not in (HUB if paper else EXPECTED_SIZES):
                where = "lib.data.HUB (the paper preset loads hub datasets)" if paper else "lib.data"
                self.problem(f"notebook {self.nb}: dataset {d!r} is not in {where}; the notebook fails there")
            elif d not in LENGTHS or (paper and d not in HUB_SPLITS):
                self.problem(f"dataset {d!r}: no assumed lengths or split sizes in lib.plan; not planned")
            else:
                ok.append(d)
        return ok

    def each(self, datasets):
        """The known datasets, each set as the one the notebook's next steps work on (for the report)."""
        for d in self.known(datasets):
            self.d = d
            yield d

    def problem(self, msg: str) -> None:
        if msg not in self.problems:
            self.problems.append(msg)

    def sizes(self, d: str, caps: dict | None) -> dict:
        """pool / dev / test sizes of one dataset after the caps, as lib.data.load_splits cuts them."""
        if self.preset == "paper":
            train, ev = HUB_SPLITS[d]
            dev = round(ev * SPLIT_FRACTIONS["dev"] / (SPLIT_FRACTIONS["dev"] + SPLIT_FRACTIONS["test"]))
            out = {"pool": train, "dev": dev, "test": ev - dev}
        else:
            n = EXPECTED_SIZES[d]
            test, dev = round(n * SPLIT_FRACTIONS["test"]), round(n * SPLIT_FRACTIONS["dev"])
            out = {"pool": n - test - dev, "dev": dev, "test": test}
        caps = dict(caps or {})
        for k in ("pool", "dev", "test"):
            cap = caps.pop(f"{k}_numeric", None)
            if LENGTHS[d].kind == "numeric" and cap is not None:
                caps[k] = cap
        return {k: min(v, caps[k]) if caps.get(k) is not None else v for k, v in out.items()}

    # -- caches
    def new(self, key: tuple, n: int) -> int:
        """How many of the first n items of a per-example cache (teacher outputs, attributions, option
        scores; notebooks read prefixes of the same split order) are not computed yet; marks them computed."""
        have = self._done.get(key, 0)
        self._done[key] = max(have, n)
        return max(0, n - have)

    def once(self, key: tuple) -> bool:
        """True the first time an artefact cached as a whole (a run, a dev accuracy) is asked for."""
        if key in self._once:
            return False
        self._once.add(key)
        return True

    # -- recording calls
    def dtype(self, role: str) -> str:
        return "bf16" if self.device == "cuda" and role in SHARED_ROLES else "fp32"

    def add(self, what: str, role: str, path: Path, calls: float, training: bool = False) -> None:
        if calls <= 0:
            return
        autocast = self.cfg["run"]["precision"] in ("bf16", "auto")  # auto: bf16 on every GPU
        bf16 = training or path.dtype == "bf16" or autocast  # training: accelerate's bf16 on a GPU
        self.lines.append(Line(self.nb, what, path, calls, bf16, self.d))

    def score(self, what: str, model: str, role: str, n: float, bs: int, P: int, T: int) -> None:
        B = max(1, min(bs, math.ceil(n)))
        self.add(what, role, Path("score", model, self.dtype(role), (B, P, T)), n / B)

    def options(self, what: str, model: str, role: str, d: str, n: float, P: int, batch: int) -> None:
        """LM.score_options with `batch` option sequences per call (seq2seq: flat prompt-option rows)."""
        L = LENGTHS[d]
        T = answer_len(d) if L.kind != "yesno" else 1
        if arch(model) == "seq2seq":
            self.score(what, model, role, n * L.n_options, batch, P, T)
            return
        B = max(1, min(batch // L.n_options, math.ceil(n)))
        self.add(what, role, Path("options", model, self.dtype(role), (B, P, L.n_options, T)), n / B)

    def generate(
        self, what: str, model: str, role: str, n: float, bs: int, P: int, N: int, K: int = 1, prefix: int = 0
    ):
        """`prefix`: tokens of few-shot exemplars every prompt opens with (`few_shot_prefix`). Greedy prompts
        of a causal model sharing SHARED_PREFIX_MIN or more run them once per pass of SHARED_ROWS x bs rows
        (LM.generate)."""
        common = K == 1 and prefix >= SHARED_PREFIX_MIN and arch(model) == "causal"
        B = max(1, min(bs * SHARED_ROWS if common else bs, math.ceil(n)))
        shape = (B, P, N, K, prefix if common else 0)
        self.add(what, role, Path("generate", model, self.dtype(role), shape), n / B)

    def attribute(self, what: str, d: str, n: float, bs: int, P: int, T: int, method: str, steps: int):
        teacher = self.cfg["models"]["teacher"]
        B = max(1, min(bs, math.ceil(n)))
        shape = (B, P, T, method, steps if "integrated" in method else 1)
        self.add(
            what,
            "attribution teacher",
            Path("attribute", teacher, self.dtype("attribution teacher"), shape),
            n / B,
        )

    def train_steps(self, what: str, steps: int, groups: tuple) -> None:
        student = self.cfg["models"]["student"]
        self.add(what, "student", Path("train", student, "fp32", groups), steps, training=True)


# ---------------------------------------------------------------- shared pieces of the notebooks


def n_evals(total: int, per_epoch: int) -> int:
    """Dev evaluations of lib.training.fit: after every epoch and after the last step."""
    return total // per_epoch + (1 if total % per_epoch else 0)


def predict(pl: Planner, what: str, d: str, n: int, bs: int, hint_k: int = 0) -> None:
    """lib.training.predict of the student: options by log-likelihood (score_options, batch 4 x bs), numbers
    by greedy decoding of 16 tokens."""
    student = pl.cfg["models"]["student"]
    P = p_predict(d, hint_k)
    if LENGTHS[d].n_options:
        pl.options(what, student, "student", d, n, P, 4 * bs)
    else:
        pl.generate(what, student, "student", n, bs, P, 16)


def start_dev(pl: Planner, d: str, dev: int, fmt: str, bs: int, hint_k: int = 0) -> None:
    """lib.training.start_dev_accuracy: the pretrained student's dev accuracy, cached per format."""
    if pl.once(("start_dev", d, dev, fmt, hint_k)):
        predict(pl, "pretrained student's dev accuracy", d, dev, bs, hint_k)


def lm_groups(d: str, batch: int, target: int | None, hint_k: int = 0) -> tuple:
    """Length groups of one training batch: predict: -> answer, and explain: -> a `target`-token rationale
    (lib.training.make_items, length_groups)."""
    groups = [(batch, p_predict(d, hint_k), answer_len(d) + 1)]
    if target:
        groups.append((batch, p_explain(d), target + 1))
    return tuple(groups)


def finetune(
    pl: Planner,
    d: str,
    items: int,
    groups: tuple,
    s: dict,
    epochs: float,
    batch: int,
    bs: int,
    hint_k: int = 0,
) -> None:
    """lib.training.finetune_and_test after its start dev accuracy: training with dev selection, test."""
    per_epoch = max(1, math.ceil(items / batch))
    total = max(1, round(epochs * per_epoch))
    pl.train_steps("student training", total, groups)
    for _ in range(n_evals(total, per_epoch)):
        predict(pl, "dev accuracy after each epoch", d, s["dev"], bs, hint_k)
    predict(pl, "test accuracy", d, s["test"], bs, hint_k)


def lm_teacher_outputs(pl: Planner, d: str, n: int, model: str | None = None) -> None:
    """The LM teacher of the `teachers` section on the first n pool questions (lib.teachers.LMTeacher):
    greedy chain of thought, then option log-likelihoods for the answer; cached per example."""
    t = pl.cfg["teachers"]
    model = model or pl.cfg["models"]["teacher"]
    new = pl.new(("lm teacher", model, d), n)
    bs = pl.cfg["data"]["batch_size"]
    pl.generate(
        "LM teacher's chain of thought",
        model,
        "teacher",
        new,
        bs,
        p_cot(d, t["lm_shots"]),
        t["lm_max_new_tokens"],
        prefix=few_shot_prefix(d, t["lm_shots"]),
    )
    if t["lm_answer_by"] == "options" and LENGTHS[d].n_options:
        pl.options("LM teacher's answer by option scores", model, "teacher", d, new, p_answer(d), 4 * bs)


def reference_difficulty(pl: Planner, d: str, pool: int) -> None:
    """lib.teachers.reference_difficulty for a hard simulated teacher: the LM teacher's zero-shot option
    scores of the whole pool (cached under the pool's exact content)."""
    if not pl.once(("reference", d, pool)):
        return
    teacher = pl.cfg["models"]["teacher"]
    if LENGTHS[d].n_options:
        pl.options(
            "reference difficulty (hard simulated teacher)",
            teacher,
            "reference teacher",
            d,
            pool,
            p_answer(d),
            64,
        )
    else:
        pl.score(
            "reference difficulty (hard simulated teacher)",
            teacher,
            "reference teacher",
            pool,
            16,
            p_answer(d),
            answer_len(d),
        )


def self_consistency(pl: Planner, what: str, d: str, n: int, a: dict, warmed: bool) -> int:
    """lib.signals.self_consistency of the student: K samples per question in one generate, then option
    scores after the unparsed samples (answer_by="options"); returns the sample length."""
    student, bs = pl.cfg["models"]["student"], pl.cfg["data"]["batch_size"]
    numeric = LENGTHS[d].kind == "numeric"
    N = (
        a["sc_max_new_tokens"]
        if warmed
        else a["cot_max_new_tokens_numeric" if numeric else "cot_max_new_tokens"]
    )
    P = p_predict(d) if warmed else p_cot(d, a["cot_shots"])
    pl.generate(what, student, "student", n, bs, P, N, a["K"])
    if a["sc_answer_by"] == "options" and LENGTHS[d].n_options:
        unparsed = n * a["K"] * UNPARSED["warmed" if warmed else "unwarmed"]
        pl.options(what + ": options after unparsed samples", student, "student", d, unparsed, P + N + 5, bs)
    return N


def ta_confidence(
    pl: Planner, what: str, d: str, n: int, output: int, ta: str, span: str, shots: int, bs: int
):
    """lib.signals.ta_confidence: the TA's teacher-forced log-probs of an output after the question (span
    full), or of its final answer after the question and the output's rationale (span answer)."""
    P, T = p_cot(d, shots), output + 1
    if span == "answer":
        P, T = P + output - answer_len(d), answer_len(d) + 1
    pl.score(what, ta, "ta", n, bs, P, T)


def teacher_option_scores(
    pl: Planner, d: str, split: str, n: int, form: str = "text", per_pass: int = 4
) -> None:
    """lib.attribution.teacher_option_scores: the attribution teacher's score of every option, `per_pass`
    examples per pass (a seq2seq teacher: one flat prompt-option row each), cached per example."""
    new = pl.new(("teacher option scores", d, split, form), n)
    teacher, L = pl.cfg["models"]["teacher"], LENGTHS[d]
    T = 1 if form == "letter" else answer_len(d)
    what, role, P = "teacher's option scores", "attribution teacher", p_attr(d, form)
    if arch(teacher) == "seq2seq":
        pl.score(what, teacher, role, new * L.n_options, per_pass * L.n_options, P, T)
    else:
        pl.options(what, teacher, role, d, new, P, per_pass * L.n_options)


def attributions(
    pl: Planner,
    d: str,
    split: str,
    n: int,
    target: str,
    b: dict,
    method: str | None = None,
    form: str = "text",
) -> None:
    """lib.attribution.influential_words on the first n examples of a split: option scores first where the
    target is the teacher's own answer, then one attribution per example, cached per example."""
    method = method or b["attr_method"]
    if target == "predicted":
        teacher_option_scores(pl, d, split, n, form)
    steps = pl.cfg["attribution"]["n_steps"]
    new = pl.new(("attribution", method, steps if "integrated" in method else 1, d, split, target, form), n)
    T = 1 if form == "letter" else answer_len(d)
    pl.attribute(
        f"attribution ({method}, {target})", d, new, b["attr_batch_size"], p_attr(d, form), T, method, steps
    )


# ---------------------------------------------------------------- the notebooks


def nb00(pl: Planner) -> None:
    """Zero-shot accuracy of each zero-shot model on the dev split of every dataset."""
    z, bs = pl.sec("data", "zero_shot"), pl.cfg["data"]["batch_size"]
    for name in z["zero_shot_models"]:
        for d in pl.each(z["datasets"]):
            dev = pl.sizes(d, z["caps"])["dev"]
            if LENGTHS[d].kind == "numeric":
                n = min(dev, z["eval_n_generate"] or dev)
                pl.generate(
                    "zero-shot chain of thought",
                    name,
                    "zero-shot model",
                    n,
                    bs,
                    p_cot(d, 4),
                    z["max_new_tokens"],
                    prefix=few_shot_prefix(d, 4),
                )
            else:
                pl.options(
                    "zero-shot option scores",
                    name,
                    "zero-shot model",
                    d,
                    min(dev, z["eval_n"] or dev),
                    p_answer(d),
                    4 * bs,
                )


def _recipe_lm_run(pl: Planner, d: str, s: dict, n: int, r: dict, bs: int) -> None:
    start_dev(pl, d, s["dev"], "answer_only", bs)
    finetune(
        pl,
        d,
        n,
        lm_groups(d, r["recipe_batch_size"], None),
        s,
        r["recipe_epochs"],
        r["recipe_batch_size"],
        bs,
    )


def _encoder_run(pl: Planner, d: str, s: dict, items: int, epochs: float, batch: int, max_len: int) -> None:
    """lib.encoder.train_and_test: dev accuracy before training and after every epoch, steps, test."""
    enc, L = pl.cfg["models"]["encoder"], LENGTHS[d]
    pair = min(max_len, L.question + L.option + 3)
    per_epoch = max(1, math.ceil(items / batch))
    total = max(1, round(epochs * per_epoch))
    pl.add(
        "encoder training",
        "encoder",
        Path("encoder_train", enc, "fp32", (batch, L.n_options, pair)),
        total,
        True,
    )
    n_dev = (1 + n_evals(total, per_epoch)) * s["dev"] + s["test"]
    B = min(32, n_dev)
    pl.add(
        "encoder dev / test accuracy",
        "encoder",
        Path("encoder_eval", enc, "fp32", (B, L.n_options, pair)),
        n_dev / B,
    )


def nb05(pl: Planner) -> None:
    """The recipe screen (every recipe, one seed) and its confirmation (the picked recipe on every seed, gold
    and shuffled labels); the picked recipe is assumed to be the largest training set (an upper bound)."""
    r, bs = pl.sec("b", "encoder", "recipe", "run"), pl.cfg["data"]["batch_size"]
    n_lm = len(r["n_train"]) * len(r["lrs"]) * len(r["schedules"])
    seeds, n = len(r["recipe_seeds"]), max(r["n_train"])
    bf16 = r["bf16_check"] and r["precision"] != "fp32"
    for d in pl.each(r["datasets"]):
        s = pl.sizes(d, {"pool": n, **r["recipe_caps"]})
        for st in r["students"]:
            if st == "encoder" and not (LENGTHS[d].n_options and d not in MATH):
                continue
            screen = n_lm if st == "lm" else len(r["n_train"]) * len(r["encoder_lrs"])
            runs = screen + 2 * seeds - 1 + (2 * seeds if bf16 and st == "lm" else 0)
            for _ in range(runs):
                if st == "lm":
                    _recipe_lm_run(pl, d, s, min(n, s["pool"]), r, bs)
                else:
                    _encoder_run(
                        pl, d, s, min(n, s["pool"]), r["recipe_epochs"], r["recipe_batch_size"], r["max_len"]
                    )


def nb06(pl: Planner) -> None:
    """Where the premises hold (lib.premises): on premise_n pool and dev questions per dataset, the read-only
    student's and teacher's zero-shot option scores and the teacher's attribution-prompt and lettered ones."""
    if "premises" not in pl.cfg:  # a configuration from before the notebook (measured_config)
        return
    p, bs = pl.sec("premises"), pl.cfg["data"]["batch_size"]
    student, teacher = pl.cfg["models"]["student"], pl.cfg["models"]["teacher"]
    for d in pl.each(p["premise_datasets"]):
        s = pl.sizes(d, {"pool": p["premise_n"], "dev": p["premise_n"]})
        what = "zero-shot option scores"
        pl.options(what, student, "read-only student", d, s["dev"], p_answer(d), 4 * bs)
        pl.options(what, teacher, "read-only teacher", d, s["pool"], p_answer(d), 4 * bs)
        for form in ("text", "letter"):
            teacher_option_scores(pl, d, "pool", s["pool"], form, per_pass=max(1, bs // 2))


def nb10(pl: Planner) -> None:
    """The LM teacher on the first n_lm pool questions (simulated teachers need no model)."""
    t = pl.sec("teachers")
    for d in pl.each(t["lm_datasets"]):
        pool = pl.sizes(d, pl.cfg["data"]["caps"])["pool"]
        lm_teacher_outputs(pl, d, min(pool, t["n_lm"] or pool))
    pl.known(t["datasets"])


def nb11(pl: Planner) -> None:
    """Paper A's signals on the first n pool questions: the student's self-consistency, the hard simulated
    teacher, the LM teacher (notebook 10's, cached), and every TA x span x output's TA confidence."""
    a, bs = pl.sec("a", "signals"), pl.cfg["data"]["batch_size"]
    tas = a["tas"] or [pl.cfg["models"]["ta"]]
    lm_tokens = pl.cfg["teachers"]["lm_max_new_tokens"]
    for d in pl.each(a["datasets"]):
        pool = pl.sizes(d, pl.cfg["data"]["caps"])["pool"]
        n = min(pool, a["n"] or pool)
        outputs = {"simulated teacher": demo_len(d, "simulated", 0)}
        if d in a["student_datasets"]:
            outputs["student"] = self_consistency(
                pl, "student's self-consistency (un-warmed)", d, n, a, False
            )
        if a["sim_mode"] == "hard":
            reference_difficulty(pl, d, n)
        if d in a["lm_datasets"]:
            lm_teacher_outputs(pl, d, n)
            outputs["LM teacher"] = demo_len(d, "lm:", lm_tokens)
        for ta in tas:
            for span in a["ta_spans"]:
                for whose, T in outputs.items():
                    ta_confidence(pl, f"TA confidence in the {whose}", d, n, T, ta, span, a["ta_shots"], bs)


def _buy_pool(pl: Planner, d: str, pool: int, teacher: str) -> None:
    """lib.ta_loop.buy_pool: a local teacher's outputs for the whole pool before the runs fan out."""
    if teacher.startswith("lm:"):
        lm_teacher_outputs(pl, d, pool, teacher.partition(":")[2])
    elif teacher.startswith("simulated:") and teacher.endswith(":hard"):
        reference_difficulty(pl, d, pool)


def _ta_signals_of_student(pl: Planner, d: str, n: int, a: dict, warmed: bool) -> None:
    what = "student's self-consistency " + ("(warmed)" if warmed else "(un-warmed)")
    N = self_consistency(pl, what, d, n, a, warmed)
    ta_confidence(
        pl,
        "TA confidence in the student's output",
        d,
        n,
        N,
        a["ta"],
        a["ta_span"],
        a["ta_shots"],
        a["eval_batch_size"],
    )


def ta_run(pl: Planner, method: str, d: str, s: dict, a: dict, seed: int) -> None:
    """One lib.ta_loop.run (cached per method, dataset, seed and TARun): plain, one-stage or two-stage."""
    key = (
        "ta_run",
        method,
        d,
        seed,
        tuple(sorted((k, str(v)) for k, v in a.items() if k not in ("models", "data"))),
    )
    if not pl.once(key):
        return
    bs, batch, teacher = a["eval_batch_size"], a["batch_size"], a["teacher"]
    B = min(a["budget"], s["pool"])
    start_dev(pl, d, s["dev"], a["fmt"], bs)
    rationale = demo_rationale(d, teacher, pl.cfg["teachers"]["lm_max_new_tokens"])
    groups = lm_groups(d, batch, rationale)
    uses_student = bool({"sc", "ta_student"} & set(a["signals"]))
    if teacher.startswith("openai:"):
        pl.api[d] += B
        pl.api_pool[d] = s["pool"]
    target, steps = round(a["epochs"] * math.ceil(B / batch)), 0
    if method == "one_stage" and uses_student:
        _ta_signals_of_student(pl, d, s["pool"], a, warmed=False)
    if method == "two_stage":
        n1 = max(1, round(a["rho"] * B))
        per_epoch = math.ceil(n1 / batch)
        steps = max(1, round(a["epochs"] * per_epoch))
        pl.train_steps("student warm-up (two-stage)", steps, groups)
        for _ in range(n_evals(steps, per_epoch)):
            predict(pl, "dev accuracy after each epoch", d, s["dev"], bs)
        if uses_student:
            _ta_signals_of_student(pl, d, s["pool"] - n1, a, warmed=True)
    if method != "plain" and "ta_teacher" in a["signals"]:
        T = demo_len(d, teacher, pl.cfg["teachers"]["lm_max_new_tokens"])
        ta_confidence(
            pl,
            "TA confidence in the teacher's demonstrations",
            d,
            B,
            T,
            a["ta"],
            a["ta_span"],
            a["ta_shots"],
            bs,
        )
    per_epoch = max(1, math.ceil(B / batch))
    finetune(pl, d, B, groups, s, max(1, target - steps) / per_epoch, batch, bs)


def _a_params(pl: Planner) -> dict:
    a = pl.sec("a", "run")
    a.update(
        student=pl.cfg["models"]["student"],
        ta=pl.cfg["models"]["ta"],
        eval_batch_size=pl.cfg["data"]["batch_size"],
    )
    return a


def nb12(pl: Planner) -> None:
    """Paper A's main table: every dataset x seed x method."""
    a = _a_params(pl)
    for d in pl.each(a["datasets"]):
        s = pl.sizes(d, a["caps"])
        _buy_pool(pl, d, s["pool"], a["teacher"])
        for seed in a["seeds"]:
            for method in a["methods"]:
                ta_run(pl, method, d, s, a, seed)


def nb13(pl: Planner) -> None:
    """Paper A's ablations on one dataset; settings equal to a main-table run reuse it."""
    from .ta_loop import ablation_grid

    a = _a_params(pl)
    (d,) = pl.known([a["ablation_dataset"]]) or (None,)
    if d is None:
        return
    pl.d = d
    s = pl.sizes(d, a["caps"])
    groups = a["ablation_groups"]
    settings = [g for g in ablation_grid(SimpleNamespace(**a)) if groups is None or g[0] in groups]
    for teacher in dict.fromkeys(ov.get("teacher", a["teacher"]) for *_, ov in settings):
        _buy_pool(pl, d, s["pool"], teacher)
    for _, _, method, ov in settings:
        for seed in a["ablation_seeds"]:
            ta_run(pl, method, d, s, {**a, **ov}, seed)


def nb20(pl: Planner) -> None:
    """Attribution examples with every method (the integrated-gradients ones on the first n_ig)."""
    b = pl.sec("b", "attribution")
    (d,) = pl.known([b["dataset"]]) or (None,)
    if d is None:
        return
    pl.d = d
    n = min(b["n_examples"], pl.sizes(d, pl.cfg["data"]["caps"])["pool"])
    for m in b["methods"]:
        attributions(pl, d, "pool", min(n, b["n_ig"]) if "integrated" in m else n, b["target"], b, method=m)


def _b_run(pl: Planner, method: str, d: str, s: dict, b: dict, seed: int, n_train: int, **over) -> None:
    """One lib.rationales.run: ft (answer only), dss (free-text rationale), tokens (the k words), hint."""
    k, alpha, attr = (
        over.get("k", b["k"]),
        over.get("alpha", b["alpha"]),
        over.get("attr", b["attr_method"]),
    )
    if not pl.once(("b_run", method, d, seed, alpha, k, attr, n_train)):
        return
    bs = pl.cfg["data"]["batch_size"]
    fmt = "answer_only" if method in ("ft", "hint") else "multitask"
    hint_k = k if method == "hint" else 0
    start_dev(pl, d, s["dev"], fmt, bs, hint_k)
    target = {"dss": LENGTHS[d].rationale or b["dss_max_new_tokens"], "tokens": round(1.5 * k)}.get(method)
    groups = lm_groups(d, b["batch_size"], target, hint_k)
    finetune(pl, d, n_train, groups, s, b["epochs"], b["batch_size"], bs, hint_k)


def _b_prepare(pl: Planner, d: str, s: dict, b: dict, methods) -> None:
    """lib.rationales.Rationales.prepare: the teacher's outputs every method's runs read."""
    if "tokens" in methods:
        attributions(pl, d, "pool", s["pool"], "gold", b)
    if "dss" in methods:
        missing = s["pool"] if not LENGTHS[d].rationale else round(s["pool"] * NO_RATIONALE.get(d, 0.0))
        new = pl.new(("dss teacher", d), missing)
        teacher = pl.cfg["models"]["teacher"]
        P = p_cot(d, b["dss_shots"])
        pl.generate(
            "teacher's free-text rationale (DSS)",
            teacher,
            "teacher",
            new,
            2 * b["attr_batch_size"],
            P,
            b["dss_max_new_tokens"],
            prefix=few_shot_prefix(d, b["dss_shots"]),
        )
    if "hint" in methods:
        for split in ("pool", "dev", "test"):
            attributions(pl, d, split, s[split], "predicted", b)


def b_methods(d: str, methods) -> list[str]:
    """lib.rationales.methods_for: hint needs answer options."""
    return [m for m in methods if m != "hint" or LENGTHS[d].n_options]


def nb21(pl: Planner) -> None:
    """Paper B's main table: every dataset x seed x method."""
    b = pl.sec("b", "run")
    for d in pl.each(b["datasets"]):
        s = pl.sizes(d, b["caps"])
        methods = b_methods(d, b["methods"])
        _b_prepare(pl, d, s, b, methods)
        n_train = max(1, round(b["train_share"] * s["pool"]))
        for seed in b["seeds"]:
            for m in methods:
                _b_run(pl, m, d, s, b, seed, n_train)


def nb22(pl: Planner) -> None:
    """Paper B's ablations on the first dataset: k, attribution method, alpha, training-pool share."""
    b = pl.sec("b", "run")
    (d,) = pl.known(b["datasets"][:1]) or (None,)
    if d is None:
        return
    pl.d = d
    s = pl.sizes(d, b["caps"])
    settings = [("tokens", {"k": v}) for v in b["ablation_ks"]]
    settings += [("tokens", {"attr": v}) for v in b["ablation_methods"]]
    settings += [("tokens", {"alpha": v}) for v in b["ablation_alphas"]]
    settings += [(m, {"share": v}) for v in b["ablation_shares"] for m in ("ft", "tokens")]
    for m, ov in settings:
        if m == "tokens":
            attributions(pl, d, "pool", s["pool"], "gold", b, method=ov.get("attr"))
        n_train = max(1, round(ov.get("share", b["train_share"]) * s["pool"]))
        for seed in b["ablation_seeds"]:
            _b_run(pl, m, d, s, b, seed, n_train, **{k: v for k, v in ov.items() if k != "share"})


def nb23(pl: Planner) -> None:
    """The ground-truth analysis: the teacher attributes its own answer, a random wrong option and the gold
    one on the whole (gt_n) pool; lettered options on the first n_variant of the variant datasets."""
    b = pl.sec("b", "attribution")
    for d in pl.each(b["gt_datasets"]):
        pool = pl.sizes(d, pl.cfg["data"]["caps"])["pool"]
        n = min(pool, b["gt_n"] or pool)
        for target in ("predicted", "random_wrong", "gold"):
            attributions(pl, d, "pool", n, target, b, method=b["gt_method"])
        if d in b["variant_datasets"]:
            attributions(
                pl, d, "pool", min(n, b["n_variant"]), "predicted", b, method=b["gt_method"], form="letter"
            )


def nb24(pl: Planner) -> None:
    """The encoder student with and without the tagging head, every seed; the figure's run trains again."""
    e = pl.sec("b", "encoder", "run")
    datasets = pl.known([d for d in e["datasets"] if d not in MATH])
    for d in pl.each(datasets):
        s = pl.sizes(d, e["caps"])
        attributions(pl, d, "pool", s["pool"], "gold", e)
        runs = 2 * len(e["seeds"]) + (d == datasets[0])
        for _ in range(runs):
            _encoder_run(pl, d, s, s["pool"], e["epochs"], e["batch_size"], e["max_len"])


def nb25(pl: Planner) -> None:
    """A weak teacher's answers and words, weighted or filtered by the TA, on the first option dataset."""
    b = pl.sec("b", "run")
    a = pl.cfg["a"]
    datasets = pl.known([d for d in b["datasets"] if d not in MATH][:1])
    seeds = b["weak_seeds"] or b["seeds"]
    for d in pl.each(datasets):
        s = pl.sizes(d, b["caps"])
        teacher_option_scores(pl, d, "pool", s["pool"])
        ta_confidence(
            pl,
            "TA confidence in the teacher's answer",
            d,
            s["pool"],
            answer_len(d),
            pl.cfg["models"]["ta"],
            a["ta_span"],
            a["ta_shots"],
            16,
        )
        attributions(pl, d, "pool", s["pool"], "predicted", b)
        for seed in seeds:
            for v in b["weak_variants"]:
                _weak_run(pl, v, d, s, b, seed)


def _weak_run(pl: Planner, variant: str, d: str, s: dict, b: dict, seed: int) -> None:
    if not pl.once(("weak_run", variant, d, seed)):
        return
    bs = pl.cfg["data"]["batch_size"]
    fmt = "answer_only" if variant == "ft_teacher" else "multitask"
    start_dev(pl, d, s["dev"], fmt, bs)
    items = round(s["pool"] * (1 - b["weak_filter_q"])) if variant == "tokens_ta_filter" else s["pool"]
    groups = lm_groups(d, b["batch_size"], None if variant == "ft_teacher" else round(1.5 * b["k"]))
    finetune(pl, d, items, groups, s, b["epochs"], b["batch_size"], bs)


def nb30(pl: Planner) -> None:
    """Tables and figures from the CSVs: no model runs."""


STEPS = dict(
    zip(NOTEBOOKS, (nb00, nb05, nb06, nb10, nb11, nb12, nb13, nb20, nb21, nb22, nb23, nb24, nb25, nb30))
)


# ---------------------------------------------------------------- the dry run: every distinct path, once

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def positions(path: Path) -> int:
    """The longest sequence the path feeds the model."""
    s = path.shape
    if path.kind == "train":
        return max(p + t for _, p, t in s)
    if path.kind in ("encoder_train", "encoder_eval"):
        return s[2]
    if path.kind == "options":
        return s[1] + s[3]
    return s[1] + s[2] if path.kind in ("score", "generate", "attribute") else 0


def check_positions(path: Path) -> None:
    """Meta tensors check no index, so a sequence past the position embeddings is caught here."""
    limit, n = max_positions(path.model), positions(path)
    if limit is not None and n > limit:
        raise ReproError(f"{path.model}: {path.label()} needs {n} positions, the model has {limit}")


def run_path(path: Path) -> Cost:
    """The path once on the meta device; a shape or dtype error becomes a one-line ReproError."""
    check_positions(path)
    m, kind, s = build(path.model, DTYPES[path.dtype]), arch(path.model), path.shape
    m.eval()
    calls = {
        "score": lambda: path_score(m, kind, *s),
        "options": lambda: path_options(m, kind, *s),
        "generate": lambda: path_generate(m, kind, *s),
        "train": lambda: path_train(m, kind, s),
        "attribute": lambda: path_attribute(m, kind, *s),
        "encoder_train": lambda: path_encoder(m, *s, train=True),
        "encoder_eval": lambda: path_encoder(m, *s, train=False),
    }
    try:
        return calls[path.kind]()
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise ReproError(f"dry run failed: {path.model} {path.label()}: {_first_line(e)}") from None


_COSTS: dict = {}  # a path's cost, measured once per process


def dry_run(paths, progress: bool = True) -> dict[Path, Cost]:
    """Every distinct path, measured once (building each model once), with a progress line each."""
    out, t0 = {}, time.time()
    paths = sorted(set(paths), key=lambda p: (p.model, p.dtype, p.kind, str(p.shape)))
    for i, p in enumerate(paths, 1):
        t = time.time()
        if p not in _COSTS:
            _COSTS[p] = run_path(p)
        out[p] = _COSTS[p]
        if progress:
            print(
                f"  [{i}/{len(paths)}] {p.model} ({p.dtype}) {p.label()}: {out[p].flops / 1e12:.3g} TFLOP, "
                f"{time.time() - t:.1f} s",
                flush=True,
            )
    if progress:
        print(f"dry run: {len(paths)} paths at full scale, no error, {time.time() - t0:.0f} s", flush=True)
    return out


# ---------------------------------------------------------------- throughput


def cpu_peak(seconds: float = 1.0) -> float:
    """This machine's fp32 matmul FLOP/s now: the best of repeated 1024 x 1024 products on torch's threads."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b  # the first call picks the kernel
    best, t_end = 0.0, time.time() + seconds
    while time.time() < t_end:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * 1024**3 / (time.perf_counter() - t))
    return best


def bench_peak() -> float | None:
    """The fp32 matmul peak `make bench` recorded (results/bench.md), where it has one."""
    f = ROOT / "results" / "bench.md"
    m = re.search(r"fp32 matmul peak (\d+(?:\.\d+)?) GFLOP/s", f.read_text()) if f.exists() else None
    return float(m.group(1)) * 1e9 if m else None


def cpu_throughput(given: float | None = None) -> tuple[float, str]:
    """(FLOP/s, where it comes from): given, else the peak `make bench` recorded on an idle run, else a
    measurement now. A measurement now is low while other processes share the cores, so the recorded one
    comes first; the note says both."""
    import os

    now, recorded = cpu_peak(), bench_peak()
    load = os.getloadavg()[0]
    threads = torch.get_num_threads()
    note = f"measured now: {now / 1e9:.0f} GFLOP/s on {threads} threads at load average {load:.1f}"
    if given:
        return given, f"given; {note}"
    if recorded:
        return recorded, f"the fp32 matmul peak results/bench.md records; {note}"
    return now, note


# ---------------------------------------------------------------- aggregation


@dataclass
class Plan:
    preset: str
    device: str
    lines: list
    costs: dict
    problems: list
    api: Counter
    api_pool: dict
    cpu: float = 0.0  # FLOP/s of the CPU column
    cpu_note: str = ""
    utilisation: float = UTILISATION
    config_note: str = "lib/config.py as it is now"
    precision: str = "fp32"

    def flops(self, lines=None) -> float:
        return sum(
            line.calls * self.costs[line.path].flops for line in (self.lines if lines is None else lines)
        )

    def notebook(self, nb: str) -> list:
        return [line for line in self.lines if line.notebook == nb]

    def h100_hours(self, flops: float) -> float:
        return flops / (H100_BF16 * self.utilisation) / 3600

    def h100_bound_hours(self, lines=None) -> float:
        """GPU-hours where every call takes at least its ops x OP_SECONDS of host time."""
        rate = H100_BF16 * self.utilisation
        secs = sum(
            line.calls * max(self.costs[line.path].flops / rate, self.costs[line.path].ops * OP_SECONDS)
            for line in (self.lines if lines is None else lines)
        )
        return secs / 3600

    def fp32_h100_hours(self) -> float:
        """GPU-hours when the matmuls a GPU runs in fp32 at this preset's precision go at the fp32 peak."""
        fp32 = self.flops([line for line in self.lines if not line.bf16_on_gpu])
        return (fp32 / H100_FP32 + (self.flops() - fp32) / H100_BF16) / self.utilisation / 3600

    def weights(self, model: str, dtype: str) -> float:
        return n_params(model) * (2 if dtype == "bf16" else 4)

    def peaks(self, lines=None) -> dict:
        """(model, dtype) -> (bytes: weights + the largest path's, that path)."""
        out = {}
        for line in self.lines if lines is None else lines:
            p = line.path
            total = self.weights(p.model, p.dtype) + self.costs[p].peak
            if total > out.get((p.model, p.dtype), (0, None))[0]:
                out[p.model, p.dtype] = (total, p)
        return out

    def resident(self, nb: str) -> float:
        """Bytes of every model a notebook loads, each at its peak: an upper bound of its memory."""
        return sum(b for b, _ in self.peaks(self.notebook(nb)).values())

    def main_steps(self, nb: str, n: int = 2) -> str:
        by = Counter()
        for line in self.notebook(nb):
            by[line.what] += line.calls * self.costs[line.path].flops
        total = sum(by.values()) or 1
        return "; ".join(f"{w} {100 * f / total:.0f} %" for w, f in by.most_common(n))


def plan(
    preset: str, cfg: dict | None = None, device: str | None = None, only=None, progress: bool = True
) -> Plan:
    """The dry run and cost model of `preset` (`cfg`: a modified copy of its PRESETS entry, e.g. a smaller
    grid); `only`: notebook-number prefixes. Throughput is set by the caller (Plan.cpu)."""
    cfg = copy.deepcopy(cfg or get_preset(preset))
    device = device or ("cuda" if preset == "paper" else "cpu")
    check_choice("device", device, ("cuda", "cpu"))
    pl = Planner(preset, cfg, device)
    for nb in NOTEBOOKS:
        if not only or any(nb.startswith(o) for o in only):
            pl.nb, pl.d = nb, ""
            STEPS[nb](pl)
    if progress:
        n = len({line.path for line in pl.lines} - set(_COSTS))
        print(f"plan {preset}: {len(pl.lines)} steps, {n} paths to run once on the meta device", flush=True)
    costs = dry_run([line.path for line in pl.lines], progress)
    return Plan(preset, device, pl.lines, costs, pl.problems, pl.api, pl.api_pool)


def _git(*args: str) -> tuple[int, str]:
    import subprocess

    try:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 1, ""
    return r.returncode, r.stdout


def measured_config(preset: str) -> tuple[dict | None, str]:
    """The preset as configured when results/<preset>/run_times.md was measured, so that predicted and
    measured times describe the same grid: lib/config.py at the commit that last wrote the file, where the
    configuration changed since; None (the current one) where it did not, or git cannot say."""
    rel = f"results/{preset}/run_times.md"
    rc, _ = _git("diff", "--quiet", "HEAD", "--", rel)
    rc_log, rev = _git("log", "-1", "--format=%H", "--", rel)
    rev = rev.strip()
    if rc != 0 or rc_log != 0 or not rev:
        return None, "lib/config.py as it is now"
    if _git("diff", "--quiet", rev, "--", "lib/config.py")[0] == 0:
        return None, f"lib/config.py as it is now (unchanged since commit {rev[:10]}, which measured them)"
    rc, src = _git("show", f"{rev}:lib/config.py")
    try:
        import types

        name = "lib._config_measured"
        mod = types.ModuleType(name)
        mod.__package__ = "lib"
        sys.modules[name] = mod  # dataclasses look their module up there
        try:
            exec(compile(src, f"{rev[:10]}:lib/config.py", "exec"), mod.__dict__)
        finally:
            del sys.modules[name]
        return copy.deepcopy(mod.PRESETS[preset]), f"lib/config.py of commit {rev[:10]}, which measured them"
    except Exception as e:  # an old configuration that no longer imports: compare with the current one
        return None, f"lib/config.py as it is now (that of commit {rev[:10]} does not load: {_first_line(e)})"


# ---------------------------------------------------------------- the report


def _gb(b: float) -> str:
    return f"{b / 1e9:.1f}"


def _time(seconds: float) -> str:
    if seconds < 600:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 36000 else f"{seconds / 3600:,.0f} h"


def notebook_table(pl: Plan) -> list[str]:
    rows = [
        f"| notebook | PFLOP | where the FLOPs go | GB resident | {_cpu_col(pl)} | H100 GPU-h at "
        f"{pl.utilisation:.0%} | H100 GPU-h, >= {OP_SECONDS * 1e6:.0f} us per op |",
        "|---|---|---|---|---|---|---|",
    ]
    for nb in NOTEBOOKS:
        lines = pl.notebook(nb)
        f = pl.flops(lines)
        rows.append(
            f"| {nb} | {f / 1e15:,.2f} | {pl.main_steps(nb) or '-'} | {_gb(pl.resident(nb))} | "
            f"{_time(f / pl.cpu)} | {pl.h100_hours(f):,.2f} | {pl.h100_bound_hours(lines):,.2f} |"
        )
    f = pl.flops()
    rows.append(
        f"| **all** | **{f / 1e15:,.1f}** | | | **{_time(f / pl.cpu)}** | **{pl.h100_hours(f):,.1f}** | "
        f"**{pl.h100_bound_hours():,.1f}** |"
    )
    return rows


def dataset_table(pl: Plan) -> list[str]:
    by = defaultdict(list)
    for line in pl.lines:
        by[line.dataset].append(line)
    total, bound = pl.flops() or 1, pl.h100_bound_hours() or 1
    rows = [
        f"| dataset | PFLOP | share | H100 GPU-h, >= {OP_SECONDS * 1e6:.0f} us per op | share |",
        "|---|---|---|---|---|",
    ]
    for d, lines in sorted(by.items(), key=lambda kv: -pl.h100_bound_hours(kv[1])):
        f, h = pl.flops(lines), pl.h100_bound_hours(lines)
        rows.append(
            f"| {d} | {f / 1e15:,.2f} | {100 * f / total:.0f} % | {h:,.1f} | {100 * h / bound:.0f} % |"
        )
    return rows


def _cpu_col(pl: Plan) -> str:
    return f"CPU at {pl.cpu / 1e9:.0f} GFLOP/s"


def model_table(pl: Plan) -> list[str]:
    roles = defaultdict(set)
    for line in pl.lines:
        roles[line.path.model, line.path.dtype].add(
            line.what.split(" (")[0] if line.path.kind != "train" else "trained"
        )
    rows = ["| model | weights | params | weights GB | peak GB | largest path |", "|---|---|---|---|---|---|"]
    for (m, dt), (b, p) in sorted(pl.peaks().items()):
        rows.append(
            f"| {m} | {dt} | {n_params(m) / 1e9:.3f} B | {_gb(pl.weights(m, dt))} | {_gb(b)} | {p.label()} |"
        )
    return rows


def path_table(pl: Plan, n: int = 12) -> list[str]:
    by = defaultdict(float)
    for line in pl.lines:
        by[line.path] += line.calls
    total = pl.flops() or 1
    top = sorted(by, key=lambda p: -by[p] * pl.costs[p].flops)[:n]
    rows = [
        "| model | path (shape) | TFLOP per call | extra GB | calls | share of all FLOPs |",
        "|---|---|---|---|---|---|",
    ]
    for p in top:
        c = pl.costs[p]
        rows.append(
            f"| {p.model} ({p.dtype}) | {p.label()} | {c.flops / 1e12:.3g} | {_gb(c.peak)} | "
            f"{by[p]:,.0f} | {100 * by[p] * c.flops / total:.1f} % |"
        )
    return rows


def measured_cold(preset: str) -> dict[str, float]:
    """Cold seconds per notebook from results/<preset>/run_times.md (lib.reproduce writes it)."""
    f = ROOT / "results" / preset / "run_times.md"
    if not f.exists():
        return {}
    out = {}
    for m in re.finditer(r"^\| (\d\d_\w+)\.ipynb \| (\d+) \|", f.read_text(), re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def factors(pl: Plan) -> dict[str, tuple[float, float, float]]:
    """notebook -> (predicted s: FLOPs at the CPU column's throughput, the same plus OP_SECONDS per op,
    measured cold s)."""
    cold = measured_cold(pl.preset)
    out = {}
    for nb in NOTEBOOKS:
        if nb in cold:
            lines = pl.notebook(nb)
            flop_s = pl.flops(lines) / pl.cpu
            ops_s = sum(line.calls * pl.costs[line.path].ops for line in lines) * OP_SECONDS
            out[nb] = (flop_s, flop_s + ops_s, cold[nb])
    return out


def comparison_table(pl: Plan) -> list[str]:
    rows = [
        f"| notebook | predicted s (FLOPs / peak) | + {OP_SECONDS * 1e6:.0f} us per op | measured cold s | "
        "measured / predicted | where the FLOPs go |",
        "|---|---|---|---|---|---|",
    ]
    for nb, (pred, with_ops, meas) in factors(pl).items():
        factor = f"{meas / pred:.1f}x" if pred >= 1 else "-"
        rows.append(
            f"| {nb} | {pred:,.0f} | {with_ops:,.0f} | {meas:,.0f} | {factor} | {pl.main_steps(nb) or '-'} |"
        )
    pred, with_ops, meas = (sum(x) for x in zip(*factors(pl).values()))
    rows.append(
        f"| **all** | **{pred:,.0f}** | **{with_ops:,.0f}** | **{meas:,.0f}** | **{meas / pred:.1f}x** | |"
    )
    return rows


def api_lines(pl: Plan) -> list[str]:
    if not pl.api:
        return []
    parts = [f"{d}: {n:,} (at most {min(n, pl.api_pool[d]):,} distinct questions)" for d, n in pl.api.items()]
    return ["", f"API teacher requests, before its per-question cache: {'; '.join(parts)}."]


def _share(pl: Plan, kinds) -> float:
    lines = [line for line in pl.lines if line.path.kind in kinds]
    return pl.flops(lines) / max(pl.flops(), 1)


def header(pl: Plan) -> list[str]:
    return [
        f"# Plan of `make reproduce PRESET={pl.preset}`: dry run at full scale and cost",
        "",
        _text(f"""Written by `python -m lib.plan --preset {pl.preset}` (`lib/plan.py`; its docstring and its
        first section say what is measured and what is assumed). Every hot path of every notebook ran once on
        PyTorch's meta device at the preset's shapes ({len(pl.costs)} distinct paths, no shape or dtype
        error); FLOPs by `FlopCounterMode`, memory by tracking every tensor a path allocates on meta, aten
        ops by counting them. Cold run: every cache empty at the start, each notebook reusing what an earlier
        one computed. Configuration: {pl.config_note}."""),
        "",
        _text(f"""Times are lower bounds at stated throughputs: CPU at {pl.cpu / 1e9:.0f} GFLOP/s fp32
        ({pl.cpu_note}); H100 at {pl.utilisation:.0%} of its dense bf16 peak (989 TFLOP/s); and the same with
        every call taking at least its aten ops x {OP_SECONDS * 1e6:.0f} us of host time, eager PyTorch's
        cost per op whatever its size (5-20 us in practice), which small batches on a GPU do not hide."""),
    ]


def report(pl: Plan, measured: Plan | None = None) -> str:
    f = pl.flops()
    loading = (
        "read-only models (TA, attribution and reference teacher) in bf16, the rest in fp32, as lib.models "
        "loads them on a GPU"
        if pl.device == "cuda"
        else "every model in fp32, as lib.models loads them on a CPU"
    )
    lines = [
        *header(pl),
        "",
        "## Per notebook",
        "",
        *notebook_table(pl),
        "",
        f"Loading rules: {loading}. GB resident: the models a notebook loads, each at its largest path "
        "(weights + activations, KV cache, gradients and AdamW state where it trains); an upper bound, as if "
        "all were held at once.",
        "",
        "## Per dataset",
        "",
        *dataset_table(pl),
        "",
        "## Per model",
        "",
        *model_table(pl),
        "",
        "## The costliest paths",
        "",
        *path_table(pl),
    ]
    if pl.device == "cuda":
        fp32 = pl.flops([line for line in pl.lines if not line.bf16_on_gpu])
        lines += [
            "",
            f"At this preset's precision ({pl.precision}), {100 * fp32 / f:.0f} % of the FLOPs are matmuls a "
            "GPU runs in fp32 (models `load_model` loads in fp32, outside training, where no autocast "
            "applies). At an "
            f"H100's fp32 peak (67 TFLOP/s, TF32 off as torch has it by default) the whole run takes "
            f"{pl.fp32_h100_hours():,.0f} GPU-hours at {pl.utilisation:.0%} instead of "
            f"{pl.h100_hours(f):,.0f}; "
            "`DISTILL_PRECISION=bf16` runs them in bf16.",
        ]
    lines += api_lines(pl)
    if measured is not None and measured_cold(pl.preset):
        lines += ["", "## Predicted vs measured on this machine", "", *gap_intro(pl, measured)]
        lines += ["", *comparison_table(measured), "", *gap_notes(measured)]
    lines += ["", "## Problems", ""] + ([f"- {p}" for p in pl.problems] or ["none"])
    return "\n".join(lines) + "\n"


def gap_intro(pl: Plan, measured: Plan) -> list[str]:
    same = measured.config_note == pl.config_note
    return [
        f"`results/{pl.preset}/run_times.md` holds each notebook's last cold run. Planned with "
        f"{measured.config_note}"
        + (
            "."
            if same
            else f"; the current configuration plans {pl.flops() / pl.cpu:,.0f} s "
            f"against {measured.flops() / measured.cpu:,.0f} s for that one."
        )
    ]


def _dominated(pl: Plan, kinds, fs: dict) -> str:
    """The notebooks whose FLOPs are mostly `kinds` paths, with their factors."""
    out = []
    for nb, f in fs.items():
        lines = pl.notebook(nb)
        if pl.flops([x for x in lines if x.path.kind in kinds]) > 0.5 * pl.flops(lines):
            out.append(f"{nb[:2]} {f:.1f}x")
    return ", ".join(out) or "none"


def gap_notes(pl: Plan) -> list[str]:
    """Why measured wall time and FLOPs / peak differ, from the plan's own numbers."""
    rows = factors(pl)
    fs = {nb: meas / pred for nb, (pred, _, meas) in rows.items() if pred >= 1}
    pred, with_ops, meas = (sum(x) for x in zip(*rows.values()))
    hi, lo = max(fs, key=fs.get), min(fs, key=fs.get)
    train, gen = _dominated(pl, {"train", "encoder_train"}, fs), _dominated(pl, {"generate"}, fs)
    return [
        _text(f"""Measured over predicted: {meas / pred:.1f}x overall, from {fs[lo]:.1f}x ({lo}) to
        {fs[hi]:.1f}x ({hi}). FLOPs at the matmul peak are a floor; what separates each notebook from it:"""),
        "",
        _text(f"""- Host overhead per op is small on a CPU: at {OP_SECONDS * 1e6:.0f} us per aten op
        it adds {100 * (with_ops / pred - 1):.0f} % (third column). The CPU's time goes to arithmetic,
        below peak: small models' matmuls (a few hundred rows of 576-640 columns) run below the peak (a
        training step's share of it: `make bench`'s train_step row), and a fifth to a third of CPU time is
        outside matmuls
        (log-softmax over the vocabulary, norms, attention; results/bench_profile.md). Training-dominated
        notebooks: {train}."""),
        _text(f"""- Generation is memory-bound: each decode step reads every weight and the KV cache
        for one token per row. Generation-dominated notebooks: {gen}."""),
        _text("""- No FLOPs at all: loading models, building splits, reading and writing caches,
        starting Ray's workers, drawing figures. It is most of notebook 00 (it loads every zero-shot model
        and builds every split), of the few attributions of notebook 20 and of notebook 30."""),
        _text("""- Notebooks near 1x had part of their work run faster than the fp32 floor: the
        preset's precision is `auto`, so scoring, generation and attribution ran under bf16 autocast on a
        CPU with bf16 units, at up to 2.2x the fp32 matmul peak (results/bench.md); Ray's two single-thread
        workers run two runs side by side, which can beat one matmul on two threads; and the recorded peak
        was measured under load. Generation is also counted at max_new_tokens for every row, where a batch
        whose rows all ended stops early."""),
        "",
        _text("""At `paper` scale the models are 10-50x larger, so on a CPU a matmul's arithmetic
        outweighs its host overhead by far more; on a GPU it does not (a t5-base training step is a few ms
        of H100 arithmetic against ~17k ops of host time), which is why the paper plan also gives GPU-hours
        with a per-op floor."""),
    ]


def _text(s: str) -> str:
    """A paragraph written across source lines, as one line of markdown."""
    return " ".join(s.split())


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument(
        "--device", choices=("cuda", "cpu"), help="loading rules (default: cuda for paper, else cpu)"
    )
    ap.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 10 12")
    ap.add_argument("--utilisation", type=float, default=UTILISATION, help="share of the H100 peak (0-1)")
    ap.add_argument("--cpu-gflops", type=float, help="CPU throughput (default: results/bench.md's peak)")
    ap.add_argument("--out", help="report path (default results/plan_<preset>.md)")
    args = ap.parse_args(argv)
    try:
        get_preset(args.preset)
        cpu, note = cpu_throughput(args.cpu_gflops and args.cpu_gflops * 1e9)
        pl = plan(args.preset, device=args.device, only=args.only)
        measured = compare(pl, args) if measured_cold(args.preset) and not args.only else None
    except ReproError as e:
        print(f"plan: {e}", file=sys.stderr)
        return 2
    for p in (pl, measured):
        if p is not None:
            p.cpu, p.cpu_note, p.utilisation, p.precision = (
                cpu,
                note,
                args.utilisation,
                precision_of(p.preset),
            )
    out = pathlib.Path(args.out) if args.out else ROOT / "results" / f"plan_{args.preset}.md"
    text = report(pl, measured)
    out.write_text(text)
    print(text)
    print(f"plan: wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if pl.problems else 0


def precision_of(preset: str) -> str:
    return get_preset(preset)["run"]["precision"]


def compare(pl: Plan, args) -> Plan:
    """The plan of the configuration results/<preset>/run_times.md was measured with (this one where it
    has not changed since)."""
    cfg, note = measured_config(pl.preset)
    if cfg is None:
        pl.config_note = note
        return pl
    print(f"plan {pl.preset}: the run times were measured with {note}; planning that too", flush=True)
    measured = plan(pl.preset, cfg=cfg, device=args.device)
    measured.config_note = note
    return measured


if __name__ == "__main__":
    sys.exit(main())
