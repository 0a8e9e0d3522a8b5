"""The tables the notebooks build, and the generated READMEs, on constructed runs."""

import numpy as np
import pandas as pd
import pytest

from lib import config, report, stats


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


# ---------------------------------------------------------------- premises beside every verdict


def _binary(rng, p, n):
    return list((rng.random(n) < p).astype(int))


def _warm_rows(rng, informative: bool, n: int = 60) -> pd.DataFrame:
    """WARM_CSV's rows for 3 seeds over the same n questions: 1 - need follows the right answers where
    `informative`, else is noise."""
    right = rng.random(n) < 0.4
    rows = []
    for seed in range(3):
        score = (right if informative else 0) + rng.normal(0, 0.5, n)
        rows += [
            {"dataset": "commonsense_qa", "seed": seed, "id": f"q{i}", "signal": "1 - need"}
            | {"score": x, "correct": y}
            for i, (x, y) in enumerate(zip(score, right))
        ]
    return pd.DataFrame(rows)


def _results(tmp, *, auroc=(0.8, 0.7, 0.9), teacher_right=0.6, questions=True, warm=True):
    """A results folder of the offline preset where every premise of paper A, paper B and the 68 % claim
    holds, except where the arguments plant a failure: the TA's AUROC (point, lo, hi), the attribution
    teacher's accuracy on its prompt, the per-question hits of notebook 23, whether the warmed student's
    signals see its errors."""
    rng = np.random.default_rng(0)
    _warm_rows(np.random.default_rng(1), warm).to_csv(tmp / report.WARM_CSV, index=False)
    cols = {"trained": True, "zero_shot_dev": 0.29}
    for name, arms in (("12_A_runs.csv", ("plain", "two_stage")), ("21_B_runs.csv", ("ft", "tokens"))):
        spec = {
            ("commonsense_qa", m, s): _binary(rng, p, 200) for s in range(3) for m, p in zip(arms, (0.4, 0.6))
        }
        report.save_runs(_runs(spec).assign(**cols), tmp / name)
    gold = {
        ("commonsense_qa", lab, s): _binary(rng, p, 200)
        for s in range(3)
        for lab, p in (("gold", 0.6), ("shuffled", 0.3))
    }
    recipe = _runs(gold).assign(student="lm", recipe="r", labels=lambda d: d.method, **cols)
    report.save_runs(recipe.drop(columns="method"), tmp / "05_recipe_runs.csv")
    pd.DataFrame([{"student": "lm", "dataset": "commonsense_qa", "recipe": "r", "verdict": "learns"}]).to_csv(
        tmp / "05_recipe_chosen.csv", index=False
    )
    pd.DataFrame(
        [
            {
                "teacher": "lm:gemma-3-270m",
                "dataset": "commonsense_qa",
                "n": 150,
                "acc": 0.47,
                "ci_lo": 0.38,
                "ci_hi": 0.55,
            }
        ]
    ).to_csv(tmp / "10_teacher_accuracy.csv", index=False)
    a, lo, hi = auroc
    pd.DataFrame(
        [
            {"signal": "TA confidence", "of": "LM teacher", "ta": "smollm2-135m-instruct", "span": "full"}
            | {"dataset": "commonsense_qa", "n": 100, "n_correct": 47, "auroc": a, "ci_lo": lo, "ci_hi": hi}
        ]
    ).to_csv(tmp / "11_signal_auroc.csv", index=False)
    pd.DataFrame([{"model": "gemma-3-270m", "dataset": "commonsense_qa", "chance": 0.2}]).to_csv(
        tmp / "00_zero_shot.csv", index=False
    )
    share = {c: 0.5 for c in ("hit", "random", "random_option", "wrong_target_hit")}
    share |= {f"{c}_{b}": 0.5 for c in share for b in ("lo", "hi")}
    rows = [
        {"block": "main", "dataset": d, "subset": "all", "n": 150, "teacher_acc": teacher_right}
        for d in ("commonsense_qa", "all")
    ]
    pd.DataFrame([r | share | {"mde_pts": 11.0} for r in rows]).to_csv(
        tmp / "23_ground_truth.csv", index=False
    )
    if questions:
        hits = {"hit": _binary(rng, 0.9, 150)} | {c: _binary(rng, 0.3, 150) for c in report.GT_CONTROLS}
        pd.DataFrame(hits).to_csv(tmp / report.GT_QUESTIONS, index=False)


