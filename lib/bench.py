"""`make bench`: speed of every hot path as a ratio against the obvious way, timed in the same process.

Each row: assert that the fast path and the baseline agree (the same outputs; a bf16 row: the agreement
its note states) on an untimed first call of each, then the median of up to `repeats` timings; the ratio
baseline / fast is what the target is about (the machine is noisy, absolute times alone mean little).
Writes results/bench.md and results/bench.csv. On CUDA the same rows also report GPU memory.
`--preset smoke` runs the same code on tiny models (the equality assertions of every row are exercised
by tests/test_bench.py).
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .common import ROOT, ReproError, bench_name
from .config import get_preset, resolve_preset
from .data import load_splits
from .lm import LM, SHARED_ROWS
from .models import REGISTRY, cold_load_seconds, load_model, materialise
from .phases import matmul_peak
from .prompts import answer_prompt, cot_prompt, demonstration

TARGETS = {  # (target ratio on CPU, on CUDA), in the order the rows run
    "attribution_saliency": (2.5, 8),
    "attribution_ig": (2.0, 4),
    "self_consistency": (2.0, 3),
    "sc_prefill_sharing": (1.5, 1.5),
    "option_scoring": (1.5, 1.5),
    # greedy chain-of-thought generation's tokens/s against the plain batched path on the same prompts
    "generation": (4.0, 4.0),
    "ta_confidence": (3.0, 10),
    # share of this machine's measured fp32 matmul peak that a training step reaches (baseline = the step's
    # FLOPs at that peak)
    "train_step": (0.5, None),
    "bucketed_batches": (1.5, 1.5),
    # bf16 (autocast) against fp32 on the same model and inputs: lib.common.precision's payoff. Target:
    # AMDAHL_SHARE of the row's Amdahl bound on the machine at hand (bf16_bound), whatever its bf16 units
    "bf16_option_scoring": (None, None),
    "bf16_generation": (None, None),
    "bf16_saliency": (None, None),
    "bf16_train_step": (None, None),
    "model_load": (10, 10),
}


AMDAHL_SHARE = 0.9

# seconds a row may spend on extra repeats after its checked first pair (keeps `make bench` under 10 min)
ROW_BUDGET_S = 40.0
# --profile: one more call of each path under torch.profiler, its GEMM share of CPU time in the note
PROFILE = False


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


GEMMS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm")


def cpu_profile(fn) -> dict:
    """CPU seconds of one call (torch.profiler, self time): in GEMM kernels, in the attention kernel, in all.
    A path that already spends most of its time in GEMMs is compute-bound: batching can only remove the rest.
    Attention is apart: the GEMM peak does not bound its fused CPU kernel, which bf16 barely speeds up here
    (results/bench_profile.md)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    ev = prof.key_averages()
    sec = lambda keep: sum(e.self_cpu_time_total for e in ev if keep(e.key)) / 1e6
    return {
        "gemm": sec(lambda k: k in GEMMS),
        "gemm_flop": float(sum(e.flops or 0 for e in ev if e.key in GEMMS)),
        "attention": sec(lambda k: "scaled_dot_product" in k),
        "total": sec(lambda k: True),
    }


def _profile_note(fast: dict, base: dict) -> str:
    share = lambda d: d["gemm"] / d["total"] if d["total"] else float("nan")
    rest = lambda d: d["total"] - d["gemm"]
    return (
        f"GEMM share of CPU time: fast {share(fast):.0%}, baseline {share(base):.0%}; "
        f"GEMM s: fast {fast['gemm']:.1f}, baseline {base['gemm']:.1f}; "
        f"CPU s outside GEMMs: fast {rest(fast):.1f}, baseline {rest(base):.1f} "
        f"(attention {fast['attention']:.1f} vs {base['attention']:.1f})"
    )


