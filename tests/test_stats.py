"""Statistics on constructed tables: bootstrap replicates against hand resampling, published interval values,
every verdict word, MDE against known standard errors."""

import zlib

import numpy as np
import pandas as pd
import pytest

from lib import stats as S

# seeds x questions; method 9/12 correct, baseline 6/12: +50 % relative, +25 points
M = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]], float)
B = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 0, 1]], float)


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


def test_point_estimates_on_the_full_table():
    assert S.paired_bootstrap(M, B, "rel", n_boot=10, rng=0).point == 50.0
    assert S.paired_bootstrap(M, B, "diff", n_boot=10, rng=0).point == 25.0
    assert S.paired_bootstrap(M, B, "acc", n_boot=10, rng=0).point == 0.75
    assert S.accuracy_bootstrap(B, n_boot=10, rng=0).point == 0.5


def test_two_level_replicates_equal_hand_resampling_seeds_then_questions():
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
    assert got.kind == "95 % two-level paired bootstrap (seeds, then questions), 7 resamples"
    acc = S.accuracy_bootstrap(M, n_boot=n_boot, rng=np.random.default_rng(3))
    hand = [sum(M[i, j] for i in s for j in q) / 12 for s, q in zip(s_idx, q_idx)]
    assert acc.samples == pytest.approx(hand)


def test_one_seed_resamples_questions_only():
    rng = np.random.default_rng(11)
    m, b = (rng.random(40) < 0.6).astype(float), (rng.random(40) < 0.4).astype(float)
    got = S.paired_bootstrap(m, b, "diff", n_boot=50, rng=np.random.default_rng(5))
    idx = np.random.default_rng(5).integers(0, 40, size=(50, 40))  # a question-only paired bootstrap
    assert got.samples == pytest.approx(100 * (m[idx].mean(1) - b[idx].mean(1)))
    assert "one seed" in got.kind and "two-level" not in got.kind
    two_d = S.paired_bootstrap(m[None], b[None], "diff", n_boot=50, rng=np.random.default_rng(5))
    assert two_d.samples == pytest.approx(got.samples)


def test_identical_methods_give_zero_even_where_replicates_have_no_correct_answer():
    x = np.zeros((2, 10))
    x[0, 3] = 1  # one correct answer: many replicates draw none, a 0/0 relative change
    for stat in ("rel", "diff"):
        r = S.paired_bootstrap(x, x, stat, n_boot=500, rng=1)
        assert (r.point, r.lo, r.hi, r.n_undefined) == (0.0, 0.0, 0.0, 0)


def test_relative_change_is_undefined_away_from_a_zero_baseline():
    base, method = np.zeros((1, 20)), np.zeros((1, 20))
    method[0, :5] = 1
    r = S.paired_bootstrap(method, base, "rel", n_boot=100, rng=0)
    assert np.isnan(r.point) and np.isnan(r.lo) and r.n_undefined == 100
    assert S.verdict(r.lo, r.hi) == "undefined"
    d = S.paired_bootstrap(method, base, "diff", n_boot=100, rng=0)
    assert d.point == 25.0 and d.lo >= 0


def test_average_over_datasets_is_the_mean_of_per_dataset_replicates():
    a = ([[1, 0, 0, 0] * 5], [[1, 1, 0, 0] * 5])  # 0.25 -> 0.50: +100 %
    b = ([[1, 1, 1, 1, 0] * 4], [[1, 1, 1, 0, 0] * 4])  # 0.80 -> 0.60: -25 %
    g = np.random.default_rng(0)
    per = [S.paired_bootstrap(m, base, "rel", n_boot=200, rng=g) for base, m in (a, b)]
    avg = S.average_intervals(per)
    assert avg.point == pytest.approx(37.5)
    assert avg.samples == pytest.approx([(x + y) / 2 for x, y in zip(per[0].samples, per[1].samples)])
    assert [avg.lo, avg.hi] == pytest.approx(hand_quantiles(avg.samples))
    assert not np.array_equal(per[0].samples, per[1].samples) and "2 datasets" in avg.kind


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
    assert S.mde_proportion(0.5, 100) == pytest.approx(2.801585 * 0.05, abs=1e-5)
    assert S.mde(1.0, alpha=0.05, power=0.5) == pytest.approx(1.959964, abs=1e-5)


def test_bootstrap_mde_equals_2_80_times_a_known_standard_error():
    rng = np.random.default_rng(2)
    q = 4000
    m, b = (rng.random(q) < 0.6).astype(float), (rng.random(q) < 0.5).astype(float)
    se_pts = 100 * np.sqrt((0.6 * 0.4 + 0.5 * 0.5) / q)  # independent questions, one seed
    d = S.paired_bootstrap(m, b, "diff", n_boot=2000, rng=rng)
    assert S.mde(d.se) == pytest.approx(2.8016 * se_pts, rel=0.08)
    assert S.mde(100 * S.two_level_se(m, b)) == pytest.approx(2.8016 * se_pts, rel=0.08)


def test_two_level_se_is_unbiased_for_crossed_seed_and_question_effects():
    rng = np.random.default_rng(4)
    n_s, n_q, sa, sb, se = 5, 200, 0.05, 0.2, 0.4
    true_var = sa**2 / n_s + sb**2 / n_q + se**2 / (n_s * n_q)
    est = [
        S.two_level_se(
            sa * rng.normal(size=(n_s, 1)) + sb * rng.normal(size=(1, n_q)) + se * rng.normal(size=(n_s, n_q))
        )
        ** 2
        for _ in range(300)
    ]
    assert np.mean(est) == pytest.approx(true_var, rel=0.1)


