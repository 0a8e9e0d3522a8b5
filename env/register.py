"""Make the active Python environment (the Makefile's venv or a conda env) run this repo's notebooks.

    python env/register.py        # with the environment activated; from any directory

1. writes distill_repro.pth into the environment's site-packages: a path entry for the repo root, so that
   `import lib` works from any working directory (notebooks, papermill, nbmake, Jupyter alike);
2. registers the Jupyter kernel "distill-repro" (shown as "Python (distill-repro)") under the environment's
   prefix, as `python -m ipykernel install --sys-prefix --name distill-repro` does: Jupyter started from
   the environment, papermill and `pytest --nbmake --nbmake-kernel=distill-repro` find it, and it runs
   this environment's Python.
Both overwrite what they wrote before, so rerunning is harmless (e.g. after moving the repo).
"""
from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PTH = "distill_repro.pth"
KERNEL, DISPLAY_NAME = "distill-repro", "Python (distill-repro)"


def in_environment() -> bool:
    """A venv or a conda env: outside one, the entry and the kernel would land in a system Python."""
    return sys.prefix != sys.base_prefix or (Path(sys.prefix) / "conda-meta").is_dir()


def write_pth(site_packages: str | Path | None = None, root: Path = ROOT) -> Path:
    """Write the path entry for `root`; default: the running environment's site-packages."""
    path = Path(site_packages or sysconfig.get_paths()["purelib"]) / PTH
    path.write_text(f"{root}\n")
    return path


def register_kernel(prefix: str | Path | None = None) -> Path:
    """Install the kernelspec under <prefix>/share/jupyter/kernels/distill-repro (default: sys.prefix).

    ipykernel's own installer (the one behind `python -m ipykernel install`), so kernel.json starts the
    running interpreter."""
    from ipykernel.kernelspec import install

    return Path(install(kernel_name=KERNEL, display_name=DISPLAY_NAME, prefix=str(prefix or sys.prefix)))


def main() -> int:
    if not in_environment():
        print(f"{sys.executable} is not in a venv or conda env; activate the project's environment first "
              "(conda activate distill-repro) and rerun", file=sys.stderr)
        return 1
    print(f"path entry {write_pth()} -> {ROOT}")
    print(f"kernel {KERNEL!r} -> {register_kernel()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
