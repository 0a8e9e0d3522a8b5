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
        config.b_train(config.params(name, "b"))
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
    assert RB.methods_for(mc) == ("ft", "dss", "tokens", "hint")
    assert RB.methods_for(numeric) == ("ft", "dss", "tokens")  # hint needs options
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
    for k in ("caps", "teacher", "budget", "lr", "epochs", "batch_size", "schedule"):
        assert full["a"][k] == off["a"][k]
    assert set(off["a"]["seeds"]) < set(full["a"]["seeds"]) and len(full["a"]["seeds"]) >= 5
    assert set(off["b"]["methods"]) < set(full["b"]["methods"])
    assert data.asset_root("offline_full") == data.asset_root("offline")