def _headline(tmp_path, monkeypatch, **planted):
    _results(tmp_path, **planted)
    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path)
    h = report.headline(["offline"]).set_index("claim")
    return {
        k: h.loc[c]
        for k, c in (("A", report.CLAIMS[0][0]), ("B", report.CLAIMS[2][0]), ("GT", report.GT_CLAIM))
    }


def test_headline_gives_the_interval_verdict_where_every_premise_holds(tmp_path, monkeypatch):
    rows = _headline(tmp_path, monkeypatch)
    for k in ("A", "B"):
        assert rows[k]["verdict (offline)"] in stats.VERDICTS and rows[k]["verdict (offline)"] != "not tested"
        assert rows[k]["premises (offline)"].count(": yes (") == (4 if k == "A" else 2)
    table = report.comparison_table("offline", "12_A_main_table.csv")
    assert rows["A"]["verdict (offline)"] == table.verdict.iloc[-1] == stats.LARGER  # +50 %, above +20.79
    assert "gold - shuffled labels" in rows["A"]["premises (offline)"]
    assert rows["GT"]["verdict (offline)"].startswith("gain vs ")  # paired differences, not a null of 0
    assert "paired over 150 questions" in rows["GT"]["verdict (offline)"]


def test_headline_says_not_tested_with_the_number_where_a_planted_premise_fails(tmp_path, monkeypatch):
    rows = _headline(tmp_path, monkeypatch, auroc=(0.39, 0.29, 0.50), teacher_right=0.16, questions=False)
    a = rows["A"]
    assert a["verdict (offline)"].startswith("not tested: no signal shown to separate")
    assert (
        "AUROC 0.39 [0.29, 0.50]" in a["verdict (offline)"]
        and "students learn: yes" in a["premises (offline)"]
    )
    assert a["ours (offline)"].startswith("+") and "[" in a["ours (offline)"]  # the interval is still shown
    b = rows["B"]
    assert b["verdict (offline)"].startswith("not tested: attribution teacher not shown above chance")
    assert "24/150 = 16 %" in b["verdict (offline)"] and "chance 20 %" in b["verdict (offline)"]
    gt = rows["GT"]["verdict (offline)"]
    assert gt.startswith("not tested: ") and "not measured" in gt and "per-question hits" in gt


def test_two_stage_is_not_tested_where_the_warmed_students_signals_are_noise(tmp_path, monkeypatch):
    a = _headline(tmp_path, monkeypatch, warm=False)["A"]
    assert a["verdict (offline)"].startswith("not tested: the warmed student's signals not shown to separate")
    assert "180 answers to 60 questions over 3 seeds (12)" in a["verdict (offline)"]
    assert "signal separates the teacher's right from wrong outputs: yes" in a["premises (offline)"]


def test_warm_auroc_resamples_questions_not_their_seed_rows():
    # the same answers scored again under two more seeds add no evidence: the interval stays that of one seed
    one = _warm_rows(np.random.default_rng(1), True).query("seed == 0")
    three = pd.concat([one.assign(seed=s) for s in range(3)])
    cols = ["auroc", "ci_lo", "ci_hi"]
    np.testing.assert_allclose(report.warm_auroc(three)[cols], report.warm_auroc(one)[cols], atol=1e-12)


