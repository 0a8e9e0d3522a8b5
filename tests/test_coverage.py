"""The coverage simulation: the tables' interval holds 95 % where the normal quantile does not, the model's
truth is what it says, and the simulation measures the library's own interval."""

import numpy as np
import pytest

from lib import coverage as C
from lib import stats as S

# latent SDs near the ones fitted to 12_A_runs.csv (results/coverage.md), and with a seed SD that makes the
# seed term dominate
A_LIKE = C.Regime("A-like", 0.431, 0.439, 1.65, 0.24, 0.033)
LARGE_SEED = C.Regime("large seed", 0.431, 0.439, 1.67, 0.24, 0.20)
# 2000 experiments: Monte-Carlo SE of a 95 % coverage 0.005, so [0.93, 0.97] is +-4 SE around nominal
N_REPS = 2000


def _cov(table, stat, interval):
    return float(table[(table.statistic == stat) & (table.interval == interval)].coverage.iloc[0])


@pytest.fixture(scope="module")
def three_seeds():
    return {r.name: C.coverage(r, 3, 300, n_reps=N_REPS, seed=1) for r in (A_LIKE, LARGE_SEED)}


@pytest.mark.parametrize("regime", [A_LIKE.name, LARGE_SEED.name])
def test_the_tables_interval_holds_95_percent_with_3_seeds(three_seeds, regime):
    t = three_seeds[regime]
    for stat in ("diff", "rel"):
        assert 0.93 <= _cov(t, stat, "t") <= 0.97, (regime, stat, _cov(t, stat, "t"))


@pytest.mark.parametrize("regime", [A_LIKE.name, LARGE_SEED.name])
def test_the_check_fails_the_same_se_with_the_normal_quantile(three_seeds, regime):
    # the same standard error, a normal quantile: 3 seeds leave the seed term 2 df, so it under-covers
    t = three_seeds[regime]
    assert _cov(t, "diff", "normal") < 0.93 and _cov(t, "rel", "normal") < 0.93


def test_each_arm_has_the_stated_accuracy_and_the_truth_follows():
    m, b = C.simulate(A_LIKE, 200, 5, 300, np.random.default_rng(0))
    assert m.mean() == pytest.approx(0.439, abs=0.01) and b.mean() == pytest.approx(0.431, abs=0.01)
    assert A_LIKE.truth("diff") == pytest.approx(0.8) and A_LIKE.truth("rel") == pytest.approx(100 * 8 / 431)


def test_calibration_recovers_the_latent_sds_from_their_components():
    c = C.expected_components(LARGE_SEED)
    targets = dict(zip(["question_base", "question_diff", "seed_diff"], c))
    fit = C.calibrate("fit", {"acc_base": 0.431, "acc_method": 0.439, **targets})
    want = (LARGE_SEED.sd_question, LARGE_SEED.sd_effect, LARGE_SEED.sd_seed)
    assert (fit.sd_question, fit.sd_effect, fit.sd_seed) == pytest.approx(want, rel=0.02)


def test_the_simulation_measures_the_librarys_interval_and_average():
    rng = np.random.default_rng(3)
    (m1, b1), (m2, b2) = (C.simulate(r, 1, 3, 50, rng) for r in (A_LIKE, LARGE_SEED))
    for stat in ("diff", "rel"):
        one = S.paired_interval(m1[0], b1[0], stat)
        assert C.half_widths(C._z(stat, m1, b1)[1])["t"][0] == pytest.approx(one.hi - one.point)
    # the average's half-width as average_coverage computes it, against lib.stats.average_intervals
    ivs = [S.paired_interval(m[0], b[0], "diff") for m, b in ((m1, b1), (m2, b2))]
    avg = S.average_intervals(ivs)
    var = np.concatenate([S.interval_terms(100 * (m - b))[0] for m, b in ((m1, b1), (m2, b2))], -1) / 4
    _, dfs, groups = S.interval_terms(np.zeros((3, 50)))
    assert S.half_width(var, dfs * 2, groups * 2)[0] == pytest.approx(avg.hi - avg.point)


def test_the_command_writes_its_table_and_report(tmp_path):
    args = ["--reps", "200", "--boot-reps", "3", "--n-boot", "50", "--seeds", "3", "--out", str(tmp_path)]
    assert C.main(args) == 0
    md = (tmp_path / "coverage.md").read_text()
    assert "| regime" in md and "numpy seed 0" in md and "200 simulated experiments" in md
    csv = (tmp_path / "coverage.csv").read_text().splitlines()
    assert csv[0].startswith("regime,seeds,questions,statistic,interval,replicates,coverage")
