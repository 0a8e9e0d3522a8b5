"""Evaluation arithmetic on constructed runs: relative improvement the paper's way, paired intervals, ablation rows."""
import numpy as np
import pandas as pd
import pytest

from lib import evaluation as ev


def _runs(spec):
    """spec: {(dataset, method, seed): list of 0/1} -> the DataFrame the notebooks build."""
    return pd.DataFrame([{"dataset": d, "method": m, "seed": s, "test_acc": float(np.mean(c)), "correct": c}
                         for (d, m, s), c in spec.items()])


def test_relative_improvement_per_dataset_and_average_as_the_paper_states_it():
    a0, a1 = [1, 0, 0, 0] * 5, [1, 1, 0, 0] * 5          # dataset a: 0.25 -> 0.50 (+100 %)
    b0, b1 = [1, 1, 1, 1, 0] * 4, [1, 1, 1, 0, 0] * 4    # dataset b: 0.80 -> 0.60 (-25 %)
    t = ev.compare_methods(_runs({("a", "plain", 0): a0, ("a", "two", 0): a1, ("b", "plain", 0): b0, ("b", "two", 0): b1}), baseline="plain")
    row = lambda d, m: t[(t.dataset == d) & (t.method == m)].iloc[0]
    assert row("a", "two")["rel_impr_%"] == pytest.approx(100.0)
    assert row("b", "two")["rel_impr_%"] == pytest.approx(-25.0)
    assert row("average", "two")["rel_impr_%"] == pytest.approx(37.5)  # mean of per-dataset relative changes
    assert row("a", "plain")["rel_lo"] == row("a", "plain")["rel_hi"] == 0.0  # paired: baseline vs itself has no spread
    assert row("a", "two")["rel_lo"] <= 100.0 <= row("a", "two")["rel_hi"]


def test_ablation_summary_gives_an_interval_even_for_one_seed_and_pools_seeds_per_question():
    runs = pd.DataFrame([
        {"group": "k", "setting": "1", "method": "tokens", "seed": 0, "test_acc": 0.5, "correct": [1, 0] * 50},
        {"group": "k", "setting": "3", "method": "tokens", "seed": 0, "test_acc": 0.5, "correct": [1, 1, 0, 0] * 25},
        {"group": "k", "setting": "3", "method": "tokens", "seed": 1, "test_acc": 0.5, "correct": [0, 0, 1, 1] * 25},
    ])
    s = ev.ablation_summary(runs)
    one, two = s.iloc[0], s.iloc[1]
    assert one.seeds == 1 and np.isnan(one.acc_std) and one.acc_lo < 0.5 < one.acc_hi and one.acc_hi - one.acc_lo > 0.1
    # two seeds that disagree on every question average to 0.5 per question: no spread left over questions
    assert two.seeds == 2 and two.n_test == 100 and two.acc_lo == two.acc_hi == 0.5


def test_readme_blocks_are_filled_between_markers_even_when_empty(tmp_path):
    from lib import report

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:ENC -->\n<!-- /results:ENC -->\nmiddle\n<!-- results:WEAK -->\nold text\n<!-- /results:WEAK -->\nend\n")
    report.update_readme("smoke", readme)
    text = readme.read_text()
    for name in ("ENC", "WEAK"):
        body = text.split(f"<!-- results:{name} -->\n")[1].split(f"<!-- /results:{name} -->")[0]
        assert body.strip() and "| dataset" in body  # a table, or its 'not run' row, in every block
    assert "old text" not in text and text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")


def test_every_preset_fills_every_notebook_section():
    """Each notebook group's parameters resolve at every preset, and the run dataclasses build from them."""
    from lib import config

    for name in config.PRESETS:
        for sections in (("data", "zero_shot"), ("teachers",), ("a", "signals"), ("b", "attribution"),
                         ("b", "encoder")):
            p = config.params(name, *sections)
            assert p.preset == name
        config.ta_run(config.params(name, "a"))
        config.b_train(config.params(name, "b"))
        config.encoder_run(config.params(name, "b", "encoder"))