def pair(fast, base, check, repeats: int, profile: bool | None = None) -> dict:
    """Median times of the fast path and the baseline, called alternately. The first call of each gives the
    outputs that `check(fast_out, base_out)` must accept before any further call or any report; it is not
    timed, since it pays the one-time costs (first kernels, buffers, autocast's weight casts). Timed pairs
    follow: at least one, up to `repeats` while the row is under budget. `profile`: one profiled call of each
    path after them (None: where --profile asks, False: never)."""
    t0 = time.perf_counter()
    a, b = fast(), base()
    check(a, b)
    TF, TB = [], []
    while not TF or (len(TF) < repeats and time.perf_counter() - t0 < ROW_BUDGET_S):
        TF.append(timed(fast, 1)[0])
        TB.append(timed(base, 1)[0])
    out = {"fast_s": statistics.median(TF), "base_s": statistics.median(TB), "samples": len(TF)}
    if profile or (profile is None and PROFILE):
        pf, pb = cpu_profile(fast), cpu_profile(base)
        out["cpu"] = (pf, pb)
        out["profile"] = _profile_note(pf, pb)
    return out


@functools.lru_cache(maxsize=1)
def peak_ratio() -> float:
    """bf16 over fp32 matmul peak on this machine: the most bf16 can speed up a path's matmuls."""
    return matmul_peak(torch.bfloat16) / matmul_peak(torch.float32)


def bf16_bound(p: dict) -> float | None:
    """From a profiled call (bf16 rows always make one): the speed-up a bf16 path can reach if its GEMMs
    get faster by the bf16 / fp32 GEMM peak ratio r and all else keeps its fp32 time (Amdahl:
    1 / ((1 - f) + f / r)). f is the GEMMs' share of
    the fp32 path's timed wall time `p["base_s"]`: the profiler's GEMM seconds are wall seconds of the calling
    thread, and what lies outside every op (the interpreter, tokenising, the generation loop) is time bf16
    cannot shorten either. Reads and pops the two paths' profiles `p["cpu"]`; puts the bound first in the
    row's profile note, whose seconds outside GEMMs show whether the rest got slower in bf16; returns the
    bound (None without a profile)."""
    cpu = p.pop("cpu", None)
    if cpu is None:
        return None
    r = peak_ratio()
    f = min(1.0, cpu[1]["gemm"] / p["base_s"])
    bound = 1 / ((1 - f) + f / r)
    says = f"bound {bound:.2f}x (GEMMs {f:.0%} of the fp32 wall time, sped up by the peak ratio {r:.2f}x)"
    p["profile"] = "; ".join(x for x in (says, p.get("profile", "")) if x)
    return bound


def batching_bound(p: dict) -> None:
    """From a profiled call: the most any batching of the baseline's work can gain on this machine, if the
    baseline's GEMM FLOPs ran at the measured fp32 GEMM peak and nothing else took time (a roofline bound:
    batching adds no FLOPs but pads, and cannot take the GEMMs below their peak time). Put first in the
    row's profile note; the note's seconds outside GEMMs say what the batched path still spends there."""
    cpu = p.pop("cpu", None)
    if cpu is None or not cpu[1]["gemm_flop"]:
        return
    at_peak = cpu[1]["gemm_flop"] / matmul_peak(torch.float32)
    says = (
        f"bound {p['base_s'] / at_peak:.2f}x (the baseline's {cpu[1]['gemm_flop'] / 1e12:.2f} TFLOP of "
        f"GEMMs take {at_peak:.1f} s at the measured fp32 peak)"
    )
    p["profile"] = "; ".join(x for x in (says, p.get("profile", "")) if x)