def test_the_weak_teacher_claims_signal_premise_is_the_tas_confidence_in_that_teachers_answers(
    tmp_path, monkeypatch
):
    # notebook 25's TA weights its own weak teacher's answers: its premise reads WEAK_CSV, never notebook 11's
    # AUROC of another teacher (here planted informative, so reading it would say yes)
    _results(tmp_path)
    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path)
    claim = next(c for c in report.CLAIMS if c[1] == "25_B_weak_teacher_table.csv")
    assert "weak_signal" in claim[-1] and "signal" not in claim[-1]
    weak = report.PREMISES["weak_signal"]
    assert weak("offline", ["commonsense_qa"]).holds is None  # notebook 25 not run: not measured
    rng = np.random.default_rng(2)
    right = rng.random(80) < 0.5
    for informative, holds in ((True, True), (False, False)):
        conf = (right if informative else 0) + rng.normal(0, 0.5, 80)
        rows = pd.DataFrame({"dataset": "commonsense_qa", "id": range(80), "correct": right, "ta_conf": conf})
        rows.to_csv(tmp_path / report.WEAK_CSV, index=False)
        p = weak("offline", ["commonsense_qa"])
        assert p.holds is holds and "80 pool questions" in p.number


def test_a_premise_without_its_csv_is_not_measured_and_the_claim_not_tested(tmp_path, monkeypatch):
    _results(tmp_path)
    (tmp_path / "11_signal_auroc.csv").unlink()
    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path)
    row = report.headline(["offline"]).set_index("claim").loc[report.CLAIMS[0][0]]
    assert (
        "a signal separates the teacher's right from wrong outputs: not measured" in row["premises (offline)"]
    )
    assert row["verdict (offline)"].startswith("not tested: a signal separates")


def test_a_recipe_is_chosen_where_gold_labels_beat_shuffled_ones_on_the_difference():
    table = pd.DataFrame(
        [
            {"student": "lm", "dataset": "d", "recipe": "a", "beat_pretrained": 1.0, "best_dev": 0.5}
            | {"diff_lo": -1.0, "verdict": stats.NO_DIFFERENCE},
            {"student": "lm", "dataset": "d", "recipe": "b", "beat_pretrained": 1.0, "best_dev": 0.4}
            | {"diff_lo": 2.0, "verdict": stats.NO_DIFFERENCE},  # the relative interval may still hold 0
            {"student": "lm", "dataset": "e", "recipe": "c", "beat_pretrained": 0.5, "best_dev": 0.6}
            | {"diff_lo": 2.0, "verdict": stats.GAIN},
        ]
    )
    chosen = report.chosen_recipes(table)
    assert list(chosen.recipe) == ["b", "-"] and list(chosen.verdict)[1] == "the student does not learn it"


def test_notebook_06s_premise_table_decides_where_it_ran(tmp_path, monkeypatch):
    _results(tmp_path, teacher_right=0.16)  # notebook 23 alone: the attribution teacher at chance
    row = {"dataset": "commonsense_qa", "chance": 0.2, "student_pretrained_dev": 0.29}
    row |= {f"teacher_options_pool{s}": v for s, v in (("", 0.3), ("_lo", 0.21), ("_hi", 0.4), ("_n", 100))}
    c = "teacher_attribution_prompt_pool"
    row |= {f"{c}{s}": v for s, v in (("", 0.5), ("_lo", 0.4), ("_hi", 0.6), ("_n", 100))}
    pd.DataFrame([row]).to_csv(tmp_path / "06_premises.csv", index=False)
    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path)
    # notebook 10's accuracy of the demonstrations paper A buys decides the teacher premise where it ran
    with_10 = report.headline(["offline"]).set_index("claim").loc[report.CLAIMS[0][0]]
    assert "(10, 12)" in with_10["premises (offline)"] and "(06)" not in with_10["premises (offline)"]
    (tmp_path / "10_teacher_accuracy.csv").unlink()
    h = report.headline(["offline"]).set_index("claim")
    a, b = h.loc[report.CLAIMS[0][0]], h.loc[report.CLAIMS[2][0]]
    assert a["verdict (offline)"].startswith("not tested: teacher not shown above the student")
    assert (
        "teacher 30 % [21, 40] of 100 pool questions; student pretrained 29 % (06)" in a["verdict (offline)"]
    )
    assert (
        "attribution teacher above chance on its prompt: yes (commonsense_qa: right on 50/100"
        in b["premises (offline)"]
    )
    assert b["verdict (offline)"] in stats.VERDICTS


