"""Statistics on constructed tables: variance components and intervals against hand computation, the
crossed bootstrap against hand resampling, published interval values, every verdict word, MDE against known
standard errors."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from lib import stats as S

# seeds x questions; method 9/12 correct, baseline 6/12: +50 % relative, +25 points
M = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]], float)
B = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 0, 1]], float)
# row means 3, 5, 1 (grand mean 3), column means 1, 3, 3, 5; residuals by hand:
# [0, -1, 0, 1], [0, -2, 0, 2], [0, 3, 0, -3] -> residual sum of squares 28 over (3 - 1)(4 - 1) = 6
Z = np.array([[1, 2, 3, 6], [3, 3, 5, 9], [-1, 4, 1, 0]], float)
T2, T3 = 4.302653, 3.182446  # t quantiles 0.975 at 2 and 3 df


def hand_quantiles(v, level=0.95):
    """Percentile bounds with linear interpolation between order statistics, written out."""
    v, out = sorted(v), []
    for a in ((1 - level) / 2, (1 + level) / 2):
        pos = a * (len(v) - 1)
        i = int(pos)
        out.append(v[i] + (pos - i) * (v[min(i + 1, len(v) - 1)] - v[i]))
    return out


def _runs(spec, trained=None):
    """spec: {(dataset, method, seed): list of 0/1} -> runs; trained: {(dataset, method, seed): bool}."""
    return pd.DataFrame(
        [
            {
                "dataset": d,
                "method": m,
                "seed": s,
                "correct": c,
                "trained": (trained or {}).get((d, m, s), True),
            }
            for (d, m, s), c in spec.items()
        ]
    )


# ---------------------------------------------------------------- variance components and the interval


def test_variance_components_equal_hand_computation():
    # MS_seed = 4 (3 - 3)^2 + (5 - 3)^2 + (1 - 3)^2) / 2 = 16; MS_question = 3 (4 + 0 + 0 + 4) / 3 = 8;
    # MS_residual = 28 / 6
    assert S.mean_squares(Z) == pytest.approx((16.0, 8.0, 28 / 6))
    v = S.variance_components(Z)
    # seed = (16 - 14/3) / 4, question = (8 - 14/3) / 3, resid = 14/3
    assert (v["seed"], v["question"], v["resid"]) == pytest.approx((17 / 6, 10 / 9, 14 / 3))
    assert S.variance_components(Z, np.zeros_like(Z)) == v
    assert S.two_level_se(Z) == pytest.approx(np.sqrt(17 / 6 / 3 + 10 / 9 / 4 + 14 / 3 / 12))
    # negative components are clipped: rows 3, 4, 2 give MS_seed 4 < MS_residual
    flat = Z - np.array([[0], [1], [-1]]) * np.array([[1, 1, 1, 1]])
    flat[1] -= 1
    assert S.variance_components(flat)["seed"] == 0.0


def test_interval_terms_and_bounds_equal_hand_computation():
    var, dfs, groups = S.interval_terms(Z)
    # seed means 3, 5, 1: var 4 / 3 seeds; question term (8 - 14/3) / 12
    assert var == pytest.approx([4 / 3, 5 / 18]) and dfs == (2, 3) and groups == ("seed means", "question")
    h = np.sqrt(T2**2 * 4 / 3 + T3**2 * 5 / 18)
    assert S.half_width(var, dfs, groups) == pytest.approx(h, rel=1e-6)
    iv = S.paired_interval(Z / 100, np.zeros_like(Z), "diff")  # diff is in points: 100 x the fractions
    assert (iv.point, iv.lo, iv.hi, iv.se) == pytest.approx((3.0, 3 - h, 3 + h, np.sqrt(29 / 18)), rel=1e-6)
    assert st.t.ppf(0.975, iv.df) * iv.se == pytest.approx(h)  # the effective df
    assert 2 < iv.df < 3


def test_paired_interval_on_binary_runs_by_hand():
    rng = np.random.default_rng(5)
    p_m, p_b = rng.random(40), rng.random(40)  # questions differ in how much the method helps
    m, b = (rng.random((3, 40)) < p_m).astype(float), (rng.random((3, 40)) < p_b).astype(float)
    d = 100 * (m - b)
    seed_means, question_means = d.mean(1), d.mean(0)
    resid = d - seed_means[:, None] - question_means[None, :] + d.mean()
    ms_q, ms_e = 3 * np.var(question_means, ddof=1), (resid**2).sum() / (2 * 39)
    v_seed, v_question = np.var(seed_means, ddof=1) / 3, (ms_q - ms_e) / 120
    assert v_seed > 0 and v_question > 0  # both terms at work
    h = np.sqrt(T2**2 * v_seed + st.t.ppf(0.975, 39) ** 2 * v_question)
    iv = S.paired_interval(m, b, "diff")
    assert (iv.point, iv.lo, iv.hi, iv.se) == pytest.approx(
        (d.mean(), d.mean() - h, d.mean() + h, np.sqrt(v_seed + v_question))
    )
    assert "seed means (t, 2 df) and question term (t, 39 df)" in iv.kind


def test_point_estimates_on_the_full_table():
    assert S.paired_interval(M, B, "rel").point == 50.0
    assert S.paired_interval(M, B, "diff").point == 25.0
    assert S.paired_interval(M, B, "acc").point == 0.75
    assert S.paired_interval(M, B, "base").point == S.accuracy_interval(B).point == 0.5


def test_relative_change_by_the_delta_method():
    rng = np.random.default_rng(1)
    m, b = (rng.random((4, 200)) < 0.6).astype(float), (rng.random((4, 200)) < 0.5).astype(float)
    r = m.mean() / b.mean()
    iv = S.paired_interval(m, b, "rel")
    want = S.paired_interval(100 * (m - r * b) / b.mean(), np.zeros_like(m), "diff")  # the linearisation
    assert iv.point == pytest.approx(100 * (r - 1))
    assert (iv.hi - iv.point, iv.se) == pytest.approx(((want.hi - want.point) / 100, want.se / 100))
    # to first order the relative SE is the difference's over the baseline accuracy
    d = S.paired_interval(m, b, "diff")
    assert iv.se == pytest.approx(d.se / b.mean(), rel=0.25)


def test_one_seed_is_the_t_interval_over_questions():
    rng = np.random.default_rng(11)
    m, b = (rng.random(40) < 0.6).astype(float), (rng.random(40) < 0.4).astype(float)
    d = 100 * (m - b)
    iv = S.paired_interval(m, b, "diff")
    h = st.t.ppf(0.975, 39) * d.std(ddof=1) / np.sqrt(40)
    assert (iv.lo, iv.hi, iv.df) == pytest.approx((d.mean() - h, d.mean() + h, 39))
    assert "one seed" in iv.kind and iv == S.paired_interval(m[None], b[None], "diff")


def test_accuracy_interval_stays_in_0_1():
    iv = S.accuracy_interval([1] * 19 + [0])
    assert iv.hi == 1.0 and 0.8 < iv.lo < 0.95


def test_identical_methods_give_zero_and_a_change_over_a_zero_baseline_is_undefined():
    x = np.zeros((2, 10))
    x[0, 3] = 1
    for stat in ("rel", "diff"):
        r = S.paired_interval(x, x, stat)
        assert (r.point, r.lo, r.hi) == (0.0, 0.0, 0.0)
    zero, some = np.zeros((1, 20)), np.zeros((1, 20))
    some[0, :5] = 1
    r = S.paired_interval(some, zero, "rel")
    assert np.isnan(r.point) and np.isnan(r.lo) and S.verdict(r.lo, r.hi) == "undefined"
    assert S.paired_interval(zero, zero, "rel").point == 0.0
    assert S.paired_interval(some, zero, "diff").point == 25.0


def test_average_pools_the_datasets_terms_by_group():
    a = S.paired_interval(Z / 100, np.zeros_like(Z), "diff")
    b = S.paired_interval(M, B, "diff")
    avg = S.average_intervals([a, b])
    assert avg.point == pytest.approx((3.0 + 25.0) / 2)
    # seed means: 4/3 and 0 (the seeds of M - B agree), each / 4, Welch-Satterthwaite df of their sum;
    # question terms: 5/18 and b's, each / 4
    (vb_s, _, _), (vb_q, _, _) = b.terms
    v_s, v_q = (4 / 3 + vb_s) / 4, (5 / 18 + vb_q) / 4
    df_s = v_s**2 / ((4 / 3 / 4) ** 2 / 2 + (vb_s / 4) ** 2 / 2)
    df_q = v_q**2 / ((5 / 18 / 4) ** 2 / 3 + (vb_q / 4) ** 2 / 3)
    h = np.sqrt(st.t.ppf(0.975, df_s) ** 2 * v_s + st.t.ppf(0.975, df_q) ** 2 * v_q)
    assert (avg.lo, avg.hi, avg.se) == pytest.approx((avg.point - h, avg.point + h, np.sqrt(v_s + v_q)))
    one = S.average_intervals([b])
    assert (one.point, one.lo, one.hi) == pytest.approx((b.point, b.lo, b.hi)) and "1 datasets" in one.kind


# ---------------------------------------------------------------- crossed bootstrap (labelled alternative)


def test_crossed_bootstrap_replicates_equal_hand_resampling_seeds_then_questions():
    n_boot = 7
    got = S.paired_bootstrap(M, B, "rel", n_boot=n_boot, rng=np.random.default_rng(3))
    g = np.random.default_rng(3)
    s_idx = g.integers(0, 3, size=(n_boot, 3))  # seeds first, all replicates at once
    q_idx = g.integers(0, 4, size=(n_boot, 4))  # then one question draw per replicate, for both methods
    want = []
    for s, q in zip(s_idx, q_idx):
        m = sum(M[i, j] for i in s for j in q) / 12
        b = sum(B[i, j] for i in s for j in q) / 12
        want.append(0.0 if m == b else 100 * (m - b) / b)
    assert got.samples == pytest.approx(want)
    assert [got.lo, got.hi] == pytest.approx(hand_quantiles(want))
    assert got.kind.startswith("95 % crossed bootstrap") and got.se == pytest.approx(np.std(want, ddof=1))


# ---------------------------------------------------------------- verdicts


def test_every_verdict_word_on_constructed_intervals_with_inclusive_bounds():
    P = 20.79
    cases = {
        (5, 30, P): "consistent with the paper",
        (P, 30, P): "consistent with the paper",  # lower bound on the paper value: contained
        (5, 15, P): "smaller than the paper's",
        (25, 40, P): "larger than the paper's",
        (-5, 15, P): "no gain detected",
        (-5, 0, P): "no gain detected",  # upper bound on 0: contained
        (0, P, P): "inconclusive",
        (-20, -3, P): "opposite",
        (2, 9, None): "gain",
        (0, 9, None): "no difference detected",
        (-9, -2, None): "loss",
        (2, 9, float("nan")): "gain",  # a nan paper value (a table column) means no paper number
    }
    seen = set()
    for (lo, hi, paper), word in cases.items():
        assert S.verdict(lo, hi, paper) == word, (lo, hi, paper)
        seen.add(word)
    assert S.verdict(5, 30, P, trained=False) == "not tested"
    assert S.verdict(float("nan"), float("nan"), P, trained=False) == "not tested"
    assert S.verdict(float("nan"), 3.0, P) == "undefined"
    seen |= {"not tested", "undefined"}
    assert seen == set(S.VERDICTS) and len(S.VERDICTS) == len(set(S.VERDICTS))


def test_verdict_with_a_null_other_than_zero_and_a_claimed_decrease():
    # a share claimed at 68 % against a chance level of 25 %
    words = [
        S.verdict(lo, hi, paper=68, null=25)
        for lo, hi in [(60, 70), (30, 60), (70, 80), (20, 30), (20, 70), (10, 20)]
    ]
    assert words == [
        "consistent with the paper",
        "smaller than the paper's",
        "larger than the paper's",
        "no gain detected",
        "inconclusive",
        "opposite",
    ]
    assert S.verdict(26, 30, null=25) == "gain" and S.verdict(20, 25, null=25) == "no difference detected"
    # a claimed decrease of 10: smaller / larger refer to the size of the decrease
    assert [S.verdict(lo, hi, paper=-10) for lo, hi in [(-5, -2), (-20, -15), (2, 5)]] == [
        "smaller than the paper's",
        "larger than the paper's",
        "opposite",
    ]
    with pytest.raises(ValueError):
        S.verdict(1, 2, paper=0)
    with pytest.raises(ValueError):
        S.verdict(3, 2)


# ---------------------------------------------------------------- single proportions


def test_exact_intervals_at_the_edges():
    assert S.clopper_pearson(0, 30)[0] == 0.0 and S.clopper_pearson(30, 30)[1] == 1.0
    assert S.wilson(0, 30)[0] == 0.0 and S.wilson(30, 30)[1] == 1.0
    assert S.clopper_pearson(50, 50)[0] == pytest.approx(0.9289, abs=5e-5)
    assert S.clopper_pearson(50, 50)[0] == pytest.approx(0.025 ** (1 / 50))  # (alpha/2)^(1/n) at n/n
    assert S.clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** (1 / 10))
    z2 = 1.959964**2
    assert S.wilson(0, 10)[1] == pytest.approx(z2 / (10 + z2), abs=1e-6)
    assert np.isnan(S.wilson(0, 0)[0]) and np.isnan(S.clopper_pearson(0, 0)[1])


@pytest.mark.parametrize(
    "k,n,wilson,exact",
    [  # Newcombe (1998), Statistics in Medicine 17, Table I
        (81, 263, (0.2553, 0.3662), (0.2527, 0.3676)),
        (15, 148, (0.0624, 0.1605), (0.0578, 0.1617)),
        (0, 20, (0.0, 0.1611), (0.0, 0.1684)),
        (1, 29, (0.0061, 0.1718), (0.0009, 0.1776)),
    ],
)
def test_proportion_intervals_match_published_values(k, n, wilson, exact):
    assert S.wilson(k, n) == pytest.approx(wilson, abs=6e-5)
    assert S.clopper_pearson(k, n) == pytest.approx(exact, abs=6e-5)
    lo, hi = S.wilson(np.array([k, k]), np.array([n, n]))
    assert lo == pytest.approx([wilson[0]] * 2, abs=6e-5) and hi == pytest.approx([wilson[1]] * 2, abs=6e-5)


# ---------------------------------------------------------------- minimum detectable effects


def test_mde_constants():
    assert S.mde(1.0) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert S.mde(1.0, df=np.inf) == pytest.approx(S.Z_MDE)
    assert S.mde(1.0, df=2) == pytest.approx(T2 + 1.060660, abs=1e-5)
    assert S.mde_proportion(0.5, 100) == pytest.approx(2.801585 * 0.05, abs=1e-5)
    assert S.mde(1.0, alpha=0.05, power=0.5) == pytest.approx(1.959964, abs=1e-5)


def test_mde_of_one_seed_equals_2_80_times_a_known_standard_error():
    rng = np.random.default_rng(2)
    q = 4000
    m, b = (rng.random(q) < 0.6).astype(float), (rng.random(q) < 0.5).astype(float)
    se_pts = 100 * np.sqrt((0.6 * 0.4 + 0.5 * 0.5) / q)  # independent questions, one seed
    d = S.paired_interval(m, b, "diff")
    assert S.mde(d.se, d.df) == pytest.approx(2.8016 * se_pts, rel=0.05)
    assert S.mde(100 * S.two_level_se(m, b)) == pytest.approx(2.8016 * se_pts, rel=0.05)


def test_two_level_se_is_unbiased_for_crossed_seed_and_question_effects():
    rng = np.random.default_rng(4)
    n_s, n_q, sa, sb, se = 5, 200, 0.05, 0.2, 0.4
    true_var = sa**2 / n_s + sb**2 / n_q + se**2 / (n_s * n_q)
    draws = [
        sa * rng.normal(size=(n_s, 1)) + sb * rng.normal(size=(1, n_q)) + se * rng.normal(size=(n_s, n_q))
        for _ in range(300)
    ]
    assert np.mean([S.two_level_se(z) ** 2 for z in draws]) == pytest.approx(true_var, rel=0.1)
    # the interval's SE estimates the same variance (its question term is clipped at 0, hence >=)
    assert np.mean([S.paired_interval(z, 0 * z, "diff").se ** 2 for z in draws]) / 1e4 == pytest.approx(
        true_var, rel=0.1
    )


def test_mde_shrinks_as_one_over_root_n_questions():
    rng = np.random.default_rng(8)
    mdes = []
    for q in (400, 1600):
        m, b = (rng.random(q) < 0.7).astype(float), (rng.random(q) < 0.6).astype(float)
        d = S.paired_interval(m, b, "diff")
        mdes.append(S.mde(d.se, d.df))
    assert mdes[0] / mdes[1] == pytest.approx(2.0, rel=0.15)
    m, b = (rng.random((1, 300)) < 0.7).astype(float), (rng.random((1, 300)) < 0.6).astype(float)
    assert S.two_level_se(m, b, n_questions=1200) == pytest.approx(S.two_level_se(m, b) / 2)


# ---------------------------------------------------------------- comparison table


def _two_datasets(n_seeds=3, q=60, trained=None):
    rng = np.random.default_rng(9)
    spec = {}
    for d, p in (("a", 0.7), ("b", 0.6)):
        for s in range(n_seeds):
            spec[(d, "plain", s)] = list((rng.random(q) < 0.5).astype(int))
            spec[(d, "two", s)] = list((rng.random(q) < p).astype(int))
    return _runs(spec, trained)


def test_table_rows_are_the_documented_intervals_and_the_average_their_pooled_mean():
    runs = _two_datasets()
    t = S.compare_table(runs, "plain", paper={("average", "two"): 20.79})
    assert list(zip(t.dataset, t.method)) == [("a", "two"), ("b", "two"), ("average", "two")]
    per = []
    for d in ("a", "b"):
        x = np.stack(runs[(runs.dataset == d) & (runs.method == "two")].correct.map(np.array))
        b = np.stack(runs[(runs.dataset == d) & (runs.method == "plain")].correct.map(np.array))
        per.append(S.paired_interval(x, b, "rel"))
        row, diff = t[t.dataset == d].iloc[0], S.paired_interval(x, b, "diff")
        assert (row["rel_%"], row.rel_lo, row.rel_hi) == pytest.approx(
            (per[-1].point, per[-1].lo, per[-1].hi)
        )
        assert (row.diff_lo, row.diff_hi, row.diff_df) == pytest.approx((diff.lo, diff.hi, diff.df))
        assert row.mde_pts == pytest.approx(S.mde(diff.se, diff.df))
        assert row["mde_rel_%"] == pytest.approx(S.mde(per[-1].se, per[-1].df))
        assert row.acc_mean == pytest.approx(x.mean()) and row.base_acc == pytest.approx(b.mean())
        assert row.seeds == 3 and row.n_test == 60 and np.isnan(row["paper_%"])
    avg, want = t[t.dataset == "average"].iloc[0], S.average_intervals(per)
    assert (avg["rel_%"], avg.rel_lo, avg.rel_hi) == pytest.approx((want.point, want.lo, want.hi))
    assert avg["paper_%"] == 20.79 and avg.n_test == 120
    assert avg.verdict == S.verdict(want.lo, want.hi, 20.79) and avg.verdict in S.PAPER_VERDICTS
    assert "2 datasets" in avg.interval and "crossed-components t interval" in t.interval[0]
    alone = S.compare_table(runs[runs.dataset == "b"], "plain")
    assert alone.rel_lo[0] == t.rel_lo[1]  # a row does not depend on the table's other rows
    note = S.table_note(t)
    assert "crossed-components t interval" in note and "80 % power" in note and "\n" not in note
    assert "delta-method" in note and "Welch-Satterthwaite" in note and "bootstrap" not in note


def test_table_says_not_tested_when_most_seeds_did_not_train():
    two_of_three = {("a", "two", 2): False}
    one_of_three = {("a", "two", 1): False, ("a", "plain", 2): False}
    t = S.compare_table(_two_datasets(trained=two_of_three), "plain")
    assert t.trained_seeds[0] == 2 and t.verdict[0] != "not tested" and t.verdict[2] != "not tested"
    strict = S.compare_table(_two_datasets(trained=two_of_three), "plain", trained_rule="all")
    assert list(strict.verdict) == ["not tested", strict.verdict[1], "not tested"]
    assert strict.verdict[1] != "not tested"
    t = S.compare_table(_two_datasets(trained=one_of_three), "plain")
    assert t.trained_seeds[0] == 1 and t.verdict[0] == "not tested"
    assert t.verdict[2] == "not tested"  # the average mixes in an untested dataset


def test_table_reads_encoded_correctness_and_rejects_unpaired_runs():
    runs = _two_datasets(n_seeds=2)
    enc = runs.assign(correct=runs.correct.map(S.encode_correct)).drop(columns="trained")
    assert isinstance(enc.correct[0], str) and set(enc.correct[0]) <= {"0", "1"}
    pd.testing.assert_frame_equal(S.compare_table(enc, "plain"), S.compare_table(runs, "plain"))
    assert S.as_correct("[1, 0, 1]").tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="pair"):
        S.compare_table(runs.drop(index=runs.index[-1]), "plain")
    with pytest.raises(ValueError, match="baseline"):
        S.compare_table(runs, "nope")


def test_planned_mde_is_the_intervals_mde_at_the_runs_own_design_and_shrinks_with_seeds():
    """Seeds for a target MDE come from planned_mde: at the data's own design it equals the MDE the tables
    report for the difference (seed component not clipped), and it falls as seeds are added."""
    rng = np.random.default_rng(3)
    seed_shift = rng.normal(0, 0.08, size=(4, 1))
    q = rng.normal(0, 1, size=(1, 200))
    base = (rng.random((4, 200)) < 0.45 + 0.1 * np.tanh(q)).astype(float)
    method = (rng.random((4, 200)) < 0.5 + 0.1 * np.tanh(q) + seed_shift).astype(float)
    assert S.variance_components(method, base)["seed"] > 0
    iv = S.paired_interval(method, base, "diff")
    assert S.planned_mde(method, base, 4, 200) == pytest.approx(S.mde(iv.se, iv.df), rel=1e-6)
    assert S.planned_mde(method, base, 16, 200) < S.planned_mde(method, base, 4, 200)
