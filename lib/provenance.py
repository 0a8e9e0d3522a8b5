"""Where each rendered file came from: the commit, the configuration and the inputs it was computed from.

`make reproduce` (lib.reproduce) records, after each notebook, every file the notebook wrote in
results/<preset>/, in results/<preset>/provenance.json (sorted, one key per line, to read and diff):

  "21_B_main_table.csv": {"notebook": "21_B_main_table.ipynb", "commit": "<git HEAD>", "dirty": false,
                          "config_hash": "<hash of the config sections the notebook reads>",
                          "fingerprint": "<lib.reproduce.fingerprint: notebook, lib/, pins>",
                          "sha256": "<the file's content when written>",
                          "inputs": {"12_A_main_table.csv": "<sha256 of the bytes the notebook parsed>"},
                          "written_at": "2026-01-01 00:00:00"}

A notebook, or lib.report on its behalf, reads another notebook's CSV through read_result, which notes the
file and the hash of the bytes it parsed for lib.reproduce to collect. check() compares the record with the
folder: a file whose inputs changed since it was computed (stale), whose content changed since its notebook
wrote it (modified), computed under another configuration of its notebook, or never recorded.
`python -m lib.provenance --preset offline` prints every such file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from .common import ROOT, atomic_path, read_json, results_dir, stable_hash

FILE = "provenance.json"
READS_ENV = "DISTILL_READS"  # where read_result notes its reads (set by lib.reproduce for each notebook)
# written by lib.reproduce and lib.report about the run as a whole, not by one notebook
NOT_OUTPUTS = {FILE, "README.md", "run_log.csv", "run_times.md", "phases.csv"}
# what every notebook reads besides the sections it names: params() returns models and data, and
# resolve_preset sets the precision from run, which every cache key carries
BASE_SECTIONS = ("models", "data", "run")


def sha256(path: Path) -> str | None:
    """Hash of a file's content; None for a file that does not exist."""
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# ---------------------------------------------------------------- reading another notebook's CSV


def read_csv(path: Path, **kw):
    """The CSV at `path` as a DataFrame (None if missing; `kw` go to pandas.read_csv), noting the hash of the
    bytes parsed: the reader is stale once the file changes, and an absent file that appears later makes it
    stale too."""
    import pandas as pd

    path = Path(path)
    data = path.read_bytes() if path.is_file() else None
    note_read(path, None if data is None else hashlib.sha256(data).hexdigest())
    return None if data is None else pd.read_csv(io.BytesIO(data), **{"keep_default_na": True, **kw})


def read_result(preset: str, name: str, **kw):
    """results/<preset>/<name>, another notebook's CSV, as a DataFrame (None if not written yet)."""
    return read_csv(results_dir(preset) / name, **kw)


def note_read(path: Path, digest: str | None) -> None:
    log = os.environ.get(READS_ENV)
    if log:  # outside `make reproduce` (Jupyter, nbmake) nobody collects the reads
        with open(log, "a") as f:
            f.write(json.dumps({"path": str(Path(path).resolve()), "sha256": digest}) + "\n")


def reads(log: Path, folder: Path) -> dict[str, str | None]:
    """file (relative to `folder`) -> sha256 of what was read, from a log of note_read; the first read wins
    (a notebook reads a file once, or the same bytes again)."""
    out: dict[str, str | None] = {}
    if not Path(log).exists():
        return out
    for line in Path(log).read_text().splitlines():
        r = json.loads(line)
        out.setdefault(os.path.relpath(r["path"], Path(folder).resolve()), r["sha256"])
    return out


def changed_inputs(inputs: dict[str, str | None], folder: Path) -> list[str]:
    """The recorded inputs whose current content differs from what was read (or that appeared or vanished)."""
    return sorted(f for f, h in inputs.items() if sha256(Path(folder) / f) != h)


# ---------------------------------------------------------------- what a notebook was computed from


def code_of(nb: Path) -> str:
    return "\n".join("".join(c["source"]) for c in read_json(nb)["cells"] if c["cell_type"] == "code")


