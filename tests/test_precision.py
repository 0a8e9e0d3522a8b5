"""One precision setting (lib.common.precision): bf16 autocast agrees with fp32, keeps its own cache entries,
leaves no wrapper on a trained model, and falls back to fp32 where the hardware has no bf16 units."""

import pytest
import torch

from lib import common, data, training
from lib.common import ReproError, cached_json
from lib.models import load_model

PROMPTS = ["Question: Which is a fruit?\nAnswer:", "Question: Is the sky blue?\nAnswer:"]
CONTS = [" apple", " yes"]


def _lm(monkeypatch, precision):
    monkeypatch.setenv("DISTILL_PRECISION", precision)
    return load_model("tiny-llama")


def test_auto_resolves_by_hardware_and_unset_means_fp32(monkeypatch):
    monkeypatch.delenv("DISTILL_PRECISION", raising=False)
    assert common.precision() == "fp32"
    monkeypatch.setenv("DISTILL_PRECISION", "auto")
    monkeypatch.setattr(common, "bf16_hardware", lambda: False)
    assert common.precision() == "fp32"  # fallback on a CPU without bf16 units
    monkeypatch.setattr(common, "bf16_hardware", lambda: True)
    assert common.precision() == "bf16"
    monkeypatch.setenv("DISTILL_PRECISION", "fp8")
    with pytest.raises(ReproError, match="unknown precision 'fp8'"):
        common.precision()


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
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    calls = []
    for p in ("fp32", "bf16", "fp32"):
        monkeypatch.setenv("DISTILL_PRECISION", p)
        cached_json("probe", {"x": 1}, lambda p=p: calls.append(p) or p)
    assert calls == ["fp32", "bf16"]  # the second fp32 call is a hit on the first, not on bf16's entry


def _curve(monkeypatch, precision, bf16_training):
    monkeypatch.setenv("DISTILL_BF16_TRAINING", "1" if bf16_training else "0")
    s = data.load_splits("boolq", "smoke", caps={"pool": 16, "dev": 6, "test": 6})
    items = training.make_items(s["pool"], [e.answer for e in s["pool"]], [e.rationale for e in s["pool"]])
    lm = _lm(monkeypatch, precision)
    return training.train(
        lm, items, epochs=1, lr=3e-3, batch_size=4, seed=0, schedule="linear", progress=False
    )


def test_bf16_inference_trains_in_fp32_unless_bf16_training_is_on(monkeypatch, tmp_path):
    fp32 = _curve(monkeypatch, "fp32", False)["loss"]
    assert _curve(monkeypatch, "bf16", False)["loss"] == fp32  # bf16 scoring, fp32 training
    assert _curve(monkeypatch, "fp32", True)["loss"] == fp32  # the flag needs precision bf16
    assert _curve(monkeypatch, "bf16", True)["loss"] != fp32
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    monkeypatch.setenv("DISTILL_PRECISION", "bf16")
    calls = []
    for flag in ("0", "1", "0"):
        monkeypatch.setenv("DISTILL_BF16_TRAINING", flag)
        cached_json("probe", {"x": 1}, lambda f=flag: calls.append(f) or f)
    assert calls == ["0", "1"]  # a run trained in bf16 never shares an entry with one trained in fp32


def test_bf16_training_learns_as_fp32_and_returns_a_bare_model(monkeypatch):
    s = data.load_splits("boolq", "smoke", caps={"pool": 16, "dev": 6, "test": 6})
    items = training.make_items(s["pool"], [e.answer for e in s["pool"]], [e.rationale for e in s["pool"]])
    monkeypatch.setenv("DISTILL_BF16_TRAINING", "1")
    last, curves = {}, {}
    for p in ("fp32", "bf16"):
        lm = _lm(monkeypatch, p)
        hist = training.train(
            lm, items, epochs=3, lr=3e-3, batch_size=4, seed=0, schedule="linear", progress=False
        )
        last[p], curves[p] = sum(hist["loss"][-3:]) / 3, hist["loss"]
        assert hist["loss"][-1] < hist["loss"][0]
        assert all(q.dtype == torch.float32 for q in lm.model.parameters())  # fp32 master weights
        assert not hasattr(lm.model, "_original_forward")  # accelerate's autocast wrapper is gone
    assert curves["bf16"] != curves["fp32"]  # autocast was on: bf16 rounding moves every loss a little
    assert last["bf16"] == pytest.approx(last["fp32"], rel=0.1)