def row(
    name: str,
    what: str,
    fast_s: float,
    base_s: float,
    n: int,
    note: str = "",
    samples: int = 1,
    profile: str = "",
    cpu: tuple | None = None,  # the profiles bf16_bound reads, where a row reports a bound
    target: float | None = None,  # one computed on this machine (bf16 rows), else TARGETS'
) -> dict:
    note = "; ".join(x for x in (note, profile) if x)
    ratio = base_s / fast_s if fast_s > 0 else float("nan")
    tgt = (
        target
        if target is not None
        else TARGETS.get(name, (None, None))[1 if torch.cuda.is_available() else 0]
    )
    ok = "n/a" if tgt is None else ("meets" if ratio >= tgt else f"misses by {tgt / ratio:.2f}x")
    r = {
        "row": name,
        "what": what,
        "n": n,
        "samples": samples,
        "fast_s": round(fast_s, 4),
        "baseline_s": round(base_s, 4),
        "ratio": round(ratio, 2),
        "target": tgt if tgt is None else round(tgt, 2),
        "verdict": ok,
        "note": note,
    }
    if torch.cuda.is_available():
        r["gpu_mem_MB"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print(f"  {name:<22} x{ratio:5.2f} (target {r['target']}) {ok}  {note}", flush=True)
    return r


def _examples(preset: str, n: int, dataset: str = "commonsense_qa"):
    ex = load_splits(dataset, preset)["pool"]
    return (ex * (n // max(1, len(ex)) + 1))[:n]


# ---------------------------------------------------------------- rows


def bench_ta_confidence(lm: LM, ex, repeats: int) -> dict:
    P = [cot_prompt(e, 0) for e in ex]
    C = [" " + demonstration(e.rationale or "", e.answer) for e in ex]
    fast = lambda: lm.score(P, C, batch_size=32)
    base = lambda: [lm.score([p], [c], batch_size=1)[0] for p, c in zip(P, C)]

    def check(a, b):
        assert all(
            torch.allclose(torch.exp(x.mean()), torch.exp(y.mean()), atol=1e-5) for x, y in zip(a, b)
        ), "TA confidence differs"

    p = pair(fast, base, check, repeats, profile=False)
    if PROFILE:
        # the baseline is one independent forward per output, so its GEMM FLOPs add up over outputs: a
        # profile of every 8th output, scaled by the tokens, gives them (profiling all 256 takes many minutes)
        few = slice(0, None, 8)
        cpu = cpu_profile(lambda: [lm.score([p], [c], batch_size=1)[0] for p, c in zip(P[few], C[few])])
        tok = lambda P, C: sum(lm.n_tokens(p, c) for p, c in zip(P, C))  # noqa: E731
        cpu["gemm_flop"] *= tok(P, C) / tok(P[few], C[few])
        p["cpu"] = (None, cpu)
        p["profile"] = f"baseline profiled on {len(P[few])} of {len(P)} outputs, GEMM FLOPs scaled by tokens"
    batching_bound(p)
    return row(
        "ta_confidence",
        "TA confidence, batched teacher-forced pass vs one forward per output",
        n=len(ex),
        **p,
    )


def bench_bucketing(lm: LM, ex, repeats: int) -> dict:
    """LM.score sorts by length so each batch pads little; the baseline pads every batch to the longest
    example."""
    P = [cot_prompt(e, 0) for e in ex]
    C = [" " + e.answer for e in ex]
    longest = max(range(len(P)), key=lambda i: lm.n_tokens(P[i], C[i]))

    def padded_to_longest():
        out = []
        for s in range(0, len(P), 16):
            # the longest example rides along in every batch, so every batch has the global max length
            res = lm.score(P[s : s + 16] + [P[longest]], C[s : s + 16] + [C[longest]], batch_size=17)
            out += res[:-1]
        return out

    def check(a, b):
        assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a, b)), "bucketing changed scores"

    ntok = sum(lm.n_tokens(p, c) for p, c in zip(P, C))
    p = pair(lambda: lm.score(P, C, batch_size=16), padded_to_longest, check, repeats)
    return row(
        "bucketed_batches",
        "length-sorted batches vs padding to the longest (tokens/s ratio)",
        n=len(ex),
        note=f"{ntok / p['fast_s']:.0f} tok/s vs {ntok / p['base_s']:.0f}",
        **p,
    )


def bench_self_consistency(lm: LM, ex, K: int, repeats: int, max_new_tokens: int = 16) -> dict:
    P = [answer_prompt(e) for e in ex]
    fast = lambda: lm.generate(
        P, max_new_tokens=max_new_tokens, do_sample=True, num_return_sequences=K, batch_size=16, seed=0
    )
    base = lambda: [
        lm.generate(P, max_new_tokens=max_new_tokens, do_sample=True, batch_size=16, seed=k) for k in range(K)
    ]

    def check(a, b):  # samples differ by design (different random streams): shapes only
        assert len(a) == len(P) and all(len(x) == K for x in a) and len(b) == K

    p = pair(fast, base, check, repeats)
    batching_bound(p)
    return row(
        "self_consistency",
        f"K={K} samples: one generate with num_return_sequences vs K calls",
        n=len(ex),
        **p,
    )


def _unshared(lm: LM, fn):
    """fn() on generate's plain path: no prefill or few-shot prefix shared between rows."""

    def run():
        lm.share_prefill = False
        try:
            return fn()
        finally:
            lm.share_prefill = True

    return run


def bench_prefill_sharing(lm: LM, ex, K: int, repeats: int, max_new_tokens: int = 8) -> dict:
    """K samples per prompt: prompt prefill once + KV cache repeated K times vs num_return_sequences alone
    (which copies each prompt K times before the prefill). Same seed -> the same samples, asserted."""
    P = [cot_prompt(e, 2) for e in ex]
    kw = dict(max_new_tokens=max_new_tokens, do_sample=True, num_return_sequences=K, batch_size=16, seed=0)
    plain = _unshared(lm, lambda: lm.generate(P, **kw))

    same = []

    def check(a, b):
        same.append(sum(x == y for x, y in zip(a, b)) / len(P))
        # fp ties may flip a draw
        assert same[0] >= 0.9, f"shared prefill changed the samples of {1 - same[0]:.0%} of prompts"

    p = pair(lambda: lm.generate(P, **kw), plain, check, repeats)
    return row(
        "sc_prefill_sharing",
        f"K={K} samples of 2-shot prompts: shared prefill vs num_return_sequences",
        n=len(ex),
        note=f"{same[0]:.0%} of prompts give identical samples",
        **p,
    )


def bench_generation(lm: LM, ex, repeats: int, max_new_tokens: int = 48) -> dict:
    """Greedy chain-of-thought generation of 4-shot prompts (notebook 10's teacher prompts): the few-shot
    prefix run once per pass and SHARED_ROWS x as many rows per pass vs the plain path (every prompt
    left-padded and prefilled whole, batch_size rows). Both write the same number of tokens per prompt, so
    the time ratio is the tokens/s ratio; the same greedy text for every prompt, asserted."""
    P = [cot_prompt(e, 4) for e in ex]
    kw = dict(max_new_tokens=max_new_tokens, batch_size=16)
    plain = _unshared(lm, lambda: lm.generate(P, **kw))

    def check(a, b):
        differ = sum(x != y for x, y in zip(a, b))
        assert differ == 0, (
            f"the shared few-shot prefix changed the greedy text of {differ} of {len(P)} prompts"
        )

    # no profile: torch.profiler's record of a 262k-vocabulary model's decoding steps outgrows 24 GB
    p = pair(lambda: lm.generate(P, **kw), plain, check, repeats, profile=False)
    return row(
        "generation",
        f"greedy 4-shot chain of thought ({max_new_tokens} tokens): shared few-shot prefix, "
        f"{SHARED_ROWS}x rows per pass vs plain batches of 16",
        n=len(ex),
        note="identical text for every prompt",
        **p,
    )


def bench_option_scoring(lm: LM, ex, repeats: int) -> dict:
    """Multiple-choice scoring: each prompt once, options sharing its KV cache vs every option as a full
    sequence."""
    P = [answer_prompt(e) for e in ex]
    opts = [[" " + c for c in e.choices] for e in ex]
    fast = lambda: lm.score_options(P, opts, batch_size=64)
    base = lambda: lm.score(
        [p for p, os in zip(P, opts) for _ in os], [o for os in opts for o in os], batch_size=16
    )

    def check(a, b):
        it = iter(b)
        assert all(torch.allclose(x, next(it), atol=1e-4) for per in a for x in per), "option scores differ"

    return row(
        "option_scoring",
        "options after one shared prompt pass vs each option as a full sequence",
        n=len(ex),
        **pair(fast, base, check, repeats),
    )


def bench_train_step(lm: LM, ex, repeats: int) -> dict:
    """Our training step (LM.loss + accelerate-free backward + AdamW) vs a bare PyTorch loop on the same
    batch, plus achieved FLOP/s as a share of this CPU's fp32 matmul peak."""
    from .training import make_items

    items = make_items(ex, [e.answer for e in ex], [e.rationale for e in ex])
    parts = [p for it in items for p in it.parts]
    P, T, W = [p.prompt for p in parts], [p.target for p in parts], torch.tensor([p.weight for p in parts])
    kwargs, tgt, mask = lm.batch(P, T, eos=True)
    model = lm.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)  # lr 0: timing only, weights unchanged
    model.train()

    def ours():
        loss = lm.loss(P, T, weights=W)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return float(loss.detach())

    labels = kwargs["input_ids"].masked_fill(~mask, -100)

    def bare():
        out = (
            model(input_ids=kwargs["input_ids"], attention_mask=kwargs.get("attention_mask"), labels=labels)
            if lm.arch == "causal"
            else model(**kwargs)
        )
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        return float(out.loss.detach())

    t = pair(ours, bare, lambda a, b: None, repeats)
    tf, t_bare = t["fast_s"], t["base_s"]
    model.load_state_dict(state)
    model.eval()
    ntok = (
        int(kwargs["attention_mask"].sum())
        if "attention_mask" in kwargs
        else int(kwargs["input_ids"].numel())
    )
    flops = 6 * sum(p.numel() for p in model.parameters()) * ntok  # forward + backward ~ 6·N·tokens
    peak = matmul_peak()
    return row(
        "train_step",
        "training step: its time at the measured fp32 matmul peak / its time (ratio = share of the peak)",
        n=len(parts),
        fast_s=tf,
        base_s=flops / peak,
        samples=t["samples"],
        note=f"{flops / tf / 1e9:.1f} GFLOP/s against the measured fp32 matmul peak "
        f"{peak / 1e9:.0f} GFLOP/s; a bare PyTorch loop on the same batch: {t_bare:.2f} s "
        f"({t_bare / tf:.2f}x ours)",
    )