def config_sections(nb: Path) -> list[str]:
    """The config sections a notebook reads: those it names to config.params, or indexes get_preset with
    (read from its source), and BASE_SECTIONS."""
    code = code_of(nb)
    named = set()
    for args in re.findall(r"params\(\s*[\w.]+\s*((?:,\s*\"\w+\"\s*)+)", code):
        named.update(re.findall(r"\"(\w+)\"", args))
    named.update(re.findall(r"get_preset\([^)]*\)\s*\[\s*\"(\w+)\"\s*\]", code))
    return sorted(named | set(BASE_SECTIONS))


def config_hash(nb: Path, preset: str) -> str | None:
    """Hash of the preset's sections a notebook reads (`make reproduce` passes it the preset alone, every
    other parameter comes from them); None for a notebook that does not exist (any more)."""
    from .config import get_preset

    if not Path(nb).is_file():
        return None
    cfg = get_preset(preset)
    return stable_hash({"preset": preset, "sections": {s: cfg.get(s) for s in config_sections(nb)}}, 16)


def commit() -> tuple[str, bool]:
    """git HEAD and whether the working tree differs from it (results/ aside: a run writes there)."""
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True)
    head = git("rev-parse", "HEAD")
    if head.returncode:
        return "unknown", True  # not a git checkout: nothing says which code ran
    status = git("status", "--porcelain", "--", ".", ":(exclude)results")
    return head.stdout.strip(), bool(status.stdout.strip())


# ---------------------------------------------------------------- what a notebook wrote


