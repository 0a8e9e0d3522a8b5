"""lib.runner: one grid of tiny fine-tuning runs in-process and on a 2-CPU local Ray, through one cache."""

import os
from collections import Counter

import pytest

from lib import data, runner, training
from lib.common import CACHE_STATS, ReproError, cache_dir
from lib.config import Train
from lib.models import load_model
from lib.runner import run_grid

FN = training.finetune_and_test


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module: its start-up (tens of seconds on 2 busy cores) is the slow part."""
    import ray

    runner.ray_init(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def calls():
    """4 real runs (2 seeds x 2 learning rates) of the tiny student on the smoke data: ~0.2 s each."""
    s = data.load_splits("boolq", "smoke", caps={"pool": 16, "dev": 6, "test": 6})
    load_model("tiny-llama")  # built once into the session cache, which fresh_cache shares
    items = training.make_items(s["pool"], [e.answer for e in s["pool"]], [e.rationale for e in s["pool"]])
    return [
        dict(
            student="tiny-llama",
            items=items,
            dev=s["dev"],
            test=s["test"],
            seed=seed,
            cfg=Train(epochs=1, lr=lr, batch_size=4, schedule="linear", eval_batch_size=16, bf16=False),
            progress=False,
        )
        for seed in (0, 1)
        for lr in (3e-3, 1e-2)
    ]


@pytest.fixture
def fresh_cache(calls, tmp_path, monkeypatch):
    """Return a function that points DISTILL_CACHE at a new cache without artefacts, sharing the session
    cache's data and built models (seconds to rebuild, in each worker)."""
    real = cache_dir()

    def make(name: str):
        d = tmp_path / name
        d.mkdir()
        for p in real.iterdir():
            if p.name != "artifacts":
                (d / p.name).symlink_to(p)
        monkeypatch.setenv("DISTILL_CACHE", str(d))
        return d

    return make


def _finetune_files(cache) -> dict:
    """Each finetune artefact's inode and mtime: a recomputed run rewrites (atomically replaces) its file."""
    files = (cache / "artifacts" / "finetune").glob("*.json")
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def _numbers(results):
    # wall time differs between two computations of the same run
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results]


def test_ray_gives_the_local_numbers_and_a_local_rerun_recomputes_nothing(ray_local, calls, fresh_cache):
    fresh_cache("local")
    local = run_grid(FN, calls, progress=False)
    assert len({tuple(r["loss_last"]) for r in local}) == len(calls)  # distinct runs: checks the order too

    ray_cache = fresh_cache("ray")  # computed again from scratch, this time on Ray
    before = Counter(CACHE_STATS)
    on_ray = run_grid(FN, calls, runner="ray", progress=False)
    assert _numbers(on_ray) == _numbers(local)
    assert (Counter(CACHE_STATS) - before)["finetune:miss"] == len(calls)  # the workers' counters came back
    files = _finetune_files(ray_cache)
    assert len(files) == len(calls)

    before = Counter(CACHE_STATS)
    again = run_grid(FN, calls, progress=False)
    assert again == on_ray  # seconds included: read back, not recomputed
    assert Counter(CACHE_STATS) - before == Counter({"finetune:hit": len(calls)})
    assert _finetune_files(ray_cache) == files


