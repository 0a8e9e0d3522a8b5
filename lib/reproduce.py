"""`make reproduce`: run every numbered notebook through papermill, in order, for one preset.

Shows which notebook runs and overall progress, stops at the first failing notebook with its name and
the failing cell's error (the executed copy, error included, is kept), prints the total wall time and
appends per-notebook times to results/<preset>/run_log.csv (read by `make bench`).

A notebook whose executed copy is up to date is not run again (as `make` does): its copy ran without error,
at this preset, from the same notebook and the same code (a fingerprint of the notebook, lib/ and the pinned
requirements, stored in the copy's metadata), and no notebook before it was run again. Everything after the
first notebook that does run is run too, since it may read that notebook's CSVs. `--force` (`FORCE=1 make
reproduce`) runs every notebook; its expensive steps still come from the caches.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

from .common import ROOT, atomic_path, cache_dir, results_dir

KERNEL = "distill-repro"


def notebooks(only: list[str] | None = None) -> list[Path]:
    nbs = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        nbs = [n for n in nbs if any(n.name.startswith(o) for o in only)]
    return nbs


META = "distill_repro"


def fingerprint(nb: Path, preset: str) -> str:
    """Hash of what an executed copy depends on besides the caches: the notebook, the library, the pins."""
    from .common import stable_hash

    code = sorted((ROOT / "lib").glob("*.py")) + [ROOT / "env" / "requirements.txt", nb]
    return stable_hash({"preset": preset, "files": {f"{p.parent.name}/{p.name}": p.read_text() for p in code}}, 20)


def up_to_date(dest: Path, fp: str, html: bool) -> bool:
    import nbformat

    if not dest.exists() or (html and not dest.with_suffix(".html").exists()):
        return False
    try:
        meta = nbformat.read(str(dest), as_version=4).metadata
    except Exception:  # unreadable copy (killed mid-write): run it again
        return False
    return meta.get(META, {}).get("fingerprint") == fp


def mark_done(dest: Path, fp: str) -> None:
    """Record the fingerprint in the executed copy (written atomically: a kill leaves the old copy or the new)."""
    import nbformat

    nb = nbformat.read(str(dest), as_version=4)
    nb.metadata[META] = {"fingerprint": fp}
    with atomic_path(dest) as tmp:
        nbformat.write(nb, str(tmp))


def export_html(executed: Path) -> None:
    import nbconvert

    body, _ = nbconvert.HTMLExporter().from_filename(str(executed))
    executed.with_suffix(".html").write_text(body)


class PeakRSS:
    """Peak resident memory of this process's children (the notebook kernel), polled twice a second."""

    def __init__(self):
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.5):
            try:
                rss = sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                continue
            self.peak = max(self.peak, rss)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


LOG_HEADER = ["timestamp", "preset", "notebook", "seconds", "peak_rss_MB", "artifacts_computed"]


CACHED = ("artifacts", "teachers", "models")  # cached step outputs, teacher JSONL (appended), models built from GGUF


def artifacts_written_since(t0: float) -> int:
    """Cache files written since t0 (step outputs, teacher answers, built models): 0 means the notebook ran
    fully warm, every expensive step a cache hit."""
    roots = [cache_dir() / d for d in CACHED]
    return sum(1 for r in roots if r.exists() for p in r.rglob("*") if p.is_file() and p.stat().st_mtime >= t0)


def append_log(log: Path, row: list) -> None:
    """One row per notebook run; a log written before a column existed is rewritten with the column empty."""
    rows = list(csv.reader(open(log, newline=""))) if log.exists() else []
    if rows and rows[0] == LOG_HEADER:
        with open(log, "a", newline="") as f:
            csv.writer(f).writerow(row)
        return
    rows = [LOG_HEADER] + [r + [""] * (len(LOG_HEADER) - len(r)) for r in rows[1:]] + [row]
    with atomic_path(log) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def cold_warm(log: Path) -> dict[str, tuple[float | None, float | None, float]]:
    """notebook -> (cold s, warm s, peak RSS MB) from a run log. Cold = the last run that computed anything
    (runs logged before the count existed are taken as cold; the last, because a changed preset or step makes
    earlier cold runs stale); warm = the last run that computed nothing. A notebook that never computes anything
    (it only reads other notebooks' CSVs) has cold = warm."""
    import pandas as pd

    df = pd.read_csv(log)
    if "artifacts_computed" not in df:
        df["artifacts_computed"] = float("nan")
    out = {}
    for nb, g in df.groupby("notebook"):
        cold = g[g.artifacts_computed.isna() | (g.artifacts_computed > 0)]
        warm = g[g.artifacts_computed == 0]
        if not len(cold) and len(warm) == len(g):  # a notebook with no cached step (30 only reads CSVs): cold = warm
            cold = warm.iloc[-1:]
        out[nb] = (float(cold.seconds.iloc[-1]) if len(cold) else None, float(warm.seconds.iloc[-1]) if len(warm) else None,
                   float(g.peak_rss_MB.max()))
    return out


def main(argv=None) -> int:
    import papermill as pm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=os.environ.get("PRESET", "offline"))
    ap.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 00 10")
    ap.add_argument("--html", action="store_true", help="also write an HTML copy of each executed notebook")
    ap.add_argument("--force", action="store_true", help="run every notebook, also those whose executed copy is up to date")
    args = ap.parse_args(argv)
    from .config import get_preset
    from .common import ReproError

    try:
        get_preset(args.preset)
    except ReproError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = results_dir(args.preset)
    nbs = notebooks(args.only)
    if not nbs:
        print("error: no notebooks matched", file=sys.stderr)
        return 2
    t_all = time.time()
    log = out / "run_log.csv"
    ran = skipped = 0
    for i, nb in enumerate(nbs, 1):
        dest = out / nb.name
        fp = fingerprint(nb, args.preset)
        if not args.force and not ran and up_to_date(dest, fp, args.html):
            print(f"[{i}/{len(nbs)}] {nb.name} up to date (same notebook, code and preset; FORCE=1 runs it), skipped", flush=True)
            skipped += 1
            continue
        ran += 1
        print(f"[{i}/{len(nbs)}] {nb.name} (preset={args.preset}) ...", flush=True)
        t0 = time.time()
        try:
            with PeakRSS() as mem:
                pm.execute_notebook(str(nb), str(dest), parameters={"preset": args.preset}, kernel_name=KERNEL,
                                    cwd=str(ROOT / "notebooks"), progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as e:
            print(f"FAILED: {nb.name}, cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
            print(f"the executed copy with the error is at {dest}", file=sys.stderr)
            return 1
        dt = time.time() - t0
        mark_done(dest, fp)
        if args.html:
            export_html(dest)
        computed = artifacts_written_since(t0)
        append_log(log, [time.strftime("%Y-%m-%d %H:%M:%S"), args.preset, nb.name, round(dt, 1), round(mem.peak / 2**20), computed])
        print(f"[{i}/{len(nbs)}] {nb.name} done in {dt:.0f} s (peak memory {mem.peak / 2**30:.1f} GiB, "
              f"{computed} cached artefacts computed{'' if computed else ': fully warm'})", flush=True)
    print(f"all {len(nbs)} notebooks done ({ran} run, {skipped} up to date) in {(time.time() - t_all) / 60:.1f} min; "
          f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
