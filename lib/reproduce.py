"""`make reproduce`: run every numbered notebook through papermill, in order, for one preset.

Each notebook starts with a line giving its estimated time and the time left (from the run log below), and
shows what its kernel prints and its progress bars while it runs; the kernel's output of the last run of each
notebook is kept in results/<preset>/logs/<notebook>.log. The runner stops at the first failing notebook
with its name and the failing cell's error (the executed copy, error included, is kept), prints the total wall
time, appends per-notebook times to results/<preset>/run_log.csv and writes them per notebook, cold and warm,
to results/<preset>/run_times.md.

A notebook whose executed copy is up to date is not run again (as `make` does): this machine computed that
copy, without error, at this preset, from the same notebook and the same code, and every other notebook's CSV
it read is as it was then. The copy's metadata holds a fingerprint of the notebook, lib/ and the pinned
requirements, the id of the run that wrote it and the hash of every file it read (lib.provenance); a local
record under the cache (<cache>/executed/<preset>/<notebook>.json, ignored by git) holds the fingerprint and
run id, written when the run finishes here. Committed executed copies are there to read: a fresh clone has no
record, so it computes every notebook. Everything after the first notebook that does run is run too, since it
may read that notebook's CSVs. `--force` (`FORCE=1 make reproduce`) runs every notebook. The expensive steps
come from the caches, so an interrupted run resumes where it stopped.

After each notebook, every file it wrote in results/<preset>/ is recorded in results/<preset>/provenance.json
(commit, configuration hash, inputs read: lib.provenance), and the files named after it that this run did not
write, left by an earlier run under another configuration or code, are removed. The run log records the
configuration hash of each run; run_times.md times only runs of the current configuration.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from . import phases, provenance, runner
from .common import ROOT, atomic_path, cache_dir, read_json, results_dir, write_json

KERNEL = "distill-repro"
ENGINE = "distill-repro-console"  # papermill engine name of _engine()
META = "distill_repro"  # executed copies' metadata key


def notebooks(only: list[str] | None = None) -> list[Path]:
    nbs = provenance.notebook_paths()
    if only:
        nbs = [n for n in nbs if any(n.name.startswith(o) for o in only)]
    return nbs


def fingerprint(nb: Path, preset: str) -> str:
    """Hash of what an executed copy depends on besides the caches: the notebook, the library, the pins."""
    from .common import stable_hash

    code = sorted((ROOT / "lib").glob("*.py")) + [ROOT / "env" / "requirements.txt", nb]
    files = {f"{p.parent.name}/{p.name}": p.read_text() for p in code}
    return stable_hash({"preset": preset, "files": files}, 20)


def record_path(preset: str, nb: str) -> Path:
    """This machine's record of the last finished run of a notebook (under the cache: never committed)."""
    return cache_dir() / "executed" / preset / f"{Path(nb).stem}.json"


def copy_meta(dest: Path) -> dict | None:
    """What the executed copy records of the run that wrote it; None for an unreadable copy (killed
    mid-write) or none."""
    import nbformat

    try:
        return nbformat.read(str(dest), as_version=4).metadata.get(META, {})
    except Exception:
        return None


def changed_inputs(dest: Path) -> list[str]:
    """The files the executed copy's run read that have changed since (another notebook reran)."""
    meta = copy_meta(dest) if dest.exists() else None
    return provenance.changed_inputs((meta or {}).get("inputs", {}), dest.parent)


def up_to_date(dest: Path, fp: str, html: bool, record: Path) -> bool:
    """The executed copy has this fingerprint, this machine's record says its run wrote that copy, and every
    file that run read is unchanged."""
    if not dest.exists() or (html and not dest.with_suffix(".html").exists()):
        return False
    meta = copy_meta(dest)
    try:
        rec = read_json(record)
    except Exception:  # no record: run it again
        return False
    return (
        meta is not None
        and meta.get("fingerprint") == fp == rec.get("fingerprint")
        and meta.get("run") is not None
        and rec.get("run") == meta.get("run")
        and not provenance.changed_inputs(meta.get("inputs", {}), dest.parent)
    )


def mark_done(dest: Path, fp: str, run: str, prov: dict | None = None) -> None:
    """Record the fingerprint, run id and provenance (commit, configuration hash, inputs read) in the
    executed copy (written atomically: a kill leaves the old copy or the new)."""
    import nbformat

    nb = nbformat.read(str(dest), as_version=4)
    nb.metadata[META] = {"fingerprint": fp, "run": run, **(prov or {})}
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