def amdahl_target(bound: float | None) -> float | None:
    """A bf16 row's target: AMDAHL_SHARE of what its GEMM share lets bf16 reach on this machine."""
    return None if bound is None else AMDAHL_SHARE * bound


def _in_bf16(lm: LM, fn):
    """fn() with the LM switched to bf16 autocast for the call."""

    def run():
        lm.bf16 = True
        try:
            return fn()
        finally:
            lm.bf16 = False

    return run


def bench_bf16_options(lm: LM, ex, repeats: int, min_same: float) -> dict:
    P = [answer_prompt(e) for e in ex]
    opts = [[" " + c for c in e.choices] for e in ex]
    score = lambda: [[float(x.mean()) for x in per] for per in lm.score_options(P, opts, batch_size=64)]
    same = []

    def check(a, b):
        same.append(float(np.mean([int(np.argmax(x)) == int(np.argmax(y)) for x, y in zip(a, b)])))
        assert same[0] >= min_same, f"bf16 chose the fp32 option on {same[0]:.0%} of questions"

    p = pair(_in_bf16(lm, score), score, check, repeats, profile=True)
    target = amdahl_target(bf16_bound(p))
    return row(
        "bf16_option_scoring",
        "option scoring under bf16 autocast vs fp32",
        n=len(ex),
        note=f"same option on {same[0]:.0%} of questions",
        target=target,
        **p,
    )