def test_a_main_tables_students_learn_when_they_beat_their_shuffled_control(tmp_path, monkeypatch):
    """The students premise of a main table reads its own control: plain (or ft) against `shuffled`, the
    same questions with answers permuted; a control as good as the students fails the premise."""
    rng = np.random.default_rng(0)

    def runs(p_plain, p_shuffled):
        rows = []
        for seed in range(3):
            for m, p in (("plain", p_plain), ("shuffled", p_shuffled)):
                c = "".join(str(int(x)) for x in rng.random(200) < p)
                rows.append({"dataset": "commonsense_qa", "method": m, "seed": seed, "correct": c})
        pd.DataFrame(rows).to_csv(tmp_path / "12_A_runs.csv", index=False)

    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path)
    premise = report.PREMISES["students_a"]
    runs(0.6, 0.2)
    good = premise("offline", ["commonsense_qa"])
    assert good.holds is True and "plain - shuffled control" in good.cell()
    runs(0.3, 0.3)
    assert premise("offline", ["commonsense_qa"]).holds is False


def test_the_premise_summary_names_the_datasets_where_each_rule_holds(tmp_path, monkeypatch):
    """The results README's premise table and the headline's line are notebook 06's rule, per dataset."""
    from lib import premises

    def cells(name, acc, lo, hi):
        return {name: acc, f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_n": 40}

    rows = [  # x: the teacher knows more than the student; y: the attribution teacher beats chance
        {"dataset": "x", "kind": "mc", "chance": 0.25}
        | cells("student_pretrained_dev", 0.3, 0.2, 0.4)
        | cells("teacher_options_pool", 0.6, 0.45, 0.75)
        | cells("teacher_attribution_prompt_pool", 0.2, 0.1, 0.35)
        | cells("teacher_lettered_pool", 0.2, 0.1, 0.35),
        {"dataset": "y", "kind": "mc", "chance": 0.25}
        | cells("student_pretrained_dev", 0.5, 0.35, 0.65)
        | cells("teacher_options_pool", 0.5, 0.35, 0.65)
        | cells("teacher_attribution_prompt_pool", 0.5, 0.35, 0.65)
        | cells("teacher_lettered_pool", 0.3, 0.2, 0.45),
    ]
    premises.judge(pd.DataFrame(rows)).to_csv(tmp_path / "06_premises.csv", index=False)
    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path)
    line = report.premise_line("offline")
    assert "40 pool and dev questions" in line
    assert "(paper A) on x;" in line and "(paper B) on y;" in line and "of 2 candidate datasets" in line
    t = report.premise_table("offline").set_index("dataset")
    assert t.loc["x", "teacher, options scored (pool)"] == "60 % [45, 75]"
    assert list(t["A: teacher above the student, below 1"]) == ["yes", "no"]
    assert list(t["B: attribution teacher above chance"]) == ["no", "yes"]
    assert "## Premises per candidate dataset" in report.results_readme("offline")
    # the premises other notebooks measure: where they ran on a dataset, its interval; else why not
    spec = config.PRESETS["offline"]["a"]["teacher"]
    acc = {"teacher": spec, "dataset": "x", "n": 80, "acc": 0.5, "ci_lo": 0.39, "ci_hi": 0.61, "chance": 0.25}
    pd.DataFrame([acc]).to_csv(tmp_path / "10_teacher_accuracy.csv", index=False)
    e = report.premise_evidence("offline").set_index("dataset")
    cot = e["LM teacher's chain of thought above chance (10)"]
    assert cot["x"] == "yes (50 % [39, 61] of 80 pool questions, chance 25 % (10))"
    assert cot["y"].startswith("not measured (notebook 10 does not ask")
    assert e.loc["y", "students learn (05)"] == "not measured (notebook 05 not run)"
    assert "LM teacher's chain of thought" in report.results_readme("offline")
    assert "learns it" not in report.premise_line("offline")  # notebook 05 not run: the line says nothing
    rng = np.random.default_rng(4)
    gold = {
        ("x", lab, s): _binary(rng, p, 200) for s in range(3) for lab, p in (("gold", 0.7), ("shuffled", 0.3))
    }
    runs = _runs(gold).assign(student="lm", recipe="r", labels=lambda d: d.method, trained=True)
    report.save_runs(runs.drop(columns="method"), tmp_path / "05_recipe_runs.csv")
    chosen = pd.DataFrame([{"student": "lm", "dataset": "x", "recipe": "r", "verdict": "learns"}])
    chosen.to_csv(tmp_path / "05_recipe_chosen.csv", index=False)
    line = report.premise_line("offline")
    assert (
        "the LM student learns it (notebook 05: gold beats shuffled labels on test) on x of the 1 it" in line
    )
    # notebook 05's verdict rules, whatever the difference (e.g. students below their pretrained dev)
    chosen.assign(recipe="-", verdict="no").to_csv(tmp_path / "05_recipe_chosen.csv", index=False)
    assert "on no dataset of the 1 it trained on" in report.premise_line("offline")


