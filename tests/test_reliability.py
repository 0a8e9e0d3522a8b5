"""Resumable, safe and deterministic runs (smoke preset, tiny models)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib import common
from lib.common import ROOT, ReproError, cached_json

RUNNER = """
import json, sys, torch
torch.set_num_threads(1)
from lib import config, data, ta_loop, common
s = data.load_splits("strategyqa", "smoke", caps={"pool": 24, "dev": 8, "test": 8})
cfg = config.ta_run(config.params("smoke", "a"), budget=8, K=2, sc_max_new_tokens=4, epochs=1, lr=3e-3, batch_size=4)
out = []
for seed in (0, 1, 2):
    for m in ("plain", "two_stage"):
        r = ta_loop.run(m, "strategyqa", s, cfg, seed=seed, preset="smoke", progress=False)
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
    assert not list((cache / "artifacts" / "ta_run").glob(".*.tmp"))  # no half-written file is left to be read


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


@pytest.mark.parametrize("nb,params,msg", [
    ("12_A_main_table.ipynb", {"budget": -1}, "parameter budget must be positive"),
    ("21_B_main_table.ipynb", {"k": 10_000}, "k=10000 is larger than the longest input"),
    ("22_B_ablations.ipynb", {"ablation_methods": ["gradcam"], "ablation_ks": [], "ablation_alphas": [],
                               "ablation_shares": []}, "unknown method 'gradcam'"),
])
def test_bad_parameters_fail_with_one_clear_line(nb, params, msg, tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(ROOT / "notebooks" / nb), str(tmp_path / nb), parameters={"preset": "smoke", **params},
                            kernel_name="distill-repro", cwd=str(ROOT / "notebooks"), progress_bar=False)
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
    log.write_text("timestamp,preset,notebook,seconds,peak_rss_MB\n2026-01-01 00:00:00,smoke,10_x.ipynb,5.0,100\n")
    reproduce.append_log(log, ["2026-01-01 00:01:00", "smoke", "10_x.ipynb", 1.0, 90, 0])
    reproduce.append_log(log, ["2026-01-01 00:02:00", "smoke", "11_y.ipynb", 2.0, 80, 3])
    lines = log.read_text().splitlines()
    assert lines[0].split(",") == reproduce.LOG_HEADER
    assert lines[1].endswith(",100,") and lines[2].endswith(",90,0") and lines[3].endswith(",80,3")


def test_reproduce_skips_up_to_date_notebooks_and_reruns_from_the_first_changed_one(tmp_path, monkeypatch):
    import nbformat
    from lib import reproduce

    nbdir, out = tmp_path / "notebooks", tmp_path / "results"
    nbdir.mkdir(), out.mkdir()

    def write(name, code):
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "distill-repro", "language": "python", "display_name": "x"},
                                                "language_info": {"name": "python"}})
        nb.cells = [nbformat.v4.new_code_cell('preset = "smoke"', metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(code)]
        nbformat.write(nb, str(nbdir / name))

    write("10_a.ipynb", "x = 1")
    write("20_b.ipynb", "y = 2")
    monkeypatch.setattr(reproduce, "notebooks", lambda only=None: sorted(nbdir.glob("*.ipynb")))
    monkeypatch.setattr(reproduce, "results_dir", lambda preset: out)

    def ran(*flags):
        n = len((out / "run_log.csv").read_text().splitlines()) if (out / "run_log.csv").exists() else 1
        assert reproduce.main(["--preset", "smoke", *flags]) == 0
        return [r.split(",")[2] for r in (out / "run_log.csv").read_text().splitlines()[n:]]

    assert ran() == ["10_a.ipynb", "20_b.ipynb"]
    assert ran() == []  # both executed copies are up to date: nothing runs
    write("20_b.ipynb", "y = 3")
    assert ran() == ["20_b.ipynb"]  # only the changed notebook (nothing before it changed)
    write("10_a.ipynb", "x = 2")
    assert ran() == ["10_a.ipynb", "20_b.ipynb"]  # a changed notebook reruns everything after it
    assert ran("--force") == ["10_a.ipynb", "20_b.ipynb"]
    (out / "10_a.ipynb").write_text("{")  # a copy left half-written by a kill is not trusted
    assert ran() == ["10_a.ipynb", "20_b.ipynb"]
    assert reproduce.fingerprint(nbdir / "10_a.ipynb", "smoke") != reproduce.fingerprint(nbdir / "10_a.ipynb", "offline")


def test_readme_run_info_sums_cold_and_warm_notebook_times(tmp_path, monkeypatch):
    from lib import report

    monkeypatch.setattr(report, "results_dir", lambda preset: tmp_path)
    (tmp_path / "run_log.csv").write_text(
        "timestamp,preset,notebook,seconds,peak_rss_MB,artifacts_computed\n"
        "t,smoke,10_a.ipynb,600,1,5\nt,smoke,20_b.ipynb,300,1,2\nt,smoke,10_a.ipynb,6,1,0\nt,smoke,20_b.ipynb,12,1,0\n")
    info = report.run_info("smoke")
    assert "cold / warm: 15.0 / 0.3 min" in info and "10 10.0 / 0.1" in info and "20 5.0 / 0.2" in info
    with open(tmp_path / "run_log.csv", "a") as f:
        f.write("t,smoke,30_c.ipynb,6,1,0\n")  # a notebook with no cached step: its cold run is its warm run
    assert "cold / warm: 15.1 / 0.4 min" in report.run_info("smoke")
    with open(tmp_path / "run_log.csv", "a") as f:
        f.write("t,smoke,10_a.ipynb,420,1,5\n")  # a later cold run (changed preset): it replaces the stale one
    assert "10 7.0 / 0.1" in report.run_info("smoke")
