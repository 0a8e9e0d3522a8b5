"""`make check-paper` asks the hub about every model and dataset of the paper preset, and no more."""

import pytest
from huggingface_hub.errors import GatedRepoError

from lib import check_paper, config


class FakeHub:
    def __init__(self, gated=(), down=False):
        self.asked, self.gated, self.down = [], set(gated), down

    def _info(self, kind, rid, timeout):
        if self.down:
            raise OSError("no route to host")
        self.asked.append((kind, rid))
        if rid in self.gated:
            e = GatedRepoError.__new__(GatedRepoError)  # as the hub client raises it, without a response
            Exception.__init__(e, "gated")
            raise e

    def model_info(self, rid, timeout=None):
        self._info("model", rid, timeout)

    def dataset_info(self, rid, timeout=None):
        self._info("dataset", rid, timeout)


def test_every_paper_model_and_dataset_is_asked_about():
    hub = FakeHub(gated={"meta-llama/Llama-2-7b-chat-hf"})
    problems = check_paper.check(api=hub)
    p = config.get_preset("paper")
    models = {m for m in p["models"].values() if m} | set(p["zero_shot"]["zero_shot_models"])
    assert {r for k, r in hub.asked if k == "model"} == models
    assert {r for k, r in hub.asked if k == "dataset"} >= {"tau/commonsense_qa", "facebook/anli", "esnli"}
    assert problems == [
        "model meta-llama/Llama-2-7b-chat-hf: gated; accept its licence on the hub and export HF_TOKEN"
    ]


def test_an_unreachable_hub_is_one_line(monkeypatch, capsys):
    real = check_paper.check
    monkeypatch.setattr(check_paper, "check", lambda: real(api=FakeHub(down=True)))
    assert check_paper.main() == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["check-paper: the hub is not reachable from this machine (OSError); nothing was checked"]


def test_an_unreachable_hub_raises_before_any_answer():
    with pytest.raises(ConnectionError):
        check_paper.check(api=FakeHub(down=True))
