"""The tables the notebooks build, and the generated READMEs, on constructed runs."""

import numpy as np
import pandas as pd
import pytest

from lib import report, stats


def _runs(spec):
    """spec: {(dataset, method, seed): list of 0/1} -> the DataFrame the notebooks build."""
    return pd.DataFrame(
        [
            {"dataset": d, "method": m, "seed": s, "test_acc": float(np.mean(c)), "correct": c}
            for (d, m, s), c in spec.items()
        ]
    )


def test_relative_improvement_per_dataset_and_average_as_the_paper_states_it():
    a0, a1 = [1, 0, 0, 0] * 5, [1, 1, 0, 0] * 5  # dataset a: 0.25 -> 0.50 (+100 %)
    b0, b1 = [1, 1, 1, 1, 0] * 4, [1, 1, 1, 0, 0] * 4  # dataset b: 0.80 -> 0.60 (-25 %)
    runs = _runs(
        {("a", "plain", 0): a0, ("a", "two_stage", 0): a1, ("b", "plain", 0): b0, ("b", "two_stage", 0): b1}
    )
    t = report.table_a_main(runs)
    row = lambda d: t[(t.dataset == d) & (t.method == "two_stage")].iloc[0]  # noqa: E731
    assert row("a")["rel_%"] == pytest.approx(100.0) and row("b")["rel_%"] == pytest.approx(-25.0)
    assert row("average")["rel_%"] == pytest.approx(37.5)  # mean of per-dataset relative changes
    assert row("average")["paper_%"] == report.PAPER_A_AVG and np.isnan(row("a")["paper_%"])
    assert row("a").rel_lo <= 100.0 <= row("a").rel_hi and row("a")["mde_rel_%"] > 0
    assert set(t.verdict) <= set(stats.VERDICTS)


def test_a_row_whose_students_did_not_train_is_not_tested():
    c0, c1 = [1, 0] * 30, [1, 1, 1, 0] * 15
    runs = _runs({("a", "ft", s): c0 for s in range(3)} | {("a", "tokens", s): c1 for s in range(3)})
    runs["trained"] = [True, False, False, True, True, True]  # ft trained in 1 of 3 seeds
    t = report.comparison(runs, "ft")
    assert (t.verdict == stats.NOT_TESTED).all() and t.trained_seeds.iloc[0] == 1


def test_runs_round_trip_through_their_csv(tmp_path):
    runs = _runs({("a", "ft", 0): [1, 0, 1], ("a", "tokens", 0): [1, 1, 1]})
    report.save_runs(runs, tmp_path / "runs.csv")
    back = pd.read_csv(tmp_path / "runs.csv", dtype={"correct": str})
    pd.testing.assert_frame_equal(report.comparison(back, "ft"), report.comparison(runs, "ft"))


def test_ablation_table_gives_an_interval_even_for_one_seed():
    runs = pd.DataFrame(
        [
            {
                "group": "k",
                "setting": "1",
                "method": "tokens",
                "seed": 0,
                "test_acc": 0.5,
                "correct": [1, 0] * 50,
            },
            {
                "group": "k",
                "setting": "3",
                "method": "tokens",
                "seed": 0,
                "test_acc": 0.5,
                "correct": [1, 1, 0, 0] * 25,
            },
            {
                "group": "k",
                "setting": "3",
                "method": "tokens",
                "seed": 1,
                "test_acc": 0.5,
                "correct": [0, 0, 1, 1] * 25,
            },
        ]
    )
    s = report.ablation_table(runs)
    one, two = s.iloc[0], s.iloc[1]
    assert one.seeds == 1 and one.acc_lo < 0.5 < one.acc_hi and one.acc_hi - one.acc_lo > 0.1
    assert two.seeds == 2 and two.n_test == 100 and two.acc_mean == 0.5


def test_ground_truth_row_uses_exact_intervals_and_reports_the_random_control_apart():
    n = 50
    g = {
        "hit": [True] * n,
        "hit_target": [True] * n,
        "random": [False] * 45 + [True] * 5,
        "random_option": [True] * 25 + [False] * 25,
        "target_is_gold": [True] * n,
    }
    r = report.ground_truth_row(g)
    assert r["hit"] == 1.0 and r["hit_hi"] == 1.0 and r["hit_lo"] == pytest.approx(0.9289, abs=1e-4)
    assert r["verdict"] == stats.LARGER and r["above_random"]  # [92.9, 100] lies above 68 and the control
    half = report.ground_truth_row({**g, "hit": [True, False] * 25})
    assert half["verdict"] == stats.SMALLER and half["above_random"]  # [35.5, 64.5]: below 68, above 10 %
    near = report.ground_truth_row(
        {**g, "hit": [True] * 35 + [False] * 15, "random": [True] * 34 + [False] * 16}
    )
    assert near["verdict"] == stats.CONSISTENT and not near["above_random"]  # 70 % [55, 82] vs a 68 % control


def test_readme_headline_is_filled_between_its_markers(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:HEADLINE -->\nold text\n<!-- /results:HEADLINE -->\nend\n")
    monkeypatch.setattr(report, "rendered_presets", lambda: ["smoke-missing"])
    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path / p)
    report.update_readme(readme)
    text = readme.read_text()
    body = text.split("<!-- results:HEADLINE -->\n")[1].split("<!-- /results:HEADLINE -->")[0]
    assert "| claim" in body and "not run" in body and "+20.79 %" in body and "68 %" in body
    assert "old text" not in text and text.startswith("intro\n") and text.endswith("end\n")


def test_the_headline_gets_a_column_per_preset_with_a_rendered_claim_table(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "ROOT", tmp_path)
    for p, csv in (("offline_full", "05_recipe.csv"), ("offline", "12_A_main_table.csv")):
        (tmp_path / "results" / p).mkdir(parents=True, exist_ok=True)
        (tmp_path / "results" / p / csv).write_text("x\n")
    assert report.rendered_presets() == ["offline"]  # notebook 05 carries no claim
    (tmp_path / "results" / "offline_full" / "21_B_main_table.csv").write_text("x\n")
    assert report.rendered_presets() == ["offline_full", "offline"]


def test_run_info_names_the_rendered_notebooks_without_a_cold_time():
    times = {"05_a.ipynb": (None, 12.0, 1.0), "10_b.ipynb": (600.0, 6.0, 1.0)}
    info = report.run_info("smoke", times)
    assert "cold run of the 2 rendered notebooks: 10.0 min for 1 of them (05_a: no cold run logged)" in info
