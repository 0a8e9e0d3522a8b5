"""A notebook's independent runs (method x dataset x seed x setting) in-process or as Ray tasks.

    results = run_grid(ta_loop.run, calls, runner="ray")   # calls: one dict of keyword arguments per run

Every run already caches its result with `cached_json` under `cache_dir()`, so the runner keeps no state
of its own: a run whose artefact exists is a cache hit wherever it executes, and a grid that was
interrupted, or split between runners (some runs done locally, the rest on Ray), computes nothing twice.

runner="ray" starts a local Ray (every core, or `ray_init(num_cpus=...)`) or, when $RAY_ADDRESS is set,
joins that cluster and stays connected for the process's next grid (make reproduce starts one Ray for all
its notebooks: `shared_ray`). On a cluster the cache directory and this checkout must be at the same path
on every node (a shared filesystem): workers import `lib` from the driver's checkout and read/write the
driver's cache.
"""

from __future__ import annotations

import os
from collections import Counter
from contextlib import contextmanager

from . import phases
from .common import CACHE_STATS, ROOT, ReproError, cache_dir, check_choice, stable_hash

RUNNERS = ("local", "ray")
_SCALARS = (str, int, float, bool, type(None))


def describe(fn, call: dict) -> str:
    """fn's name and the call's scalar arguments (the splits and models are the same for many runs):
    enough to tell a grid's runs apart in one line."""
    args = ", ".join(f"{k}={v!r}" for k, v in call.items() if isinstance(v, _SCALARS))
    return f"{_name(fn)}({args})"


def _name(fn) -> str:
    return f"{fn.__module__.removeprefix('lib.')}.{fn.__qualname__}"


def _one_line(e: BaseException, limit: int = 400) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg[:limit] + ' ...' if len(msg) > limit else msg}"


def task_resources(cluster_gpus: float, num_cpus: float | None = None, num_gpus: float | None = None) -> dict:
    """Ray options of one run: one run per GPU where the cluster has GPUs, else one run per core; either can
    be overridden (num_gpus=0.5: two small runs share a GPU; num_cpus=4: a CPU run with 4 threads)."""
    if num_gpus is None:
        num_gpus = 1 if cluster_gpus > 0 else 0
    # a worker reused for a GPU run would keep the CUDA device it first initialised, whichever GPU Ray gives
    # the next run, so a GPU run gets a fresh process (max_calls=1); CPU workers are reused (0: no limit)
    return {
        "num_cpus": 1 if num_cpus is None else num_cpus,
        "num_gpus": num_gpus,
        "max_calls": 1 if num_gpus else 0,
    }


def ray_init(num_cpus: int | None = None) -> None:
    """Start a local Ray with `num_cpus` cores (None: all) or join $RAY_ADDRESS's cluster, with workers that
    import this checkout's `lib` and use this cache. run_grid calls it (and shuts Ray down after the grid)
    when Ray is not running; call it yourself to keep Ray and its warm workers across grids."""
    import ray

    address = os.environ.get("RAY_ADDRESS") or None
    path = os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    # PYTHONPATH goes before the venv's .pth, so workers run this checkout's lib even next to another one
    # runs carry their settings in their config objects; the workers need only the code and the cache
    env = {"PYTHONPATH": path, "DISTILL_CACHE": str(cache_dir())}
    if os.environ.get(phases.ENV):  # the workers' phases go to the notebook's record too
        env[phases.ENV] = os.environ[phases.ENV]
    # ERROR, not WARNING: every start of a local Ray warns about its default auth token (noise in each
    # notebook); the workers' own output (their progress bars) stays in Ray's log files
    ray.init(
        address=address,
        num_cpus=None if address else num_cpus,
        runtime_env={"env_vars": env},
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )


@contextmanager
def shared_ray(active: bool = True):
    """One local Ray for many drivers: this process starts it and yields the environment that points another
    process at it ($RAY_ADDRESS, and the variables by which Ray's start asks drivers for its auth token), to
    pass to the processes started inside the block (make reproduce's notebook kernels): each notebook's
    grids join this Ray instead of starting and stopping one of their own (~15 s each on 2 cores). Yields {}
    where `active` is false or $RAY_ADDRESS already names a cluster."""
    if not active or os.environ.get("RAY_ADDRESS"):
        yield {}
        return
    import ray

    before = dict(os.environ)
    ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    env = {k: v for k, v in os.environ.items() if k.startswith("RAY_") and before.get(k) != v}
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    try:
        yield env
    finally:
        ray.shutdown()
        os.environ.clear()  # this process's environment as it was (Ray's start sets more than env)
        os.environ.update(before)


def _run_one(fn, cache: str, root: str, /, **call):
    """Ray task body: fn(**call) in the driver's cache; returns the value and this run's cache counters."""
    if str(ROOT) != root:  # the worker found another checkout of lib (a Ray started without ray_init)
        raise ReproError(
            f"a Ray worker imports lib from {ROOT}, the driver from {root}: start Ray with "
            f"lib.runner.ray_init(), with this checkout at the same path on every node"
        )
    # per run, not per worker: a reused worker may have served a grid with another cache (tests do)
    os.environ["DISTILL_CACHE"] = cache
    before = Counter(CACHE_STATS)
    value = fn(**call)
    return value, dict(Counter(CACHE_STATS) - before)


def run_grid(
    fn,
    calls: list[dict],
    *,
    runner: str = "local",
    progress: bool = True,
    desc: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    store: "RunStore | None" = None,
) -> list:
    """fn(**call) for every call; results in the order of `calls`. `store`: each run's result is written
    there as it finishes, and with `store.reuse` a run the store already holds is read, not run.

    fn: a module-level function (Ray sends it by name); each call's values must pickle (Examples, dicts,
    lazy objects: pass models by name, not loaded). runner="local": in-process, in order. runner="ray":
    one Ray task per call with `task_resources(...)`; Ray is started and shut down around the grid unless
    it is already running. A failed run raises one-line ReproError naming the call (its cause chained);
    on Ray the other runs finish first, so their results are cached for the rerun."""
    check_choice("runner", runner, RUNNERS)
    calls = list(calls)
    if not calls:  # nothing to start Ray for
        return []
    from tqdm.auto import tqdm

    keys = [call_key(fn, c) for c in calls]
    have = store.held(keys) if store is not None and store.reuse else {}
    todo = [i for i in range(len(calls)) if i not in have]
    bar = tqdm(total=len(calls), initial=len(have), desc=desc or _name(fn), disable=not progress)
    done = (lambda i, r: store.write(keys[todo[i]], fn, calls[todo[i]], r)) if store is not None else None
    try:
        if runner == "local" or not todo:
            out = _local(fn, [calls[i] for i in todo], bar, done)
        else:
            out = _ray(fn, [calls[i] for i in todo], bar, num_cpus, num_gpus, done)
    finally:
        bar.close()
    results = dict(have)
    results.update(zip(todo, out))
    return [results[i] for i in range(len(calls))]


def _local(fn, calls, bar, done=None) -> list:
    out = []
    for i, call in enumerate(calls):
        try:
            out.append(fn(**call))
        except Exception as e:
            raise ReproError(f"{describe(fn, call)} failed: {_one_line(e)}") from e
        if done:
            done(i, out[-1])
        bar.update()
    return out


