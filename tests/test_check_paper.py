"""`make check-paper` asks the hub about every model and dataset of the paper preset, and no more."""

import pytest
from huggingface_hub.errors import GatedRepoError, RevisionNotFoundError

from lib import check_paper, config
from lib.data import HUB_REVISIONS
from lib.models import REGISTRY


def _raised(cls, message):
    """An exception as the hub client raises it, without an HTTP response behind it."""
    e = cls.__new__(cls)
    Exception.__init__(e, message)
    return e


class FakeHub:
    def __init__(self, gated=(), no_revision=(), down=False):
        self.asked, self.gated, self.no_revision, self.down = [], set(gated), set(no_revision), down

    def _info(self, kind, rid, revision, timeout):
        if self.down:
            raise OSError("no route to host")
        self.asked.append((kind, rid, revision))
        if rid in self.gated:
            raise _raised(GatedRepoError, "gated")
        if rid in self.no_revision:
            raise _raised(RevisionNotFoundError, "no such revision")

    def model_info(self, rid, revision=None, timeout=None):
        self._info("model", rid, revision, timeout)

    def dataset_info(self, rid, revision=None, timeout=None):
        self._info("dataset", rid, revision, timeout)


def test_every_paper_model_and_dataset_is_asked_about():
    hub = FakeHub(gated={"meta-llama/Llama-2-7b-chat-hf"})
    problems = check_paper.check(api=hub)
    p = config.get_preset("paper")
    models = {m for m in p["models"].values() if m} | set(p["zero_shot"]["zero_shot_models"])
    assert {r for k, r, _ in hub.asked if k == "model"} == models
    assert {r for k, r, _ in hub.asked if k == "dataset"} >= {"tau/commonsense_qa", "facebook/anli", "esnli"}
    assert problems == [
        "model meta-llama/Llama-2-7b-chat-hf: gated; accept its licence on the hub and export HF_TOKEN",
        "dataset esnli: not pinned (no revision in lib.data.HUB_REVISIONS)",
    ]


def test_the_hub_is_asked_for_the_pinned_revision_of_every_id():
    hub = FakeHub()
    check_paper.check(api=hub)
    pinned = {("model", m): s.revision for m, s in REGISTRY.items() if s.source == "hub"}
    pinned |= {("dataset", d): rev for d, rev in HUB_REVISIONS.items()}
    assert hub.asked
    for kind, rid, revision in hub.asked:
        assert revision == pinned[kind, rid], (kind, rid)
    assert sum(rev is not None for _, _, rev in hub.asked) == len(hub.asked) - 1  # all but esnli


def test_an_unpinned_id_and_a_missing_revision_are_problems(monkeypatch):
    monkeypatch.setitem(HUB_REVISIONS, "openai/gsm8k", None)
    problems = check_paper.check(api=FakeHub(no_revision={"t5-base"}))
    assert "dataset openai/gsm8k: not pinned (no revision in lib.data.HUB_REVISIONS)" in problems
    assert f"model t5-base: the hub has no revision {REGISTRY['t5-base'].revision}" in problems


def test_an_unreachable_hub_is_one_line(monkeypatch, capsys):
    real = check_paper.check
    monkeypatch.setattr(check_paper, "check", lambda: real(api=FakeHub(down=True)))
    assert check_paper.main() == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["check-paper: the hub is not reachable from this machine (OSError); nothing was checked"]


def test_an_unreachable_hub_raises_before_any_answer():
    with pytest.raises(ConnectionError):
        check_paper.check(api=FakeHub(down=True))
