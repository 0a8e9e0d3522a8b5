"""`make check-paper`: does every model and dataset the paper preset names resolve on the hub, at the
revision it is pinned to?

Run it on the GPU machine before `PRESET=paper make reproduce`: a gated model (Llama-2 needs its licence
accepted and $HF_TOKEN exported), a renamed dataset or a pinned commit the hub no longer has then fails here
in seconds, not an hour into a run. An id without a pinned revision (lib.models.REGISTRY for models,
lib.data.HUB_REVISIONS for datasets) is a problem too: its run would read whatever the hub holds that day.
Where the hub cannot be reached at all, it says so in one line and exits 2.
"""

from __future__ import annotations

import sys

from .config import get_preset, named_datasets
from .data import HUB, HUB_REVISIONS
from .models import REGISTRY, hub_revision


def paper_ids() -> tuple[list[str], list[str]]:
    """(model ids, dataset ids) of the paper preset: every model role and the hub dataset of every dataset any
    of its config sections names."""
    p = get_preset("paper")
    models = [m for m in dict.fromkeys([*p["models"].values(), *p["zero_shot"]["zero_shot_models"]]) if m]
    names = dict.fromkeys(d for sec in p.values() if isinstance(sec, dict) for d in named_datasets(sec))
    return models, list(dict.fromkeys(HUB[n][0] for n in names))


def _transport_errors() -> tuple:
    """The exceptions of a request that got no answer, from whichever HTTP library huggingface_hub uses."""
    import importlib

    errs = [OSError, TimeoutError]
    for name, attr in (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "ConnectionError"),
    ):
        try:
            errs.append(getattr(importlib.import_module(name), attr))
        except (ImportError, AttributeError):
            continue
    return tuple(errs)


def check(api=None, timeout: float = 10.0) -> list[str]:
    """One problem per line (empty: everything resolves); ConnectionError when the hub is out of reach."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    api = api or HfApi()
    models, datasets = paper_ids()
    problems = []
    checks = (
        ("model", models, api.model_info, hub_revision, "lib.models.REGISTRY"),
        ("dataset", datasets, api.dataset_info, HUB_REVISIONS.get, "lib.data.HUB_REVISIONS"),
    )
    for kind, ids, info, revision, where in checks:
        for rid in ids:
            rev = revision(rid)
            if rev is None:
                problems.append(f"{kind} {rid}: not pinned (no revision in {where})")
            try:
                info(rid, revision=rev, timeout=timeout)
            except RevisionNotFoundError:
                problems.append(f"{kind} {rid}: the hub has no revision {rev}")
            except GatedRepoError:
                problems.append(f"{kind} {rid}: gated; accept its licence on the hub and export HF_TOKEN")
            except RepositoryNotFoundError:
                problems.append(f"{kind} {rid}: not found (or private without HF_TOKEN)")
            except HfHubHTTPError as e:
                problems.append(f"{kind} {rid}: the hub answered {' '.join(str(e).split())[:120]}")
            except Exception as e:  # no answer at all (DNS, connection, timeout): whichever HTTP library
                raise ConnectionError(
                    f"the hub is not reachable from this machine ({type(e).__name__})"
                ) from None
    unknown = [m for m in models if m not in REGISTRY]
    problems += [f"model {m}: not in lib.models.REGISTRY (its architecture is guessed)" for m in unknown]
    return problems


def main() -> int:
    try:
        problems = check()
    except ConnectionError as e:
        print(f"check-paper: {e}; nothing was checked")
        return 2
    models, datasets = paper_ids()
    for p in problems:
        print(f"check-paper: {p}")
    print(f"check-paper: {len(models)} models and {len(datasets)} datasets, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