def bench_bf16_generation(lm: LM, ex, repeats: int, max_new_tokens: int = 32) -> dict:
    P = [cot_prompt(e, 2) for e in ex]
    gen = lambda: lm.generate(P, max_new_tokens=max_new_tokens, batch_size=16)
    same = []

    def check(a, b):  # greedy text may part ways after a near-tie: reported, not required
        assert len(a) == len(b) == len(P)
        same.append(float(np.mean([x == y for x, y in zip(a, b)])))

    p = pair(_in_bf16(lm, gen), gen, check, repeats, profile=True)
    target = amdahl_target(bf16_bound(p))
    return row(
        "bf16_generation",
        f"batched greedy generation ({max_new_tokens} tokens) under bf16 autocast vs fp32",
        n=len(ex),
        note=f"identical text for {same[0]:.0%} of prompts",
        target=target,
        **p,
    )


def bench_bf16_saliency(lm: LM, ex, repeats: int, min_share: float) -> dict:
    from . import attribution

    kw = dict(method="saliency", k=5, target="gold", batch_size=len(ex), progress=False)

    def words():  # uncached: every timed call attributes anew
        return [r["words"] for r in attribution.influential_words(lm, ex, cache=False, **kw)]

    share = []

    def check(a, b):
        share.append(float(np.mean([len(set(x) & set(y)) >= 4 for x, y in zip(a, b)])))
        assert share[0] >= min_share, f"bf16 top-5 words share >= 4 of 5 on only {share[0]:.0%} of questions"

    p = pair(_in_bf16(lm, words), words, check, repeats, profile=True)
    target = amdahl_target(bf16_bound(p))
    return row(
        "bf16_saliency",
        "Saliency attribution under bf16 autocast vs fp32",
        n=len(ex),
        note=f"top-5 words share >= 4 of 5 on {share[0]:.0%} of questions",
        target=target,
        **p,
    )