def _ray(fn, calls, bar, num_cpus, num_gpus, done=None) -> list:
    import ray
    from ray.exceptions import RayError, RayTaskError

    started = not ray.is_initialized()
    if started:
        ray_init()
    try:
        opts = task_resources(ray.cluster_resources().get("GPU", 0), num_cpus, num_gpus)
        task = ray.remote(**opts)(_run_one)  # max_calls is an option of ray.remote, not of .options()
        # a value shared by many calls (a dataset's splits) goes to the object store once, not once per run
        stored: dict[int, ray.ObjectRef] = {}

        def ref(v):
            if isinstance(v, _SCALARS):
                return v
            if id(v) not in stored:  # `calls` keeps every value alive, so ids are not reused meanwhile
                stored[id(v)] = ray.put(v)
            return stored[id(v)]

        cache, root = str(cache_dir()), str(ROOT)
        refs = [task.remote(fn, cache, root, **{k: ref(v) for k, v in c.items()}) for c in calls]
        index = {r: i for i, r in enumerate(refs)}
        results, errors, pending = [None] * len(calls), {}, refs
        try:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                i = index[finished[0]]
                try:
                    results[i], stats = ray.get(finished[0])
                    CACHE_STATS.update(stats)  # the workers' hits and misses, as if the runs were local
                    if done:
                        done(i, results[i])
                except RayTaskError as e:  # the run raised: keep its own error, not Ray's wrapping of it
                    errors[i] = e.cause if isinstance(e.cause, BaseException) else e
                except RayError as e:  # the worker died (out of memory, killed), the task was cancelled
                    errors[i] = e
                bar.update()
        except BaseException:
            for r in pending:  # interrupted: on a cluster that outlives this driver, stop what is queued
                ray.cancel(r)
            raise
    finally:
        # a cluster joined through $RAY_ADDRESS outlives the grid: staying connected keeps this driver's
        # workers, warm (imports done, models loaded), for its next grid
        if started and not os.environ.get("RAY_ADDRESS"):
            ray.shutdown()
    if errors:
        i = min(errors)
        more = f" (and {len(errors) - 1} more runs failed)" if len(errors) > 1 else ""
        err = errors[i]
        # chained: the run's own exception (short); Ray's errors about dead workers are long and say no more
        raise ReproError(f"{describe(fn, calls[i])} failed on Ray: {_one_line(err)}{more}") from (
            None if isinstance(err, RayError) else err
        )
    return results


# ---------------------------------------------------------------- a preset's runs, committed as they finish


def _keyable(v):
    """A call's value as what determines the run: an example by its id, a config object by its fields."""
    from dataclasses import asdict, is_dataclass

    if hasattr(v, "id") and hasattr(v, "question"):  # lib.data.Example
        return v.id
    if is_dataclass(v) and not isinstance(v, type):
        return asdict(v)
    if isinstance(v, dict):
        return {str(k): _keyable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_keyable(x) for x in v]
    return v if isinstance(v, _SCALARS) else repr(v)


def call_key(fn, call: dict) -> str:
    """The hash of one run: its function and every argument (examples by id, configs by their fields)."""
    return stable_hash({"fn": _name(fn), "call": _keyable(call)}, 20)


def _precision_arg(fn, call: dict) -> str | None:
    """The `precision` a call passes to fn, or fn's default for it (None where fn takes none)."""
    import inspect

    param = inspect.signature(fn).parameters.get("precision")
    return call.get("precision", None if param is None else param.default)


class RunStore:
    """results/<preset>/runs/: one JSON per finished run (its function, scalar arguments, config hash,
    result with its per-question outcomes, and the machine and precision that computed it), committed with
    the renders, so several machines or days can share one render. `reuse`: a run found here is read
    instead of computed (make reproduce CONTINUE=1)."""

    def __init__(self, folder, reuse: bool = False):
        from pathlib import Path

        self.folder, self.reuse = Path(folder), reuse

    def _path(self, key: str):
        return self.folder / f"{key}.json"

    def held(self, keys: list[str]) -> dict[int, dict]:
        from .common import read_json

        return {i: read_json(self._path(k))["result"] for i, k in enumerate(keys) if self._path(k).exists()}

    def write(self, key: str, fn, call: dict, result) -> None:
        from .common import machine, write_json

        cfg = next((v for v in call.values() if hasattr(v, "precision")), None)
        record = {
            "run": describe(fn, call),
            "key": key,
            "config": stable_hash(_keyable(cfg), 12) if cfg is not None else None,
            "precision": getattr(cfg, "precision", None) or _precision_arg(fn, call),
            "machine": machine(),
            "result": result,
        }
        write_json(self._path(key), record)

    def sources(self) -> dict[tuple[str, str], int]:
        """(machine, precision) -> how many runs of the store each computed."""
        from collections import Counter

        from .common import read_json

        recs = [read_json(p) for p in sorted(self.folder.glob("*.json"))]
        return dict(Counter((r["machine"], str(r["precision"])) for r in recs))