def rendered(folder: Path) -> list[str]:
    """The files of a results folder that notebooks write (its logs/ and the run-wide files aside)."""
    return sorted(
        p.name
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in NOT_OUTPUTS
    )


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (mtime ns, size, inode) of each rendered file: compared after a notebook, what it wrote."""
    return {n: _stat(Path(folder) / n) for n in rendered(folder)}


def _stat(p: Path) -> tuple[int, int, int]:
    s = p.stat()
    return s.st_mtime_ns, s.st_size, s.st_ino


def written(folder: Path, before: dict) -> list[str]:
    """The rendered files created or rewritten since `before` (snapshot)."""
    return [n for n in rendered(folder) if before.get(n) != _stat(Path(folder) / n)]


def load(folder: Path) -> dict[str, dict]:
    p = Path(folder) / FILE
    return read_json(p) if p.exists() else {}


def record(folder: Path, notebook: str, outputs: list[str], inputs: dict, **run) -> dict[str, dict]:
    """Record `outputs` (files in `folder`) as written by `notebook` from `inputs`; `run` holds commit,
    dirty, config_hash and fingerprint. Entries of files that no longer exist are dropped."""
    folder = Path(folder)
    prov = {f: e for f, e in load(folder).items() if (folder / f).exists()}
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    for f in outputs:
        prov[f] = {"notebook": notebook, **run, "sha256": sha256(folder / f), "inputs": inputs}
        prov[f]["written_at"] = when
    with atomic_path(folder / FILE) as tmp:
        tmp.write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")
    return prov


def leftovers(folder: Path, notebook: str, outputs: list[str], notebooks: list[Path]) -> list[str]:
    """Files named after `notebook` (its number prefix) that its run just now did not write: written by an
    earlier run of it, under another configuration or code. None when another notebook shares the prefix."""
    prefix = notebook.split("_")[0] + "_"
    if sum(n.name.startswith(prefix) for n in notebooks) != 1:
        return []
    return [f for f in rendered(folder) if f.startswith(prefix) and f not in outputs]


# ---------------------------------------------------------------- checking a results folder


class Problem(NamedTuple):
    kind: str  # "no provenance" | "stale" | "modified" | "other configuration"
    file: str
    notebook: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file} ({self.notebook}): {self.kind}: {self.detail}"


def owner(name: str, notebooks_dir: Path) -> str:
    """The notebook whose number prefix a file carries (every notebook names its outputs so)."""
    prefix = name.split("_")[0] + "_"
    return next((n.name for n in sorted(Path(notebooks_dir).glob(f"{prefix}*.ipynb"))), "?")


def check(folder: Path, preset: str | None = None, notebooks_dir: Path | None = None) -> list[Problem]:
    """Every rendered file of `folder` that cannot be trusted as it stands, with the reason."""
    folder, nbdir = Path(folder), Path(notebooks_dir or ROOT / "notebooks")
    preset = preset or folder.name
    prov, problems, current = load(folder), [], {}
    for name in rendered(folder):
        e = prov.get(name)
        if e is None:
            why = "no record of the run that wrote it" if prov else f"the folder has no {FILE}"
            problems.append(Problem("no provenance", name, owner(name, nbdir), why))
            continue
        nb = e["notebook"]
        if sha256(folder / name) != e["sha256"]:
            problems.append(Problem("modified", name, nb, "its content changed since its notebook wrote it"))
        if changed := changed_inputs(e["inputs"], folder):
            why = f"computed from an earlier {', '.join(changed)}"
            problems.append(Problem("stale", name, nb, why))
        if nb not in current:
            current[nb] = config_hash(nbdir / nb, preset)
        if e["config_hash"] != current[nb]:
            why = "its notebook is gone" if current[nb] is None else "the preset's sections it reads changed"
            problems.append(Problem("other configuration", name, nb, why))
    return problems


def stale_notebooks(problems: list[Problem]) -> set[str]:
    """The notebooks whose renders were computed from inputs that changed since."""
    return {p.notebook for p in problems if p.kind == "stale"}


# ---------------------------------------------------------------- run times of the current configuration


CSV_ONLY = ("30_",)  # notebooks that compute nothing: they read the CSVs of the others


def notebook_paths() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def current_runs(df, notebooks: list[Path] | None = None):
    """The rows of a run log whose notebook still exists and ran under its current configuration (the
    preset's sections it reads, lib.provenance.config_hash); rows logged before the log had the column, or
    under another configuration, are dropped. A log that never had the column is taken whole."""
    if "config_hash" not in df:
        return df
    paths = {p.name: p for p in (notebook_paths() if notebooks is None else notebooks)}
    cfg = {
        (nb, pre): config_hash(paths[nb], pre) if nb in paths else None
        for nb, pre in set(zip(df.notebook, df.preset))
    }
    now = [cfg[nb, pre] for nb, pre in zip(df.notebook, df.preset)]
    return df[df.config_hash.notna() & (df.config_hash == now)]


def cold_warm(
    log: Path, current: bool = True, notebooks: list[Path] | None = None
) -> dict[str, tuple[float | None, float | None, float]]:
    """notebook -> (cold s, warm s, peak RSS MB) from a run log; `current`: from runs of the current
    configuration only (current_runs). Cold = the last run that computed anything (runs logged before the
    count existed are taken as cold; the last, because a changed preset or step makes earlier cold runs
    stale); warm = the last run that computed nothing. A notebook that only reads other notebooks' CSVs
    (CSV_ONLY) has cold = warm; any other whose every logged run was warm (its runs were computed under
    another preset or notebook) has no cold time."""
    import pandas as pd

    df = pd.read_csv(log, dtype={"config_hash": str, "fingerprint": str})
    if current:
        df = current_runs(df, notebooks)
    if "artifacts_computed" not in df:
        df["artifacts_computed"] = float("nan")
    out = {}
    for nb, g in df.groupby("notebook"):
        cold = g[g.artifacts_computed.isna() | (g.artifacts_computed > 0)]
        warm = g[g.artifacts_computed == 0]
        if not len(cold) and str(nb).startswith(CSV_ONLY):
            cold = warm.iloc[-1:]
        last = lambda runs: float(runs.seconds.iloc[-1]) if len(runs) else None
        out[nb] = (last(cold), last(warm), float(g.peak_rss_MB.max()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="list the rendered files of results/<preset>/ to recompute")
    ap.add_argument("--preset", default="offline")
    args = ap.parse_args(argv)
    problems = check(results_dir(args.preset), args.preset)
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s) in results/{args.preset}/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