def bench_bf16_train_step(lm: LM, ex, repeats: int) -> dict:
    """A training step with bf16 autocast around the forward pass and loss (backward and AdamW in fp32)
    against the same step in fp32, and its share of the bf16 matmul peak."""
    from .training import make_items

    items = make_items(ex, [e.answer for e in ex], [e.rationale for e in ex])
    parts = [p for it in items for p in it.parts]
    P, T, W = [p.prompt for p in parts], [p.target for p in parts], torch.tensor([p.weight for p in parts])
    model = lm.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, fused=True)  # lr 0: timing only, weights unchanged
    model.train()

    def step(bf16: bool):
        with torch.autocast(lm.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = lm.loss(P, T, weights=W)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return float(loss.detach())

    def check(a, b):
        assert abs(a - b) <= 0.02 * abs(b), f"bf16 loss {a:.4f} vs fp32 {b:.4f}"

    t = pair(lambda: step(True), lambda: step(False), check, repeats, profile=True)
    target = amdahl_target(bf16_bound(t))
    model.load_state_dict(state)
    model.eval()
    ntok = sum(lm.n_tokens(p, c, eos=True) for p, c in zip(P, T))
    flops = 6 * sum(q.numel() for q in model.parameters()) * ntok
    peak = matmul_peak(torch.bfloat16)
    return row(
        "bf16_train_step",
        "training step, bf16 autocast (forward + loss) vs fp32",
        n=len(parts),
        note=f"{flops / t['fast_s'] / 1e9:.1f} GFLOP/s = {100 * flops / t['fast_s'] / peak:.0f}% of the "
        f"bf16 matmul peak {peak / 1e9:.0f} GFLOP/s",
        target=target,
        **t,
    )


def bench_attribution(lm: LM, ex, method: str, repeats: int, n_steps: int = 20) -> dict:
    from .attribution import attribute_batch, build_prompt, continuation

    jobs = [build_prompt(e) for e in ex]
    P = [p for p, _ in jobs]
    C = [continuation(e, e.label) for e in ex]
    if method == "saliency":
        fast = lambda: attribute_batch(lm, P, C, "saliency", internal_batch_size=len(P))
        base = lambda: [attribute_batch(lm, [p], [c], "saliency")[0] for p, c in zip(P, C)]
    else:
        fast = lambda: attribute_batch(
            lm, P, C, "integrated_gradients", n_steps=n_steps, internal_batch_size=len(P) * n_steps
        )
        # captum per example with its default internal batching (all n_steps in one pass)
        base = lambda: [
            attribute_batch(
                lm, [p], [c], "integrated_gradients", n_steps=n_steps, internal_batch_size=n_steps
            )[0]
            for p, c in zip(P, C)
        ]

    def check(a, b):
        if method == "saliency":
            top = lambda r: np.argsort(-np.asarray(r["token_scores"]))[:5].tolist()
            assert all(top(x) == top(y) for x, y in zip(a, b)), "batched saliency changed the top tokens"
        else:
            assert all(np.allclose(x["token_scores"], y["token_scores"], atol=1e-4) for x, y in zip(a, b)), (
                "batched IG differs"
            )

    p = pair(fast, base, check, repeats)
    batching_bound(p)
    name = "attribution_saliency" if method == "saliency" else "attribution_ig"
    what = (
        "Saliency batched vs captum per example"
        if method == "saliency"
        else f"IG ({n_steps} steps) batched vs per example"
    )
    return row(name, what, n=len(ex), **p)


def bench_model_load(name: str) -> dict | None:
    if REGISTRY.get(name) is None or REGISTRY[name].source != "gguf":
        return None
    materialise(name)
    tf, _ = timed(lambda: load_model(name), 3)
    cold = cold_load_seconds(name)
    return row(
        "model_load",
        f"{name}: load from the safetensors cache vs dequantising the package GGUF",
        tf,
        cold,
        1,
        samples=3,
        note="baseline = GGUF load time recorded when the cache was built",
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--rows", default="", help="comma-separated subset of rows (writes bench*_profile.md)")
    ap.add_argument(
        "--profile", action="store_true", help="add each path's GEMM share of CPU time (torch.profiler)"
    )
    args = ap.parse_args(argv)
    global PROFILE
    PROFILE = args.profile
    try:
        preset = resolve_preset(args.preset)
    except ReproError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wanted = args.rows.split(",") if args.rows else list(TARGETS)
    unknown = [r for r in wanted if r not in TARGETS]
    if unknown:
        print(f"error: unknown bench row(s) {unknown}; valid: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    cfg = get_preset(preset)
    small = preset == "smoke"
    t0, load0 = time.time(), os.getloadavg()[0]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"bench ({preset}, {torch.get_num_threads()} threads, {device})", flush=True)
    teacher, student = load_model(cfg["models"]["teacher"]), load_model(cfg["models"]["student"])
    teacher.name, student.name = cfg["models"]["teacher"], cfg["models"]["student"]
    # every row but the bf16_* ones compares two fp32 paths of the same computation: in bf16 a batch's
    # padding may flip near-ties; the bf16 rows switch bf16 on for their fast path alone (_in_bf16)
    teacher.bf16 = student.bf16 = False
    n = lambda small_n, full_n: small_n if small else full_n
    ig_full = torch.cuda.is_available() or small
    plan = {  # row -> thunk; full sizes everywhere except IG on CPU (see below)
        "attribution_saliency": lambda: bench_attribution(
            teacher, _examples(preset, n(16, 64)), "saliency", args.repeats
        ),
        # IG: 16 examples x 20 steps on CUDA; 8 x 10 on CPU, where 16 x 20 with the per-example baseline
        # takes over 10 min
        "attribution_ig": lambda: bench_attribution(
            teacher,
            _examples(preset, 4 if small else (16 if ig_full else 8)),
            "ig",
            args.repeats,
            n_steps=20 if ig_full else 10,
        ),
        "self_consistency": lambda: bench_self_consistency(
            student, _examples(preset, n(16, 64)), 5, args.repeats
        ),
        "sc_prefill_sharing": lambda: bench_prefill_sharing(
            student, _examples(preset, n(8, 32)), 5, args.repeats
        ),
        "option_scoring": lambda: bench_option_scoring(student, _examples(preset, n(16, 64)), args.repeats),
        "generation": lambda: bench_generation(teacher, _examples(preset, n(8, 32)), args.repeats),
        "ta_confidence": lambda: bench_ta_confidence(
            student, _examples(preset, n(32, 256), "boolq"), args.repeats
        ),
        "train_step": lambda: bench_train_step(student, _examples(preset, 8, "boolq"), args.repeats),
        "bucketed_batches": lambda: bench_bucketing(
            student, _examples(preset, n(64, 256), "boolq"), args.repeats
        ),
        # tiny random models put options within a rounding error of each other: the agreement targets are the
        # real models' (the smoke run checks that the rows run and the paths agree broadly)
        "bf16_option_scoring": lambda: bench_bf16_options(
            student, _examples(preset, n(16, 300)), args.repeats, min_same=n(0.5, 0.97)
        ),
        "bf16_generation": lambda: bench_bf16_generation(student, _examples(preset, n(8, 32)), args.repeats),
        "bf16_saliency": lambda: bench_bf16_saliency(
            teacher, _examples(preset, n(8, 50)), args.repeats, min_share=n(0.5, 0.9)
        ),
        "bf16_train_step": lambda: bench_bf16_train_step(
            student, _examples(preset, 8, "commonsense_qa"), args.repeats
        ),
    }
    assert list(plan) + ["model_load"] == list(TARGETS)
    rows = []
    for i, name in enumerate(wanted, 1):
        print(f"[{i}/{len(wanted)}] {name} ... ({time.time() - t0:.0f} s so far)", flush=True)
        r = bench_model_load(cfg["models"]["student"]) if name == "model_load" else plan[name]()
        rows += [r] if r else []
    return _write(rows, args, preset, t0, load0)


def _write(rows: list[dict], args, preset: str, t0: float, load0: float) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    name = bench_name(preset) + ("_profile" if args.profile or args.rows else "")
    with open(args.out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(
            f,
            fieldnames=sorted(
                {k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99
            ),
        )
        w.writeheader()
        w.writerows(rows)
    cuda = ", CUDA" if torch.cuda.is_available() else ""
    md = [
        f"# Benchmarks ({preset} preset)",
        "",
        f"`make bench` on {torch.get_num_threads()} CPU threads{cuda}; median of up to {args.repeats} timed "
        "calls per path; ratio = baseline time / fast time, timed in the same process. Every row first "
        "checks its two paths' outputs: rows other than `bf16_*` compare two fp32 paths and assert the same "
        "outputs (prefill sharing: the same samples for >= 90 % of prompts); the `bf16_*` rows compare bf16 "
        "with fp32 and assert the agreement in their note (the same option, top-5 words sharing >= 4 of 5, "
        "a loss within 2 %), except generation, where greedy text may part ways after a near-tie and the "
        "identical share is reported. Targets are ratios to what this machine allows: `train_step` is the "
        "share of the measured fp32 matmul peak a training step reaches (its baseline: the step's FLOPs at "
        f"that peak), target 0.5; a `bf16_*` row's target is {AMDAHL_SHARE:.0%} of its Amdahl bound (its "
        "GEMMs' share of the fp32 wall time sped up by the measured bf16 / fp32 matmul peak ratio, from a "
        f"profiled call of each path). Total {time.time() - t0:.0f} s.",
        "",
        f"Load average (1 min) {load0:.1f} at the start and {os.getloadavg()[0]:.1f} at the end, on "
        f"{os.cpu_count()} cores: a load above the threads used means other processes shared the CPU, and "
        "the times are slower and noisier than on an idle machine.",
        "",
        "Each path is first called once, untimed, for the equality check (that call pays the one-time "
        f"costs); then timed alternately, at least once and up to {args.repeats} times while the row has "
        f"spent less than {ROW_BUDGET_S:.0f} s (`samples` = timed calls per path).",
        "",
        "| row | what | n | samples | fast s | baseline s | ratio | target | verdict | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['row']} | {r['what']} | {r['n']} | {r.get('samples', '')} | {r['fast_s']} | "
        f"{r['baseline_s']} | {r['ratio']} | {r['target']} | {r['verdict']} | {r['note']} |"
        for r in rows
    ]
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / (name + '.md')} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