def test_two_level_bootstrap_is_conservative_by_at_most_about_3x_in_variance():
    rng = np.random.default_rng(6)
    m, b = (rng.random((5, 300)) < 0.6).astype(float), (rng.random((5, 300)) < 0.5).astype(float)
    true_se = 100 * np.sqrt((0.24 + 0.25) / 1500)  # every (seed, question) independent
    ratio = S.paired_bootstrap(m, b, "diff", n_boot=2000, rng=rng).se / true_se
    assert 1.0 < ratio < np.sqrt(3) * 1.1


def test_mde_shrinks_as_one_over_root_n_questions():
    rng = np.random.default_rng(8)
    mdes = []
    for q in (400, 1600):
        m, b = (rng.random(q) < 0.7).astype(float), (rng.random(q) < 0.6).astype(float)
        mdes.append(S.mde(S.paired_bootstrap(m, b, "diff", n_boot=2000, rng=rng).se))
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


def test_table_rows_are_the_documented_paired_bootstraps_and_the_average_their_mean():
    runs = _two_datasets()
    t = S.compare_table(runs, "plain", paper={("average", "two"): 20.79}, n_boot=300, seed=5)
    assert list(zip(t.dataset, t.method)) == [("a", "two"), ("b", "two"), ("average", "two")]
    per = []
    for d in ("a", "b"):
        x = np.stack(runs[(runs.dataset == d) & (runs.method == "two")].correct.map(np.array))
        b = np.stack(runs[(runs.dataset == d) & (runs.method == "plain")].correct.map(np.array))
        rng = np.random.default_rng([5, zlib.crc32(d.encode()), zlib.crc32(b"two")])
        per.append(S.paired_bootstrap(x, b, "rel", n_boot=300, rng=rng))
        row = t[t.dataset == d].iloc[0]
        want = (per[-1].point, per[-1].lo, per[-1].hi)
        assert (row["rel_%"], row.rel_lo, row.rel_hi) == pytest.approx(want)
        assert row.acc_mean == pytest.approx(x.mean()) and row.base_acc == pytest.approx(b.mean())
        assert row.diff_pts == pytest.approx(100 * (x.mean() - b.mean()))
        assert row.mde_pts > 0 and row.seeds == 3 and row.n_test == 60 and np.isnan(row["paper_%"])
    avg, want = t[t.dataset == "average"].iloc[0], S.average_intervals(per)
    assert (avg["rel_%"], avg.rel_lo, avg.rel_hi) == pytest.approx((want.point, want.lo, want.hi))
    assert avg["paper_%"] == 20.79 and avg.n_test == 120
    assert avg.verdict == S.verdict(want.lo, want.hi, 20.79) and avg.verdict in S.PAPER_VERDICTS
    assert "2 datasets" in avg.interval and "two-level paired bootstrap" in t.interval[0]
    again = S.compare_table(runs, "plain", paper={("average", "two"): 20.79}, n_boot=300, seed=5)
    pd.testing.assert_frame_equal(t, again)
    alone = S.compare_table(runs[runs.dataset == "b"], "plain", n_boot=300, seed=5)
    assert alone.rel_lo[0] == t.rel_lo[1]  # a row does not depend on the table's other rows
    note = S.table_note(t)
    assert "two-level paired bootstrap" in note and "80 % power" in note and "\n" not in note


def test_table_says_not_tested_when_most_seeds_did_not_train():
    two_of_three = {("a", "two", 2): False}
    one_of_three = {("a", "two", 1): False, ("a", "plain", 2): False}
    t = S.compare_table(_two_datasets(trained=two_of_three), "plain", n_boot=100)
    assert t.trained_seeds[0] == 2 and t.verdict[0] != "not tested" and t.verdict[2] != "not tested"
    strict = S.compare_table(_two_datasets(trained=two_of_three), "plain", n_boot=100, trained_rule="all")
    assert list(strict.verdict) == ["not tested", strict.verdict[1], "not tested"]
    assert strict.verdict[1] != "not tested"
    t = S.compare_table(_two_datasets(trained=one_of_three), "plain", n_boot=100)
    assert t.trained_seeds[0] == 1 and t.verdict[0] == "not tested"
    assert t.verdict[2] == "not tested"  # the average mixes in an untested dataset


def test_table_reads_encoded_correctness_and_rejects_unpaired_runs():
    runs = _two_datasets(n_seeds=2)
    enc = runs.assign(correct=runs.correct.map(S.encode_correct)).drop(columns="trained")
    assert isinstance(enc.correct[0], str) and set(enc.correct[0]) <= {"0", "1"}
    pd.testing.assert_frame_equal(
        S.compare_table(enc, "plain", n_boot=50), S.compare_table(runs, "plain", n_boot=50)
    )
    assert S.as_correct("[1, 0, 1]").tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="pair"):
        S.compare_table(runs.drop(index=runs.index[-1]), "plain", n_boot=50)
    with pytest.raises(ValueError, match="baseline"):
        S.compare_table(runs, "nope", n_boot=50)