def test_a_run_is_trained_where_it_beats_its_shuffled_control_on_dev():
    rng = np.random.default_rng(3)
    spec = {("a", m, s): _binary(rng, 0.5, 40) for s in range(3) for m in ("plain", "two_stage", "shuffled")}
    # every run beats its pretrained dev accuracy (0.2); only seed 0's plain and two-stage beat the control
    dev = {"plain": [0.5, 0.3, 0.3], "two_stage": [0.5, 0.4, 0.2], "shuffled": [0.4, 0.4, 0.4]}
    runs = _runs(spec).assign(trained=True, zero_shot_dev=0.2)
    runs["best_dev"] = [dev[m][s] for m, s in zip(runs.method, runs.seed)]
    judged = report.against_control(runs).set_index(["method", "seed"]).trained
    assert list(judged["plain"]) == [True, False, False] and list(judged["shuffled"]) == [True] * 3
    row = report.table_a_main(runs).query("dataset == 'a' and method == 'two_stage'").iloc[0]
    assert row.trained_seeds == 1 and row.verdict == stats.NOT_TESTED  # a tie (seed 1) is not a win
    alone = runs[runs.method != "shuffled"]  # no control ran: the recorded flag stands
    assert (
        report.against_control(alone).trained.all() and report.table_a_main(alone).trained_seeds.iloc[0] == 3
    )


def test_bf16_training_is_allowed_only_where_bf16_students_score_as_fp32_ones_and_beat_the_control(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path)
    assert report.bf16_training_learns("offline")[0] is None  # the check did not run
    rng = np.random.default_rng(3)

    def check(fp32: dict, bf16: dict, changed: float = 0.1) -> bool:
        """Accuracy per label under each training; a bf16 run is its fp32 twin with `changed` of its answers
        redrawn at the bf16 accuracy (a precision changes a few answers, not the run)."""
        spec = {}
        for s in range(3):
            for lab in ("gold", "shuffled"):
                a = _binary(rng, fp32[lab], 300)
                b = [int(rng.random() < bf16[lab]) if rng.random() < changed else c for c in a]
                spec[("commonsense_qa", f"{lab}|fp32", s)], spec[("commonsense_qa", f"{lab}|bf16", s)] = a, b
        runs = _runs(spec)
        runs[["labels", "training"]] = runs.method.str.split("|", expand=True)
        report.save_runs(runs.drop(columns="method").assign(recipe="r"), tmp_path / "05_bf16_runs.csv")
        return report.bf16_training_learns("offline")[0]

    learned = {"gold": 0.6, "shuffled": 0.3}
    assert check(learned, learned) is True  # bf16 learns as fp32 does
    assert (
        check(learned, {"gold": 0.3, "shuffled": 0.3}, changed=1.0) is False
    )  # bf16 loses what fp32 learned
    same = {"gold": 0.4, "shuffled": 0.4}
    assert check(same, same) is False  # bf16 scores as fp32, but neither beats the control
