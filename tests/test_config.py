"""Every default once: the presets, the parameter helper and the run dataclasses."""

import pytest

from lib import config
from lib.common import ReproError


def test_every_preset_fills_every_notebook_section(monkeypatch):
    monkeypatch.delenv("DISTILL_PRESET", raising=False)  # make test sets it for the notebooks
    for name in config.PRESETS:
        for sections in (
            ("data", "zero_shot"),
            ("teachers",),
            ("a", "signals"),
            ("b", "attribution"),
            ("b", "encoder"),
            ("run",),
            ("recipe",),
        ):
            assert config.params(name, *sections).preset == name
        config.ta_run(config.params(name, "a"))
        config.b_run(config.params(name, "b"))
        config.encoder_run(config.params(name, "b", "encoder"))


def test_params_fill_nones_parse_papermill_strings_and_reject_unknown_names(monkeypatch):
    monkeypatch.delenv("DISTILL_PRESET", raising=False)
    p = config.params("smoke", "a", K=None, seeds="3,4", budget=7)
    assert p.K == config.PRESETS["smoke"]["a"]["K"] and p.seeds == [3, 4] and p.budget == 7
    assert config.ta_run(p).budget == 7 and config.ta_run(p, K=9).K == 9
    assert config.params("smoke", "a", ablation_groups="signals,K").ablation_groups == ["signals", "K"]
    with pytest.raises(ReproError, match="unknown parameter 'bugdet'"):
        config.params("smoke", "a", bugdet=3)
    with pytest.raises(ReproError, match="parameter budget must be positive"):
        config.params("smoke", "a", budget=-1)
    with pytest.raises(ReproError, match="unknown TARun field"):
        config.ta_run(p, bugdet=3)


def test_one_k_and_one_K(monkeypatch):
    monkeypatch.delenv("DISTILL_PRESET", raising=False)
    """The signals notebook and the paper-A runs read one K; every paper-B notebook one k."""
    for name in config.PRESETS:
        assert config.params(name, "a", "signals").K == config.ta_run(config.params(name, "a")).K
        assert "K" not in config.PRESETS[name]["signals"] and "k" not in config.PRESETS[name]["attribution"]


def test_method_lists_are_checked_and_keep_their_baseline():
    from lib import rationales as RB
    from lib import ta_loop
    from lib.data import Example

    mc = [Example(id="q", dataset="d", kind="mc", question="?", answer="a", choices=["a", "b"])]
    numeric = [Example(id="q", dataset="d", kind="numeric", question="?", answer="7")]
    assert RB.methods_for(mc) == ("ft", "dss", "tokens", "hint", "shuffled")
    assert RB.methods_for(numeric) == ("ft", "dss", "tokens", "shuffled")  # hint needs options
    assert RB.methods_for(mc, ["ft", "tokens"]) == ("ft", "tokens")
    assert ta_loop.methods(["plain", "two_stage"]) == ("plain", "two_stage")
    with pytest.raises(ReproError, match="must include 'ft'"):
        RB.methods_for(mc, ["dss", "tokens"])
    with pytest.raises(ReproError, match="must include 'plain'"):
        ta_loop.methods(["two_stage"])
    with pytest.raises(ReproError, match="unknown method 'three_stage'"):
        ta_loop.methods(["plain", "three_stage"])


def test_offline_full_shares_offline_data_and_cache_keys(monkeypatch):
    """offline_full's runs that equal offline's are offline's cache entries: same data, same keys."""
    from lib import data

    assert config.run_preset("offline_full") == "offline" and config.run_preset("smoke") == "smoke"
    full, off = config.get_preset("offline_full"), config.get_preset("offline")
    for section in ("models", "data", "run", "teachers"):
        assert full[section] == off[section]
    for k in ("teacher", "budget", "lr", "epochs", "batch_size", "schedule"):
        assert full["a"][k] == off["a"][k]
    # the same teacher-annotated pool; offline_full scores more dev and test questions, for power
    assert full["a"]["caps"]["pool"] == off["a"]["caps"]["pool"]
    assert full["a"]["caps"]["test"] >= off["a"]["caps"]["test"]
    assert set(off["a"]["seeds"]) < set(full["a"]["seeds"]) and len(full["a"]["seeds"]) >= 5
    assert set(off["b"]["methods"]) < set(full["b"]["methods"])
    assert data.asset_root("offline_full") == data.asset_root("offline")


def test_a_setting_travels_notebook_config_run_config_one_training_function(monkeypatch, tmp_path):
    """Paper A's `lr` and paper B's `alpha` / `lr`, given as notebook parameters, reach the one training
    function through the run config alone (no bag, no re-read of the preset), and the run's cache key is
    its config."""
    from lib import data, rationales, ta_loop, training

    monkeypatch.delenv("DISTILL_PRESET", raising=False)
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    seen = []
    real = training.train

    def spy(student, cfg, seed, dev=None, **kw):
        seen.append(cfg)
        return real(student, cfg, seed, dev, **kw)

    monkeypatch.setattr(training, "train", spy)
    monkeypatch.setattr(ta_loop, "train", spy)
    s = data.load_splits("boolq", "smoke", caps={"pool": 12, "dev": 4, "test": 4})
    P = config.params("smoke", "a", lr=0.0123, budget=4, K=2)
    cfg = config.ta_run(P, epochs=1)
    assert cfg.train.lr == 0.0123 and cfg.precision == P.precision
    ta_loop.run("plain", "boolq", s, cfg, seed=0, progress=False)
    assert [c.lr for c in seen] == [0.0123]
    Pb = config.params("smoke", "b", lr=0.0456, alpha=0.3)
    bcfg = config.b_run(Pb, epochs=1)
    assert bcfg.alpha == 0.3 and bcfg.train.lr == 0.0456
    seen.clear()
    rationales.run("ft", "boolq", s, bcfg, seed=0)
    assert [c.lr for c in seen] == [0.0456]
    # the same run again is a cache hit: nothing trains
    seen.clear()
    rationales.run("ft", "boolq", s, bcfg, seed=0)
    ta_loop.run("plain", "boolq", s, cfg, seed=0, progress=False)
    assert seen == []
