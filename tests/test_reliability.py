"""Resumable, safe and deterministic runs (smoke preset, tiny models)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lib import common
from lib.common import ROOT, cached_json

RUNNER = """
import json, sys, torch
torch.set_num_threads(1)
from lib import config, data, ta_loop, common
s = data.load_splits("boolq", "smoke", caps={"pool": 24, "dev": 8, "test": 8})
cfg = config.ta_run(
    config.params("smoke", "a"), budget=8, K=2, sc_max_new_tokens=4, epochs=1, lr=3e-3, batch_size=4
)
out = []
for seed in (0, 1, 2):
    for m in ("plain", "two_stage"):
        r = ta_loop.run(m, "boolq", s, cfg, seed=seed, progress=False)
        out.append(r["correct"])
print("RESULT " + json.dumps({"out": out, "stats": dict(common.CACHE_STATS)}))
"""


def _run(cache: Path, timeout=600, kill_after_files: int | None = None):
    env = {**os.environ, "DISTILL_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    # smoke assets and tiny models live in the cache too: share the built ones through a symlink
    p = subprocess.Popen([sys.executable, "-c", RUNNER], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if kill_after_files is not None:
        t0 = time.time()
        while len(list((cache / "artifacts" / "ta_run").glob("*.json"))) < kill_after_files:
            assert p.poll() is None and time.time() - t0 < timeout, "run ended before it could be interrupted"
            time.sleep(0.2)
        p.kill()
        p.wait()
        return None
    stdout, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0
    return json.loads(stdout.split("RESULT ", 1)[1])


def _fresh_cache(tmp_path, name):
    c = tmp_path / name
    (c / "models").mkdir(parents=True)
    real = common.cache_dir()
    for sub in ("models/tiny-llama",):
        os.symlink(real / sub, c / sub)
    return c


def test_interrupted_run_resumes_without_recomputing_and_matches_a_clean_run(tmp_path):
    clean = _run(_fresh_cache(tmp_path, "clean"))
    cache = _fresh_cache(tmp_path, "resumed")
    _run(cache, kill_after_files=2)  # killed mid-way, after two runs finished
    done = {p.name: p.stat().st_mtime_ns for p in (cache / "artifacts" / "ta_run").glob("*.json")}
    assert len(done) >= 2
    resumed = _run(cache)
    assert resumed["out"] == clean["out"]  # identical outputs (deterministic on CPU)
    assert resumed["stats"].get("ta_run:hit", 0) >= len(done)  # nothing finished is recomputed...
    assert resumed["stats"]["ta_run:miss"] == 6 - resumed["stats"]["ta_run:hit"]
    for name, mtime in done.items():  # ...and the finished files were not rewritten
        assert (cache / "artifacts" / "ta_run" / name).stat().st_mtime_ns == mtime
    assert not list(
        (cache / "artifacts" / "ta_run").glob(".*.tmp")
    )  # no half-written file is left to be read


def test_corrupted_cache_file_is_recomputed_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    calls = []
    f = lambda: calls.append(1) or {"x": len(calls)}
    assert cached_json("t", {"a": 1}, f) == {"x": 1}
    assert cached_json("t", {"a": 1}, f) == {"x": 1} and len(calls) == 1
    (path,) = (tmp_path / "artifacts" / "t").glob("*.json")
    path.write_text(path.read_text()[:10])  # truncated by a crash of some other writer
    assert cached_json("t", {"a": 1}, f) == {"x": 2} and len(calls) == 2
    path.write_text(json.dumps({"key": {"a": 2}, "value": "foreign"}))  # a file that is not ours
    assert cached_json("t", {"a": 1}, f) == {"x": 3}
    assert cached_json("t", {"a": 1}, f, version=2) == {"x": 4}  # a new code version recomputes


@pytest.mark.parametrize(
    "nb,params,msg",
    [
        ("12_A_main_table.ipynb", {"budget": -1}, "parameter budget must be positive"),
        ("21_B_main_table.ipynb", {"k": 10_000}, "k=10000 is larger than the longest input"),
        (
            "22_B_ablations.ipynb",
            {
                "ablation_methods": ["gradcam"],
                "ablation_ks": [],
                "ablation_alphas": [],
                "ablation_shares": [],
            },
            "unknown method 'gradcam'",
        ),
    ],
)
def test_bad_parameters_fail_with_one_clear_line(nb, params, msg, tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(
            str(ROOT / "notebooks" / nb),
            str(tmp_path / nb),
            parameters={"preset": "smoke", **params},
            kernel_name="distill-repro",
            cwd=str(ROOT / "notebooks"),
            progress_bar=False,
        )
    assert e.value.ename == "ReproError" and msg in e.value.evalue


def test_run_log_counts_computed_artifacts_and_migrates_an_old_log(tmp_path, monkeypatch):
    from lib import reproduce

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    t0 = time.time() - 1
    assert reproduce.artifacts_written_since(t0) == 0  # no cache at all: nothing computed
    cached_json("demo", {"a": 1}, lambda: 1)
    cached_json("demo", {"a": 2}, lambda: 2)
    assert reproduce.artifacts_written_since(t0) == 2
    assert reproduce.artifacts_written_since(time.time() + 1) == 0  # a warm rerun writes nothing
    (tmp_path / "cache" / "teachers").mkdir(parents=True)
    (tmp_path / "cache" / "teachers" / "t.jsonl").write_text("{}\n")  # a teacher answered: computed too
    assert reproduce.artifacts_written_since(t0) == 3
    log = tmp_path / "run_log.csv"
    log.write_text(
        "timestamp,preset,notebook,seconds,peak_rss_MB\n2026-01-01 00:00:00,smoke,10_x.ipynb,5.0,100\n"
    )
    reproduce.append_log(log, ["2026-01-01 00:01:00", "smoke", "10_x.ipynb", 1.0, 90, 0])
    reproduce.append_log(log, ["2026-01-01 00:02:00", "smoke", "11_y.ipynb", 2.0, 80, 3])
    lines = log.read_text().splitlines()
    assert lines[0].split(",") == reproduce.LOG_HEADER
    assert lines[1].endswith(",100,,,") and lines[2].endswith(",90,0") and lines[3].endswith(",80,3")


class FakeRepo:
    """Tiny notebooks in tmp dirs run by lib.reproduce through the real kernel, with their own cache."""

    def __init__(self, tmp_path, monkeypatch):
        from lib import reproduce

        self.nbdir, self.out, self.reproduce = tmp_path / "notebooks", tmp_path / "results", reproduce
        self.nbdir.mkdir(), self.out.mkdir()
        self.use_cache(tmp_path / "cache", monkeypatch)
        monkeypatch.setattr(reproduce, "notebooks", lambda only=None: sorted(self.nbdir.glob("*.ipynb")))
        monkeypatch.setattr(reproduce, "results_dir", lambda preset: self.out)
        # a fixed peak: measuring it takes seconds per call of main
        monkeypatch.setattr(reproduce.phases, "measure_peaks", lambda: {("fp32", 1): 1e11})

    @staticmethod
    def use_cache(path, monkeypatch):
        monkeypatch.setenv("DISTILL_CACHE", str(path))  # the kernel inherits it too

    def write(self, name, code):
        import nbformat

        meta = {
            "kernelspec": {"name": "distill-repro", "language": "python", "display_name": "x"},
            "language_info": {"name": "python"},
        }
        nb = nbformat.v4.new_notebook(metadata=meta)
        nb.cells = [
            nbformat.v4.new_code_cell('preset = "smoke"', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(code),
        ]
        nbformat.write(nb, str(self.nbdir / name))

    def ran(self, *flags, rc=0):
        """Notebooks that ran (rows added to the run log) in one `reproduce.main`."""
        log = self.out / "run_log.csv"
        n = len(log.read_text().splitlines()) if log.exists() else 1
        assert self.reproduce.main(["--preset", "smoke", *flags]) == rc
        return [r.split(",")[2] for r in log.read_text().splitlines()[n:]] if log.exists() else []


def test_reproduce_skips_up_to_date_notebooks_and_reruns_from_the_first_changed_one(tmp_path, monkeypatch):
    repo = FakeRepo(tmp_path, monkeypatch)
    repo.write("10_a.ipynb", "x = 1")
    repo.write("20_b.ipynb", "y = 2")
    ran, out, nbdir = repo.ran, repo.out, repo.nbdir
    assert ran() == ["10_a.ipynb", "20_b.ipynb"]
    assert ran() == []  # both executed copies are up to date: nothing runs
    repo.write("20_b.ipynb", "y = 3")
    assert ran() == ["20_b.ipynb"]  # only the changed notebook (nothing before it changed)
    repo.write("10_a.ipynb", "x = 2")
    assert ran() == ["10_a.ipynb", "20_b.ipynb"]  # a changed notebook reruns everything after it
    assert ran("--force") == ["10_a.ipynb", "20_b.ipynb"]
    (out / "10_a.ipynb").write_text("{")  # a copy left half-written by a kill is not trusted
    assert ran() == ["10_a.ipynb", "20_b.ipynb"]
    fp = lambda preset: repo.reproduce.fingerprint(nbdir / "10_a.ipynb", preset)
    assert fp("smoke") != fp("offline")


def test_a_committed_executed_copy_is_up_to_date_only_once_this_machine_computed_it(tmp_path, monkeypatch):
    import nbformat

    repo = FakeRepo(tmp_path, monkeypatch)
    repo.write("10_a.ipynb", "x = 1")
    repo.write("20_b.ipynb", "y = 2")
    assert repo.ran() == ["10_a.ipynb", "20_b.ipynb"]
    assert repo.ran() == []
    copy = repo.out / "10_a.ipynb"
    meta = nbformat.read(str(copy), as_version=4).metadata["distill_repro"]
    assert meta["fingerprint"] == repo.reproduce.fingerprint(repo.nbdir / "10_a.ipynb", "smoke")

    FakeRepo.use_cache(tmp_path / "fresh_clone_cache", monkeypatch)  # a fresh clone: same copies, no record
    assert repo.ran() == ["10_a.ipynb", "20_b.ipynb"]  # right fingerprints, computed elsewhere: computed here
    assert repo.ran() == []  # now this machine has computed them
    nb = nbformat.read(str(copy), as_version=4)
    nb.metadata["distill_repro"]["run"] = "another-machine"  # a copy pulled from elsewhere, same inputs
    nbformat.write(nb, str(copy))
    assert repo.ran() == ["10_a.ipynb", "20_b.ipynb"]
    del nb.metadata["distill_repro"]["run"]  # a copy that carries a fingerprint and no run id
    nbformat.write(nb, str(copy))
    assert repo.ran() == ["10_a.ipynb", "20_b.ipynb"]


def test_each_notebook_logs_its_output_and_progress_and_run_times_are_written(tmp_path, monkeypatch, capsys):
    from lib.common import ROOT

    repo = FakeRepo(tmp_path, monkeypatch)
    repo.write(
        "10_a.ipynb",
        "import lib, sys, time\nfrom tqdm.auto import tqdm\n"
        "print('lib at', lib.__file__)\n"
        "for i in tqdm(range(40), desc='steps', leave=False): time.sleep(0.01)\n"
        "for i in range(200): print(f'\\rcounting {i}', end='', file=sys.stderr)\n"
        "print('the end', end='')",
    )
    repo.write("20_b.ipynb", "raise ValueError('boom')")
    assert repo.ran(rc=1) == ["10_a.ipynb"]
    shown = capsys.readouterr().out
    log = (repo.out / "logs" / "10_a.log").read_text()
    for text in (shown, log):  # on the terminal and in the log: what the notebook printed, its progress bar
        assert f"lib at {ROOT / 'lib' / '__init__.py'}" in text  # the kernel runs this checkout's lib
        assert "steps: 100%|####################| 40/40" in text
        assert "counting 199" in text and "the end" in text
    assert "\r" not in log and "counting 198" not in log and log.count("steps:") == 1  # no redraws
    assert log.splitlines()[-1].startswith("# finished in")
    failed = (repo.out / "logs" / "20_b.log").read_text()
    assert "ValueError: boom" in failed and failed.splitlines()[-1] == "# failed in cell 3: ValueError: boom"
    assert "[1/2] 10_a  (est. unknown; time left unknown)" in shown
    times = (repo.out / "run_times.md").read_text()
    assert "| 10_a.ipynb |" in times and "20_b" not in times  # a notebook that failed has no time


def test_the_kernels_phases_land_in_the_presets_phase_table(tmp_path, monkeypatch):
    repo = FakeRepo(tmp_path, monkeypatch)
    code = "import torch\ntorch.set_num_threads(1)\nfrom lib.models import load_model\n"
    repo.write("10_a.ipynb", code + "load_model('tiny-llama').score(['a b c'], ['d'])")
    assert repo.ran() == ["10_a.ipynb"]
    t = pd.read_csv(repo.out / "phases.csv")
    assert list(t.phase) == ["score"] and t.tokens.iloc[0] > 0 and t.peak_gflop_s.iloc[0] == 100
    assert "phases.csv" not in (repo.out / "provenance.json").read_text()  # no notebook's output


def test_start_line_estimates_time_from_the_last_cold_run_in_the_run_log(tmp_path):
    from lib import reproduce

    log = tmp_path / "run_log.csv"
    log.write_text(
        "timestamp,preset,notebook,seconds,peak_rss_MB,artifacts_computed\n"
        "t,smoke,00_a.ipynb,600,1,5\nt,smoke,10_b.ipynb,1620,1,9\nt,smoke,00_a.ipynb,6,1,0\n"
        "t,smoke,10_b.ipynb,2400,1,3\nt,smoke,30_c.ipynb,60,1,0\n"
    )
    nbs = [Path(f"notebooks/{n}.ipynb") for n in ("00_a", "10_b", "20_new", "30_c")]
    est = reproduce.estimates(log)
    assert est == {"00_a.ipynb": 600, "10_b.ipynb": 2400, "30_c.ipynb": 60}  # the last cold run, not a warm
    line = lambda i: reproduce.start_line(i, nbs, est)
    assert line(1) == "[1/4] 00_a  (est. 10 min; ~51 min left + 1 notebook(s) never timed)"
    assert line(2) == "[2/4] 10_b  (est. 40 min; ~41 min left + 1 notebook(s) never timed)"
    assert line(3) == "[3/4] 20_new  (est. unknown; ~60 s left + 1 notebook(s) never timed)"
    assert line(4) == "[4/4] 30_c  (est. 60 s; ~60 s left)"
    assert reproduce.estimates(tmp_path / "none.csv") == {}
    assert reproduce.start_line(1, nbs, {}) == "[1/4] 00_a  (est. unknown; time left unknown)"
    md = reproduce.run_times(log, "smoke")
    assert "| 00_a.ipynb | 600 | 6 | 1 |" in md and "| 10_b.ipynb | 2400 | not yet | 1 |" in md
    with open(log, "a") as f:  # computed elsewhere (another preset's runs): warm, and no cold time
        f.write("t,smoke,05_d.ipynb,12,1,0\n")
    assert reproduce.estimates(log)["05_d.ipynb"] is None
    assert "| 05_d.ipynb | not logged | 12 | 1 |" in reproduce.run_times(log, "smoke")


def test_console_rebuilds_a_widget_progress_bar_and_keeps_only_final_lines(tmp_path):
    """What the kernel sends for tqdm.auto (ipywidgets) and for a text bar redrawn with carriage returns."""
    import io

    from lib.reproduce import Console

    term = io.StringIO()
    c = Console(tmp_path / "x.log", "x", term=term)
    c.code_cells = [0, 2]
    msg = lambda kind, **content: c.message({"msg_type": kind, "content": content}, 2)
    msg("execute_input")
    opened = lambda cid, **state: msg("comm_open", comm_id=cid, data={"state": state})
    opened("l", _model_name="HTMLModel", value="train")
    opened("p", _model_name="FloatProgressModel", value=0, max=4)
    opened("r", _model_name="HTMLModel", value="")
    opened("box", _model_name="HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"])
    for i in range(1, 5):
        msg("comm_msg", comm_id="p", data={"method": "update", "state": {"value": i}})
        msg("comm_msg", comm_id="l", data={"method": "update", "state": {"value": f"train:\u2007{25 * i}%"}})
        right = f"\u2007{i}/4 [00:0{i}&lt;00:00]"  # html-escaped, padded with figure spaces
        msg("comm_msg", comm_id="r", data={"method": "update", "state": {"value": right}})
    assert c.live == "train: 100%|####################| 4/4 [00:04<00:00]" and c.cell == "cell 2/2"
    msg("comm_close", comm_id="box")
    msg("stream", name="stdout", text="a\rb\rc\nno newline")
    msg("status", execution_state="idle")
    c.close("finished")
    lines = (tmp_path / "x.log").read_text().splitlines()
    bar = "train: 100%|####################| 4/4 [00:04<00:00]"
    assert lines[1:] == [bar, "c", "no newline", "# finished"]
    assert term.getvalue() == "".join(f"  {x}\n" for x in lines[1:-1])  # not a tty: whole lines only


def test_readme_run_info_sums_cold_and_warm_times_of_the_rendered_notebooks(tmp_path, monkeypatch):
    from lib import report

    monkeypatch.setattr(report, "results_dir", lambda preset: tmp_path)
    for nb in ("10_a", "20_b", "30_c"):
        (tmp_path / f"{nb}.ipynb").write_text("{}")
    (tmp_path / "run_log.csv").write_text(
        "timestamp,preset,notebook,seconds,peak_rss_MB,artifacts_computed\n"
        "t,smoke,10_a.ipynb,600,1,5\nt,smoke,20_b.ipynb,300,1,2\nt,smoke,10_a.ipynb,6,1,0\nt,smoke,20_b.ipynb,12,1,0\n"
    )
    monkeypatch.setattr(report, "tables", lambda preset: {})
    row = lambda nb, c, w: f"| {nb} | {c} | {w} |"  # noqa: E731
    assert "cold run of the 2 rendered notebooks: 15.0 min" in report.run_info("smoke")
    md = " ".join(report.results_readme("smoke").split())  # markdown pads cells: compare words
    assert row("10_a.ipynb", "10.0", "0.1") in md and row("20_b.ipynb", "5.0", "0.2") in md
    with open(tmp_path / "run_log.csv", "a") as f:
        f.write("t,smoke,30_c.ipynb,6,1,0\n")  # a notebook with no cached step: its cold run is its warm run
    assert "cold run of the 3 rendered notebooks: 15.1 min" in report.run_info("smoke")
    (tmp_path / "20_b.ipynb").unlink()  # its output removed: its time no longer counts
    assert "cold run of the 2 rendered notebooks: 10.1 min" in report.run_info("smoke")
    (tmp_path / "20_b.ipynb").write_text("{}")
    with open(tmp_path / "run_log.csv", "a") as f:
        f.write(
            "t,smoke,10_a.ipynb,420,1,5\n"
        )  # a later cold run (changed preset): it replaces the stale one
    assert row("10_a.ipynb", "7.0", "0.1") in " ".join(report.results_readme("smoke").split())