def test_a_grid_half_done_locally_computes_only_the_other_half_on_ray(ray_local, calls, fresh_cache):
    cache = fresh_cache("mixed")
    first = run_grid(FN, calls[::2], progress=False)
    done = _finetune_files(cache)
    assert len(done) == len(calls) // 2

    before = Counter(CACHE_STATS)
    full = run_grid(FN, calls, runner="ray", progress=False)
    delta = Counter(CACHE_STATS) - before
    assert (delta["finetune:hit"], delta["finetune:miss"]) == (len(calls) // 2, len(calls) - len(calls) // 2)
    assert full[::2] == first
    after = _finetune_files(cache)
    assert len(after) == len(calls) and {k: after[k] for k in done} == done  # the local half is untouched


@pytest.mark.parametrize("where", ["local", "ray"])
def test_a_failing_run_is_one_line_naming_the_call(where, ray_local, calls, fresh_cache):
    cache = fresh_cache(where)
    bad = {**calls[1], "student": "no-such-model"}
    with pytest.raises(ReproError) as e:
        run_grid(FN, [calls[0], bad, calls[2]], runner=where, progress=False)
    msg = str(e.value)
    assert msg.startswith(
        "training.finetune_and_test(student='no-such-model', seed=0, progress=False) failed"
    )
    assert "unknown model 'no-such-model'" in msg and "\n" not in msg and "Traceback" not in msg
    # local stops at the failure, as a plain loop would; on Ray the other runs finish and are cached
    assert len(_finetune_files(cache)) == (1 if where == "local" else 2)


def test_an_unknown_runner_is_one_line():
    with pytest.raises(ReproError, match=r"^unknown runner 'dask'; valid: local, ray$"):
        run_grid(FN, [], runner="dask")


def test_a_worker_with_another_checkout_of_lib_refuses_to_run():
    with pytest.raises(ReproError, match="imports lib from .*, the driver from /elsewhere"):
        runner._run_one(FN, str(cache_dir()), "/elsewhere")


def test_one_run_per_gpu_where_there_are_gpus_else_one_per_core_and_both_overridable():
    assert runner.task_resources(0) == {"num_cpus": 1, "num_gpus": 0, "max_calls": 0}
    assert runner.task_resources(8) == {"num_cpus": 1, "num_gpus": 1, "max_calls": 1}
    assert runner.task_resources(8, num_cpus=4, num_gpus=0.5) == {
        "num_cpus": 4,
        "num_gpus": 0.5,
        "max_calls": 1,
    }
    assert runner.task_resources(8, num_gpus=0) == {"num_cpus": 1, "num_gpus": 0, "max_calls": 0}
    assert runner.task_resources(0, num_cpus=2) == {"num_cpus": 2, "num_gpus": 0, "max_calls": 0}


def test_a_run_store_records_every_run_and_continue_reads_instead_of_running(tmp_path, calls, fresh_cache):
    """Each finished run lands in the store with its machine and precision; with reuse, a stored run is read
    and never run again, and only the missing runs compute."""
    import json

    from lib.runner import RunStore

    fresh_cache("a")
    calls = calls[:2]
    store = RunStore(tmp_path / "runs")
    first = run_grid(FN, calls, runner="local", progress=False, store=store)
    recs = sorted((tmp_path / "runs").glob("*.json"))
    assert len(recs) == 2
    rec = json.loads(recs[0].read_text())
    assert rec["precision"] == "fp32" and "cores" in rec["machine"] and rec["result"]["correct"]
    assert store.sources() == {(rec["machine"], "fp32"): 2}
    fresh_cache("b")  # nothing cached: only the store can answer
    CACHE_STATS.clear()
    again = run_grid(FN, calls, runner="local", progress=False, store=RunStore(tmp_path / "runs", reuse=True))
    assert again == json.loads(json.dumps(first)) and CACHE_STATS["finetune:miss"] == 0
    recs[0].unlink()
    CACHE_STATS.clear()
    run_grid(FN, calls, runner="local", progress=False, store=RunStore(tmp_path / "runs", reuse=True))
    assert CACHE_STATS["finetune:miss"] == 1  # the one missing run computed, the other read


def test_a_process_joining_the_shared_ray_keeps_its_warm_workers_across_grids(tmp_path):
    """make reproduce's one Ray (runner.shared_ray): a notebook kernel started inside the block joins it
    through $RAY_ADDRESS, stays connected after a grid, and runs its next grid in the same worker processes;
    the block's end stops Ray and unsets the address. (Both drivers are subprocesses: this test process may
    hold the module's own Ray.)"""
    import subprocess
    import sys

    kernel = (
        "import os, ray\n"
        "from lib import runner\n"
        "first = runner.run_grid(os.getpid, [{}, {}], runner='ray', progress=False)\n"
        "connected = ray.is_initialized()\n"
        "second = runner.run_grid(os.getpid, [{}, {}], runner='ray', progress=False)\n"
        "print(connected, bool(set(first) & set(second)), os.getpid() not in first)\n"
    )
    reproduce = (  # as lib.reproduce does: the kernel's environment, a copy taken before Ray starts + its env
        "import os, subprocess, sys, ray\n"
        "from lib import runner\n"
        "kernel_env = dict(os.environ)\n"
        "with runner.shared_ray() as ray_env:\n"
        "    assert 'RAY_ADDRESS' in ray_env\n"
        f"    run = [sys.executable, '-c', {kernel!r}]\n"
        "    out = subprocess.run(run, env={**kernel_env, **ray_env}, capture_output=True, text=True)\n"
        "stopped = os.environ == kernel_env and not ray.is_initialized()\n"
        "print(out.stdout.strip(), stopped, out.stderr[-1500:])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"DISTILL_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", reproduce], env=env, capture_output=True, text=True)
    assert out.stdout.split()[:4] == ["True", "True", "True", "True"], out.stdout[-2000:] + out.stderr[-2000:]