# ---------------------------------------------------------------- what a running notebook shows

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def final_text(line: str) -> str:
    """What a terminal shows of a line rewritten with carriage returns (tqdm redraws a bar in place): its last
    non-blank segment, so a log keeps a bar's final state and none of the redraws."""
    segs = [x for x in line.split("\r") if x.strip()]
    return ANSI.sub("", segs[-1] if segs else "").rstrip()


class Console:
    """One notebook's run as its kernel reports it: the printed output and progress bars go to the terminal
    and to a log file (overwritten by each run, so it always holds the last run's output).

    The log, and a terminal that is not a tty, get whole lines: what the notebook printed, each progress bar's
    final state, the traceback of an error. A tty also gets a status line redrawn in place: the running cell
    and its live progress bar."""

    HEARTBEAT_S = 60  # how often a terminal that is not a tty gets the status line, so a long cell shows life

    def __init__(self, log: Path, title: str, term=None):
        self.term = term or sys.stdout
        self.tty = self.term.isatty()
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "w")
        self.write_log(f"# {title}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.pending: dict[str, str] = {}  # stream name -> its text after the last newline
        self.models: dict[str, dict] = {}  # widget comm id -> widget state
        self.bars: dict[str, list[str]] = {}  # progress bar box -> ids of its [label, progress, text] widgets
        self.code_cells: list[int] = []  # notebook index of each code cell, for "cell 3/9"
        self.cell = self.live = self.shown = ""
        self.last_beat = time.time()

    # ---- the kernel's messages, each message of the running cell (see _engine)
    def message(self, msg: dict, cell_index: int) -> None:
        kind, c = msg["msg_type"], msg["content"]
        if kind == "stream":
            self.stream(c["name"], c["text"])
        elif kind == "execute_input":
            n = self.code_cells.index(cell_index) + 1 if cell_index in self.code_cells else cell_index + 1
            self.cell = f"cell {n}/{len(self.code_cells) or '?'}"
            self.status("")
        elif kind == "status" and c.get("execution_state") == "idle":
            self.end_cell()
        elif kind == "error":
            tb = "\n".join(ANSI.sub("", t) for t in c.get("traceback", []))
            self.write_log(tb or f"{c.get('ename')}: {c.get('evalue')}")
        elif kind.startswith("comm_"):
            self.widget(kind, c)

    def stream(self, name: str, text: str) -> None:
        *lines, self.pending[name] = (self.pending.get(name, "") + text).split("\n")
        for line in map(final_text, lines):
            if line:
                self.line(line)
        if final_text(self.pending[name]):  # a line still being redrawn (a text progress bar): show it live
            self.status(final_text(self.pending[name]))

    def widget(self, kind: str, c: dict) -> None:
        """tqdm in a kernel draws an ipywidgets box of [label HTML, progress, text HTML], updated through comm
        messages; rebuild the bar's text from them."""
        cid, state = c["comm_id"], (c.get("data") or {}).get("state", {})
        if kind == "comm_close":  # tqdm(leave=False) closes its box when done
            if cid in self.bars:
                self.finish_bar(cid)
            return
        self.models.setdefault(cid, {}).update(state)
        kids = [k.removeprefix("IPY_MODEL_") for k in state.get("children", []) if isinstance(k, str)]
        is_html = lambda k: self.models.get(k, {}).get("_model_name") == "HTMLModel"
        if len(kids) == 3 and is_html(kids[0]) and is_html(kids[2]):
            self.bars[cid] = kids
        for bar, kids in self.bars.items():
            if cid == bar or cid in kids:
                self.status(self.bar_text(bar))

    def bar_text(self, bar: str, width: int = 20, final: bool = False) -> str:
        from html import unescape

        left, prog, right = (self.models.get(k, {}) for k in self.bars[bar])
        left, right = (unescape(str(m.get("value") or "")).replace("\u2007", " ") for m in (left, right))
        n, total = float(prog.get("value") or 0), float(prog.get("max") or 1)
        if final and n == total == int(total):
            # tqdm(leave=False) closes its box without redrawing the text, which may lag the count by a step
            left = re.sub(r"[ \d]{3}%$", "100%", left)  # tqdm's {percentage:3.0f}%
            right = re.sub(r"^(\s*)\d+/", rf"\g<1>{int(total)}/", right)
        return f"{left}|{'#' * round(min(1.0, n / total) * width):<{width}}|{right}".strip()

    def finish_bar(self, bar: str) -> None:
        text = self.bar_text(bar, final=True)
        del self.bars[bar]
        if text.strip("| #"):
            self.line(text)
        self.status("")

    def end_cell(self) -> None:
        for name in list(self.pending):  # output without a final newline is a line of its own
            self.stream(name, "\n")
        for bar in list(self.bars):  # a bar kept on screen (leave=True) is never closed: the cell ends it
            self.finish_bar(bar)

    # ---- output
    def write_log(self, text: str) -> None:
        self.log.write(text + "\n")
        self.log.flush()

    def line(self, line: str) -> None:
        self.write_log(line)
        self.clear()
        self.term.write(f"  {line}\n")
        self.redraw()

    def status(self, live: str) -> None:
        self.live = live
        if self.tty:
            self.redraw()
        elif live and time.time() - self.last_beat >= self.HEARTBEAT_S:
            self.last_beat = time.time()
            self.term.write(f"  .. {self.cell} | {live}\n")
            self.term.flush()

    def redraw(self) -> None:
        if self.tty:
            import shutil

            text = "  " + " | ".join(x for x in (self.cell, self.live) if x)
            text = text[: shutil.get_terminal_size().columns - 1]
            if text != self.shown:
                self.term.write("\r\x1b[K" + text)
                self.shown = text
        self.term.flush()

    def clear(self) -> None:
        if self.tty and self.shown:
            self.term.write("\r\x1b[K")
            self.shown = ""

    def close(self, footer: str) -> None:
        if self.log.closed:
            return
        self.end_cell()
        self.cell = self.live = ""
        self.clear()
        self.term.flush()
        self.write_log(f"# {footer}")
        self.log.close()


def _engine() -> None:
    """Register papermill's nbclient engine with a client that also hands each kernel message to a Console
    (papermill's own log_output shows printed text only, not the kernel's ipywidgets progress bars)."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    class Client(PapermillNotebookClient):
        def __init__(self, nb_man, console: Console, **kw):
            super().__init__(nb_man, **kw)
            self.console = console
            console.code_cells = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]

        def process_message(self, msg, cell, cell_index):
            self.console.message(msg, cell_index)
            return super().process_message(msg, cell, cell_index)

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
            cls, nb_man, kernel_name, console=None, kernel_env=None, start_timeout=60, **_
        ):
            from papermill.log import logger

            client = Client(
                nb_man, console, kernel_name=kernel_name, log=logger, startup_timeout=start_timeout
            )
            # the kernel process's own output (start-up warnings, a crash) goes to the notebook's log too
            return client.execute(env=kernel_env, stdout=console.log, stderr=console.log)

    papermill_engines.register(ENGINE, Engine)


# ---------------------------------------------------------------- run log, estimates, run_times.md

LOG_HEADER = [
    "timestamp",
    "preset",
    "notebook",
    "seconds",
    "peak_rss_MB",
    "artifacts_computed",
    "config_hash",
    "fingerprint",
]


# cached step outputs, teacher JSONL (appended), models built from GGUF
CACHED = ("artifacts", "teachers", "models")


def artifacts_written_since(t0: float) -> int:
    """Cache files written since t0 (step outputs, teacher answers, built models): 0 means the notebook ran
    fully warm, every expensive step a cache hit."""
    roots = [cache_dir() / d for d in CACHED]
    files = (p for r in roots if r.exists() for p in r.rglob("*") if p.is_file())
    return sum(1 for p in files if p.stat().st_mtime >= t0)


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


def estimates(log: Path) -> dict[str, float | None]:
    """notebook -> seconds of its last cold run in the run log (see cold_warm), under any configuration: a
    guess of the time left, better than none; {} without a log."""
    return (
        {nb: cold for nb, (cold, _, _) in provenance.cold_warm(log, current=False).items()}
        if log.exists()
        else {}
    )


def minutes(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


def start_line(i: int, nbs: list[Path], est: dict[str, float | None]) -> str:
    """`[3/12] 12_A_main_table  (est. 27 min; ~80 min left)`: notebook i (from 1) of nbs starts, and every
    notebook from it on will run."""
    this, rest = est.get(nbs[i - 1].name), [est.get(nb.name) for nb in nbs[i - 1 :]]
    known, untimed = sum(x for x in rest if x is not None), sum(x is None for x in rest)
    left = (
        "time left unknown"
        if untimed == len(rest)
        else f"~{minutes(known)} left" + (f" + {untimed} notebook(s) never timed" if untimed else "")
    )
    est_this = "unknown" if this is None else minutes(this)
    return f"[{i}/{len(nbs)}] {nbs[i - 1].stem}  (est. {est_this}; {left})"


def _rel(p: Path) -> Path:
    return p.relative_to(ROOT) if p.is_relative_to(ROOT) else p


def run_times(log: Path, preset: str) -> str:
    """run_times.md: cold / warm wall time and peak memory of each notebook, from the run log."""
    md = [
        f"# make reproduce: wall time and memory per notebook ({preset} preset)",
        "",
        f"Written by `lib.reproduce` from `{_rel(log)}`, which it appends to after every notebook with the "
        "number of cache entries the run computed and the hash of the configuration it ran under. Only runs "
        "of each notebook's current configuration count. Cold = the last run that computed anything; warm = "
        "the last run that computed nothing (every expensive step a cache hit). `make reproduce` shows the "
        "cold times as its estimates.",
        "",
        "| notebook | cold s | warm s | peak RSS MB |",
        "|---|---|---|---|",
    ]
    fmt = lambda x, missing: missing if x is None else f"{x:.0f}"
    cw = provenance.cold_warm(log, notebooks=notebooks())
    md += [
        f"| {nb} | {fmt(c, 'not logged')} | {fmt(w, 'not yet')} | {m:.0f} |" for nb, (c, w, m) in cw.items()
    ]
    if not cw:
        md += ["", "No run of the current configuration is logged yet."]
    if cw and all(c is not None for c, _, _ in cw.values()):
        md += ["", f"All {len(cw)} notebooks, cold: {sum(c for c, _, _ in cw.values()) / 60:.1f} min."]
    return "\n".join(md) + "\n"


def write_run_times(out: Path, preset: str) -> Path | None:
    log = out / "run_log.csv"
    if not log.exists():
        return None
    with atomic_path(out / "run_times.md") as tmp:
        tmp.write_text(run_times(log, preset))
    return out / "run_times.md"


# ---------------------------------------------------------------- main


def record_outputs(out: Path, nb: Path, before: dict, inputs: dict, run: dict) -> None:
    """Record in provenance.json what the notebook just wrote, from what, and remove the files named after it
    that this run did not write (an earlier run's, under another configuration or code)."""
    outputs = provenance.written(out, before)
    inputs = {f: h for f, h in inputs.items() if f not in outputs}  # what it wrote, then read back
    for f in provenance.leftovers(out, nb.name, outputs, notebooks()):
        (out / f).unlink()
        print(f"  removed {f}: an earlier run of {nb.stem} wrote it, this one did not", flush=True)
    provenance.record(out, nb.name, outputs, inputs, **run)


def main(argv=None) -> int:
    import papermill as pm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=os.environ.get("PRESET", "offline"))
    ap.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 00 10")
    ap.add_argument("--html", action="store_true", help="also write an HTML copy of each executed notebook")
    ap.add_argument(
        "--force",
        action="store_true",
        help="run every notebook, also those whose executed copy is up to date",
    )
    ap.add_argument(
        "--continue",
        dest="continue_runs",
        action="store_true",
        help="read the runs results/<preset>/runs/ already holds (committed, or from another machine) "
        "instead of running them again; compute the rest",
    )
    args = ap.parse_args(argv)
    from .common import ReproError
    from .config import get_preset

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
    est = estimates(log)
    print(
        f"make reproduce: {len(nbs)} notebooks at preset {args.preset}; "
        + (
            f"estimates: each notebook's last cold run in {_rel(log)} (less when the caches are warm)"
            if est
            else f"no time estimates ({_rel(log)} has no run yet)"
        ),
        flush=True,
    )
    _engine()
    # papermill parses the parameters cell only to warn about unknown parameters, and reports every line whose
    # comment holds an "=" (the notebooks document parameters that way) as unparseable
    logging.getLogger("papermill.translators").setLevel(logging.ERROR)
    # the fingerprint covers this checkout's lib/: the kernel imports it, wherever the venv's .pth points
    path = [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    kernel_env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    if args.continue_runs:  # lib.config turns it into each notebook's `continue_runs`
        kernel_env["DISTILL_CONTINUE"] = "1"
    ran = skipped = 0
    peaks = None  # the machine's GEMM peaks, measured before the first notebook that runs
    # one Ray for every notebook where the preset runs its grids on Ray (lib.runner.shared_ray)
    uses_ray = get_preset(args.preset)["run"]["runner"] == "ray"
    with ExitStack() as stack:
        for i, nb in enumerate(nbs, 1):
            dest = out / nb.name
            fp, record = fingerprint(nb, args.preset), record_path(args.preset, nb.name)
            if not args.force and not ran and up_to_date(dest, fp, args.html, record):
                print(
                    f"[{i}/{len(nbs)}] {nb.stem} up to date (computed here from the same notebook, code, "
                    "preset and inputs; FORCE=1 runs it), skipped",
                    flush=True,
                )
                skipped += 1
                continue
            ran += 1
            if peaks is None:
                peaks = phases.measure_peaks()
                print(
                    "GEMM peaks (GFLOP/s): "
                    + ", ".join(f"{p} x{n} thread(s) {v / 1e9:.0f}" for (p, n), v in peaks.items())
                )
                # after the peaks, whose measurement Ray's idle daemons would disturb
                kernel_env.update(stack.enter_context(runner.shared_ray(uses_ray)))
            print(start_line(i, nbs, est), flush=True)
            if changed := changed_inputs(dest):
                print(f"  its inputs changed since its last run: {', '.join(changed)}", flush=True)
            cfg = provenance.config_hash(nb, args.preset)
            before, reads_log = provenance.snapshot(out), record.with_suffix(".reads.jsonl")
            reads_log.parent.mkdir(parents=True, exist_ok=True)
            reads_log.unlink(missing_ok=True)
            nb_log = out / "logs" / f"{nb.stem}.log"
            phase_log = record.with_suffix(".phases.jsonl")
            phase_log.unlink(missing_ok=True)
            console = Console(nb_log, f"{nb.name} at preset {args.preset}")
            t0 = time.time()
            try:
                with PeakRSS() as mem:
                    pm.execute_notebook(
                        str(nb),
                        str(dest),
                        parameters={"preset": args.preset},
                        kernel_name=KERNEL,
                        cwd=str(ROOT / "notebooks"),
                        progress_bar=False,
                        engine_name=ENGINE,
                        console=console,
                        kernel_env={
                            **kernel_env,
                            provenance.READS_ENV: str(reads_log),
                            phases.ENV: str(phase_log),
                        },
                    )
                console.close(f"finished in {time.time() - t0:.0f} s")
            except pm.PapermillExecutionError as e:
                console.close(f"failed in cell {e.exec_count}: {e.ename}: {e.evalue}")
                print(f"FAILED: {nb.name}, cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
                print(
                    f"the executed copy with the error is at {dest}, the kernel's output at {nb_log}",
                    file=sys.stderr,
                )
                return 1
            finally:
                console.close(f"stopped after {time.time() - t0:.0f} s")  # interrupted (no-op once closed)
            dt = time.time() - t0
            run = uuid.uuid4().hex[:16]
            commit, dirty = provenance.commit()
            prov = {"commit": commit, "dirty": dirty, "config_hash": cfg}
            inputs = provenance.reads(reads_log, out)
            mark_done(dest, fp, run, {**prov, "inputs": inputs})
            if args.html:
                export_html(dest)
            record_outputs(out, nb, before, inputs, {**prov, "fingerprint": fp})
            computed = artifacts_written_since(t0)
            # like run_log.csv, no notebook's output
            phases.record_notebook(out, nb.name, phase_log, peaks, cfg, cold=computed > 0)
            # last: a kill before this point leaves no record, and the notebook runs again
            write_json(
                record,
                {
                    "notebook": nb.name,
                    "preset": args.preset,
                    "fingerprint": fp,
                    "run": run,
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "seconds": round(dt, 1),
                },
            )
            append_log(
                log,
                [
                    time.strftime("%Y-%m-%d %H:%M:%S"),
                    args.preset,
                    nb.name,
                    round(dt, 1),
                    round(mem.peak / 2**20),
                    computed,
                    cfg,
                    fp,
                ],
            )
            write_run_times(out, args.preset)
            print(
                f"[{i}/{len(nbs)}] {nb.stem} done in {minutes(dt)} (peak memory {mem.peak / 2**30:.1f} GiB, "
                f"{computed} cached artefacts computed{'' if computed else ': fully warm'})",
                flush=True,
            )
    print(
        f"all {len(nbs)} notebooks done ({ran} run, {skipped} up to date) in "
        f"{(time.time() - t_all) / 60:.1f} min; results in {_rel(out)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
