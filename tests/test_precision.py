"""One precision setting, resolved once by lib.config and carried by the run's config: bf16 autocast agrees
with fp32, keeps its own cache entries, leaves no wrapper on a trained model, and falls back to fp32 where
the hardware has no bf16 units."""

from dataclasses import replace

import pytest
import torch

from lib import config, data, training
from lib.common import ReproError
from lib.config import Train
from lib.models import load_model

PROMPTS = ["Question: Which is a fruit?\nAnswer:", "Question: Is the sky blue?\nAnswer:"]
CONTS = [" apple", " yes"]


def _lm(monkeypatch, precision):
    return load_model("tiny-llama", precision)


def test_auto_resolves_by_hardware_once_in_config(monkeypatch):
    monkeypatch.delenv("DISTILL_PRESET", raising=False)  # make test sets it for the notebooks
    monkeypatch.setattr(config, "bf16_hardware", lambda: False)
    assert config.resolve_precision("auto") == "fp32"  # fallback on a CPU without bf16 units
    assert config.params("offline", "a").precision == "fp32"  # offline asks for auto
    monkeypatch.setattr(config, "bf16_hardware", lambda: True)
    assert config.resolve_precision("auto") == "bf16"
    P = config.params("offline", "a")
    assert P.precision == config.ta_run(P).precision == config.b_run(config.params("offline", "b")).precision
    assert config.resolve_precision("fp32") == "fp32"
    with pytest.raises(ReproError, match="unknown precision 'fp8'"):
        config.resolve_precision("fp8")


def test_bf16_scores_agree_with_fp32_on_a_tiny_model(monkeypatch):
    fp32, bf16 = _lm(monkeypatch, "fp32"), _lm(monkeypatch, "bf16")
    assert not fp32.bf16 and bf16.bf16
    a, b = fp32.score(PROMPTS, CONTS), bf16.score(PROMPTS, CONTS)
    assert any(not torch.equal(x, y) for x, y in zip(a, b))  # bf16 really ran
    for x, y in zip(a, b):
        torch.testing.assert_close(y, x, atol=0.05, rtol=0.02)  # bf16 keeps ~3 significant digits
    opts = [[" apple", " saw"], [" yes", " no"]]
    for a, b in zip(fp32.score_options(PROMPTS, opts), bf16.score_options(PROMPTS, opts)):
        for x, y in zip(a, b):
            torch.testing.assert_close(y, x, atol=0.05, rtol=0.02)


def test_two_precisions_never_share_a_cache_entry(monkeypatch, tmp_path):
    """A run's precision is part of its config, hence of its cache key: the same run at fp32 and bf16
    computes twice, and again at fp32 hits the first entry."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    s = data.load_splits("boolq", "smoke", caps={"pool": 8, "dev": 4, "test": 4})
    items = training.make_items(s["pool"], [e.answer for e in s["pool"]], [None] * 8, fmt="answer_only")
    cfg = Train(epochs=1, lr=1e-3, batch_size=4, schedule="linear", eval_batch_size=8, bf16=False)
    kw = dict(seed=0, cfg=cfg, fmt="answer_only", progress=False)
    before = len(list(tmp_path.rglob("finetune/*.json")))
    for p in ("fp32", "bf16", "fp32"):
        training.finetune_and_test("tiny-llama", items, s["dev"], s["test"], precision=p, **kw)
    assert len(list(tmp_path.rglob("finetune/*.json"))) - before == 2


CFG = Train(epochs=1, lr=3e-3, batch_size=4, schedule="linear", eval_batch_size=8, bf16=False)


def _curve(monkeypatch, precision, bf16_training):
    s = data.load_splits("boolq", "smoke", caps={"pool": 16, "dev": 6, "test": 6})
    items = training.make_items(s["pool"], [e.answer for e in s["pool"]], [e.rationale for e in s["pool"]])
    lm = _lm(monkeypatch, precision)
    student = training.lm_student(lm, items)
    return training.train(student, replace(CFG, bf16=bf16_training), seed=0, progress=False)


def test_bf16_inference_trains_in_fp32_unless_bf16_training_is_on(monkeypatch):
    fp32 = _curve(monkeypatch, "fp32", False)["loss"]
    assert _curve(monkeypatch, "bf16", False)["loss"] == fp32  # bf16 scoring, fp32 training
    assert _curve(monkeypatch, "bf16", True)["loss"] != fp32
    # config turns bf16 training on only where every forward is bf16
    monkeypatch.delenv("DISTILL_PRESET", raising=False)
    for hw, flag, on in ((False, True, False), (True, True, True), (True, False, False)):
        monkeypatch.setattr(config, "bf16_hardware", lambda hw=hw: hw)
        P = config.params("offline", "b", "run", bf16_training=flag)
        assert config.train_cfg(P).bf16 is on


def test_bf16_training_learns_as_fp32_and_returns_a_bare_model(monkeypatch):
    s = data.load_splits("boolq", "smoke", caps={"pool": 16, "dev": 6, "test": 6})
    items = training.make_items(s["pool"], [e.answer for e in s["pool"]], [e.rationale for e in s["pool"]])
    last, curves = {}, {}
    for p in ("fp32", "bf16"):
        lm = _lm(monkeypatch, p)
        cfg = replace(CFG, epochs=3, bf16=p == "bf16")
        hist = training.train(training.lm_student(lm, items), cfg, seed=0, progress=False)
        last[p], curves[p] = sum(hist["loss"][-3:]) / 3, hist["loss"]
        assert hist["loss"][-1] < hist["loss"][0]
        assert all(q.dtype == torch.float32 for q in lm.model.parameters())  # fp32 master weights
        assert not hasattr(lm.model, "_original_forward")  # accelerate's autocast wrapper is gone
    assert curves["bf16"] != curves["fp32"]  # autocast was on: bf16 rounding moves every loss a little
    assert last["bf16"] == pytest.approx(last["fp32"], rel=0.1)
