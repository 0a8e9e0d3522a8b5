"""Where a notebook's time goes: seconds, tokens and estimated GFLOP per phase, against the machine's peak.

Every computing call runs inside `phase(name, n_params)` and counts the tokens it feeds the model with
`count(tokens)`. A phase inside another is taken out of the outer one (dev scoring inside training counts as
score, not train), so the phases of one process never overlap. Each process appends its records, a JSON line
per outermost call, to the file $DISTILL_PHASES names (`lib.reproduce` sets it per notebook; Ray workers get
it through `lib.runner.ray_init`); without it nothing is recorded.

GFLOP are estimated from tokens: FLOP_PER_TOKEN x N per token, N the parameters a token is multiplied by
(`matmul_params`: embedding tables are lookups; 2 N for a forward pass, 6 N for a training step: forward,
backward and weight gradients; 4 N for an attribution pass: forward and backward to the inputs only, the
weights frozen). Attention's quadratic term and a tied output projection (computed only where a token is
predicted) are left out, so the model does somewhat more work than this counts. Generation counts every
position it computes: prompts (pads included) at prefill and one token per row per decoding step.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager

import pandas as pd

ENV = "DISTILL_PHASES"
PHASES = ("train", "score", "generate", "attribute")
FLOP_PER_TOKEN = {"train": 6, "score": 2, "generate": 2, "attribute": 4}
_state = threading.local()


def _stack() -> list:
    if not hasattr(_state, "stack"):
        _state.stack, _state.done = [], []
    return _state.stack


@contextmanager
def phase(name: str, n_params: int, precision: str = "fp32"):
    """Time the enclosed call as `name`; `count` adds its tokens. Yields nothing."""
    import torch

    stack = _stack()
    rec = {"phase": name, "precision": precision, "params": int(n_params), "tokens": 0, "child_s": 0.0}
    stack.append(rec)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        stack.pop()
        if stack:
            stack[-1]["child_s"] += dt
        own = dt - rec.pop("child_s")
        rec |= {"seconds": own, "threads": torch.get_num_threads(), "pid": os.getpid()}
        _state.done.append(rec)
        if not stack:
            _flush()


def matmul_params(model) -> int:
    """The parameters a token's pass multiplies by: all but embedding tables, which are looked up (a tied
    output projection shares the token embedding's table and is left out with it)."""
    import torch

    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    seen = {id(p): p.numel() for p in model.parameters()}
    return sum(n for k, n in seen.items() if k not in tables)


def count(tokens: int) -> None:
    """Add `tokens` to the innermost open phase (none open: nothing)."""
    stack = _stack()
    if stack:
        stack[-1]["tokens"] += int(tokens)


def _flush() -> None:
    path, done = os.environ.get(ENV), _state.done
    _state.done = []
    if path and done:
        with open(path, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in done)


def summary(path, peaks: dict | None = None) -> pd.DataFrame:
    """The records of `path` summed per phase, precision and thread count: calls, seconds (summed over the
    processes that ran side by side), tokens, GFLOP, GFLOP/s per process and, where `peaks` has the
    measured GEMM peak {(precision, threads): FLOP/s}, its share."""
    cols = ["phase", "precision", "threads", "calls", "seconds", "tokens", "gflop", "gflop_s", "peak_gflop_s"]
    try:
        recs = pd.read_json(path, lines=True)
    except (FileNotFoundError, ValueError):
        return pd.DataFrame(columns=[*cols, "share_of_peak"])
    recs["gflop"] = recs.phase.map(FLOP_PER_TOKEN) * recs.params * recs.tokens / 1e9
    t = (
        recs.groupby(["phase", "precision", "threads"], as_index=False)
        .agg(
            calls=("seconds", "size"),
            seconds=("seconds", "sum"),
            tokens=("tokens", "sum"),
            gflop=("gflop", "sum"),
        )
        .assign(gflop_s=lambda d: d.gflop / d.seconds.clip(lower=1e-9))
    )
    peaks = peaks or {}
    t["peak_gflop_s"] = [peaks.get((p, int(n)), float("nan")) / 1e9 for p, n in zip(t.precision, t.threads)]
    t["share_of_peak"] = t.gflop_s / t.peak_gflop_s
    return t


# (rows, inner, cols) of the matmuls a 135M-parameter student runs: attention / MLP projections of a batch
SHAPES = ((512, 576, 576), (512, 576, 1536), (512, 1536, 576), (1024, 1024, 1024), (512, 1536, 1536))


def matmul_peak(dtype=None, repeats: int = 5) -> float:
    """FLOP/s of the fastest of SHAPES in `dtype` (default fp32), the median of `repeats` calls each: the
    peak a phase's (and `make bench`'s training step's) share is measured against."""
    import statistics

    import torch

    best = 0.0
    for m, k, n in SHAPES:
        a, b = (
            torch.randn(m, k, dtype=dtype or torch.float32),
            torch.randn(k, n, dtype=dtype or torch.float32),
        )
        a @ b  # warm-up: the first call picks the kernel
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        best = max(best, 2 * m * k * n / statistics.median(times))
    return best


def measure_peaks(threads=(1, 2), passes: int = 2) -> dict:
    """{(precision, threads): FLOP/s} of `matmul_peak` in fp32 and, where the CPU has bf16 units, bf16, at
    each thread count the runs use (two single-thread Ray workers, or one process on every core); the best
    of `passes` passes, so a moment of other load on the machine does not lower a peak. A few seconds."""
    import torch

    from .common import bf16_hardware

    before, out = torch.get_num_threads(), {}
    dtypes = {"fp32": torch.float32} | ({"bf16": torch.bfloat16} if bf16_hardware() else {})
    try:
        for n in threads:
            torch.set_num_threads(n)
            for name, dt in dtypes.items():
                out[(name, n)] = max(matmul_peak(dt, repeats=3) for _ in range(passes))
    finally:
        torch.set_num_threads(before)
    return out


TABLE = "phases.csv"  # results/<preset>/: per notebook, its last run that computed something, per phase


def record_notebook(out, notebook: str, path, peaks: dict, config_hash: str, cold: bool) -> pd.DataFrame:
    """Replace `notebook`'s rows of out/TABLE with the summary of the records at `path` (its run that just
    finished) when that run was cold (it computed a cached step, as run_log.csv counts it); a warm run
    leaves the cold run's rows standing, also where it recomputed the few uncached steps."""
    from pathlib import Path

    from .common import machine

    t = summary(path, peaks)
    csv = Path(out) / TABLE
    old = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["notebook"])
    if t.empty or not cold:
        return old
    t.insert(0, "notebook", notebook)
    t = t.assign(config_hash=config_hash, machine=machine(), finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    new = pd.concat([old[old.notebook != notebook], t], ignore_index=True).sort_values(["notebook", "phase"])
    new.to_csv(csv, index=False, float_format="%.6g")
    return new
