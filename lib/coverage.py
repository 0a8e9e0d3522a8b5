"""`make coverage`: how often the comparison intervals of lib.stats contain the truth, by simulation.

The model: binary outcomes of two arms (a method and its baseline) on S seeds x Q test questions, crossed
seed and question effects on the probit scale,

    correct[arm, s, q] ~ Bernoulli(Phi(mu_arm + sd_question z_q +- sd_effect w_q / 2 + sd_seed u_{arm, s}))

with z, w, u independent standard normals: z_q a question's difficulty, shared by both arms and every seed;
w_q the question x method interaction (the method helps some questions and hurts others; + for the
method, - for the baseline); u a training run's seed effect, one per arm and seed. A seed x question
interaction on the probit scale is Bernoulli noise in disguise (it integrates out into the same probit),
so it has no parameter of its own. With tau^2 = 1 + sd_question^2 + sd_effect^2 / 4 + sd_seed^2 and
mu_arm = Phi^-1(acc_arm) tau, each arm's accuracy over seeds and questions is exactly acc_arm: the true
difference is 100 (acc_method - acc_base) points and the true relative change 100 (acc_method / acc_base
- 1) %.

Calibration (`calibrate`): the three SDs are fitted so that the model's expected variance components
(accuracy scale, lib.stats.variance_components) of the baseline alone (its question component) and of the
paired difference (question and seed components) equal those of a committed runs CSV; the expectation is
taken on a fixed grid of 200 seeds x 3000 questions of probabilities (common random numbers, so the fit is
smooth).

Intervals compared, each on every replicate: the tables' crossed-components t interval
(`lib.stats.interval_terms`, `lib.stats.half_width`), the same SE with one t quantile at Satterthwaite's
df, the same SE with the normal quantile, the seed-level t interval (per-seed means, S - 1 df), and the
crossed bootstrap (`lib.stats.resample_means`, percentile interval). `python -m lib.coverage` writes
results/coverage.csv and results/coverage.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy import stats as st

from . import stats
from .common import ROOT

LEVEL = 0.95
INTERVALS = {  # name -> what it is, as results/coverage.md prints it
    "t": "crossed-components t (the tables'): seed means t(S-1), question term t(Q-1), in quadrature",
    "satterthwaite": "same SE, one t quantile at Satterthwaite's df",
    "normal": "same SE, normal quantile",
    "seed_t": "seed-level t: per-seed means, t(S-1)",
    "bootstrap": "crossed bootstrap (seeds, then one question draw for all seeds), percentile",
}
STATISTICS = ("diff", "rel", "acc")


@dataclass(frozen=True)
class Regime:
    """One simulated design's truth: each arm's accuracy and the latent (probit-scale) SDs of the module
    docstring."""

    name: str
    acc_base: float
    acc_method: float
    sd_question: float
    sd_effect: float
    sd_seed: float

    def tau(self) -> float:
        return float(np.sqrt(1 + self.sd_question**2 + self.sd_effect**2 / 4 + self.sd_seed**2))

    def truth(self, stat: str) -> float:
        """The population value of `stat` (diff in points, rel in %, acc as a fraction)."""
        return float(stats._statistic(self.acc_method, self.acc_base, stat))


# ---------------------------------------------------------------- the model


def probabilities(r: Regime, z, w, u_base, u_method) -> tuple[np.ndarray, np.ndarray]:
    """P(correct) of the baseline and the method for question effects z, w (..., 1, Q) and seed effects
    (..., S, 1)."""
    mu_b, mu_m = (st.norm.ppf(a) * r.tau() for a in (r.acc_base, r.acc_method))
    shared = r.sd_question * z
    p_b = special.ndtr(mu_b + shared - r.sd_effect / 2 * w + r.sd_seed * u_base)
    p_m = special.ndtr(mu_m + shared + r.sd_effect / 2 * w + r.sd_seed * u_method)
    return p_b, p_m


def simulate(r: Regime, n_reps: int, n_seeds: int, n_questions: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """n_reps independent experiments: (method, baseline) correctness, each (n_reps, S, Q) of 0/1."""
    q, s = (n_reps, 1, n_questions), (n_reps, n_seeds, 1)
    p_b, p_m = probabilities(
        r, rng.standard_normal(q), rng.standard_normal(q), rng.standard_normal(s), rng.standard_normal(s)
    )
    u = rng.random((2, *p_b.shape))
    return (u[0] < p_m).astype(float), (u[1] < p_b).astype(float)


def expected_components(r: Regime, n_seeds: int = 200, n_questions: int = 3000, seed: int = 1) -> np.ndarray:
    """The model's variance components on the accuracy scale, [question of the baseline, question of the
    difference, seed of the difference], from the probabilities on a fixed grid (a seed's mean over 3000
    questions and a question's mean over 200 seeds stand for their expectations)."""
    g = np.random.default_rng(seed)
    z, w = g.standard_normal((1, n_questions)), g.standard_normal((1, n_questions))
    p_b, p_m = probabilities(r, z, w, g.standard_normal((n_seeds, 1)), g.standard_normal((n_seeds, 1)))
    d = p_m - p_b
    return np.array([p_b.mean(0).var(), d.mean(0).var(), d.mean(1).var()])


def targets_from_runs(path: Path, method: str, baseline: str) -> dict:
    """What a committed runs CSV says about its design: accuracies and the variance components
    `calibrate` matches (one dataset: the first)."""
    runs = pd.read_csv(path, dtype={"correct": str})
    runs = runs[runs.dataset == runs.dataset.iloc[0]]
    x, b = (
        np.stack([stats.as_correct(c) for c in runs[runs.method == k].sort_values("seed").correct])
        for k in (method, baseline)
    )
    vd, vb = stats.variance_components(x, b), stats.variance_components(b)
    return {
        "acc_base": float(b.mean()),
        "acc_method": float(x.mean()),
        "question_base": vb["question"],
        "question_diff": vd["question"],
        "seed_diff": vd["seed"],
    }


def calibrate(name: str, t: dict) -> Regime:
    """The Regime whose expected components equal the targets `t` (`targets_from_runs`), by least squares
    on the log SDs and log components (a target of 0 counts as 1e-8)."""
    goal = np.log(np.maximum([t["question_base"], t["question_diff"], t["seed_diff"]], 1e-8))

    def regime(th):
        return Regime(name, t["acc_base"], t["acc_method"], *np.exp(th))

    def resid(th):
        return np.log(np.maximum(expected_components(regime(th)), 1e-12)) - goal

    fit = optimize.least_squares(resid, np.log([1.0, 0.3, 0.05]), diff_step=1e-3)
    return regime(fit.x)


# ---------------------------------------------------------------- intervals on every replicate


def _z(stat: str, m: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(estimates, per-question values whose mean's variance is the estimate's) for each replicate."""
    if stat == "diff":
        return 100 * (m.mean((-2, -1)) - b.mean((-2, -1))), 100 * (m - b)
    if stat == "rel":
        return stats.linearised_rel(m, b)
    return m.mean((-2, -1)), m


def half_widths(z: np.ndarray, level: float = LEVEL) -> dict[str, np.ndarray]:
    """Half-widths of the analytic intervals on every replicate (first axis) of z (R, S, Q), S >= 2."""
    n_s, n_q = z.shape[-2:]
    var, dfs, groups = stats.interval_terms(z)
    ms_seed, ms_q, ms_e = stats.mean_squares(z)
    se = np.sqrt(var.sum(-1))
    # Satterthwaite on MS_seed + (MS_question - MS_residual) when the question term is kept
    keep = ms_q > ms_e
    den = ms_seed**2 / (n_s - 1) + keep * (ms_q**2 / (n_q - 1) + ms_e**2 / ((n_s - 1) * (n_q - 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, (ms_seed + keep * (ms_q - ms_e)) ** 2 / den, np.inf)
    q = (1 + level) / 2
    return {
        "t": stats.half_width(var, dfs, groups, level),
        "satterthwaite": st.t.ppf(q, df) * se,
        "normal": st.norm.ppf(q) * se,
        "seed_t": st.t.ppf(q, n_s - 1) * np.sqrt(var[..., 0]),
    }


def analytic_draws(r: Regime, n_seeds: int, n_questions: int, n_reps: int, rng, chunk: int = 500) -> dict:
    """stat -> (estimates, {interval: half-widths}, the t interval's term variances (R, terms)) over n_reps
    replicates, simulated in chunks (memory)."""
    out = {s: ([], {k: [] for k in INTERVALS if k != "bootstrap"}, []) for s in STATISTICS}
    for start in range(0, n_reps, chunk):
        m, b = simulate(r, min(chunk, n_reps - start), n_seeds, n_questions, rng)
        for s in STATISTICS:
            est, z = _z(s, m, b)
            out[s][0].append(est)
            out[s][2].append(stats.interval_terms(z)[0])
            for k, h in half_widths(z).items():
                out[s][1][k].append(h)
    cat = np.concatenate
    return {s: (cat(e), {k: cat(v) for k, v in h.items()}, cat(t)) for s, (e, h, t) in out.items()}


def bootstrap_draws(r: Regime, n_seeds: int, n_questions: int, n_reps: int, n_boot: int, rng) -> dict:
    """stat -> (lo, hi) of the crossed bootstrap over n_reps replicates (diff and rel: the same resamples)."""
    bounds = {s: [] for s in ("diff", "rel")}
    for _ in range(n_reps):
        m, b = simulate(r, 1, n_seeds, n_questions, rng)
        reps = stats.resample_means([m[0], b[0]], n_boot, rng)
        for s in bounds:
            bounds[s].append(stats.percentile_interval(stats._statistic(reps[0], reps[1], s), LEVEL))
    return {s: np.array(v).T for s, v in bounds.items()}


def _row(regime, n_seeds, n_questions, stat, interval, covered, width) -> dict:
    n, c = len(covered), float(np.mean(covered))
    scale = 100 if stat == "acc" else 1  # widths in points for accuracies too
    return {
        "regime": regime,
        "seeds": n_seeds,
        "questions": n_questions,
        "statistic": stat,
        "interval": interval,
        "replicates": n,
        "coverage": c,
        "mc_se": float(np.sqrt(c * (1 - c) / n)),
        "median_width": float(np.nanmedian(width)) * scale,
    }


def coverage(
    r: Regime,
    n_seeds: int,
    n_questions: int = 300,
    n_reps: int = 4000,
    boot_reps: int = 0,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Coverage of every interval of `INTERVALS` for every statistic on `n_reps` simulated experiments
    (the bootstrap on its own `boot_reps`, diff and rel only; 0 skips it). Deterministic under `seed`."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, (est, hw, _) in analytic_draws(r, n_seeds, n_questions, n_reps, rng).items():
        truth = r.truth(s)
        for k, h in hw.items():
            rows.append(_row(r.name, n_seeds, n_questions, s, k, np.abs(est - truth) <= h, 2 * h))
    if boot_reps:
        for s, (lo, hi) in bootstrap_draws(r, n_seeds, n_questions, boot_reps, n_boot, rng).items():
            rows.append(
                _row(
                    r.name,
                    n_seeds,
                    n_questions,
                    s,
                    "bootstrap",
                    (lo <= r.truth(s)) & (r.truth(s) <= hi),
                    hi - lo,
                )
            )
    return pd.DataFrame(rows)


def average_coverage(
    regimes: list[Regime], n_seeds: int, n_questions: int = 300, n_reps: int = 4000, seed: int = 0
) -> pd.DataFrame:
    """Coverage of the tables' interval of the mean over datasets, the datasets simulated independently:
    every dataset's terms divided by K^2 and combined by `lib.stats.half_width`, as
    `lib.stats.average_intervals` does."""
    rng = np.random.default_rng(seed)
    per = [analytic_draws(r, n_seeds, n_questions, n_reps, rng) for r in regimes]
    _, dfs, groups = stats.interval_terms(np.zeros((n_seeds, n_questions)))
    k, rows = len(regimes), []
    name = "mean over datasets: " + " + ".join(r.name.split(":")[0] for r in regimes)
    for s in STATISTICS:
        est = np.mean([p[s][0] for p in per], axis=0)
        var = np.concatenate([p[s][2] for p in per], axis=-1) / k**2
        h = stats.half_width(var, dfs * k, groups * k)
        truth = np.mean([r.truth(s) for r in regimes])
        rows.append(_row(name, n_seeds, n_questions, s, "t", np.abs(est - truth) <= h, 2 * h))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the report


def regimes(results: Path = ROOT / "results" / "offline") -> tuple[list[Regime], dict]:
    """The simulated regimes, calibrated to the committed runs, and the targets they were fitted to."""
    t = {
        "A": targets_from_runs(results / "12_A_runs.csv", "two_stage", "plain"),
        "B": targets_from_runs(results / "21_B_runs.csv", "tokens", "ft"),
    }
    a = calibrate("A: seed variance small (fitted to 12_A_runs.csv)", t["A"])
    b = calibrate("B: fitted to 21_B_runs.csv", t["B"])
    t["large"] = {**t["A"], "seed_diff": 0.05**2}  # a 5-point seed SD of the difference
    large = calibrate("seed variance large (A, seed SD of the difference 5 pts)", t["large"])
    null = replace(a, name="no effect (A, method accuracy = the baseline's)", acc_method=a.acc_base)
    return [a, b, large, null], t


def run_all(rs: list[Regime], args) -> pd.DataFrame:
    """Every regime at every number of seeds, then the mean over the first two regimes as two datasets."""
    tables = []
    for n_s in args.seeds:
        for r in rs:
            tables.append(coverage(r, n_s, args.questions, args.reps, args.boot_reps, args.n_boot, args.seed))
        tables.append(average_coverage(rs[:2], n_s, args.questions, args.reps, args.seed))
    return pd.concat(tables, ignore_index=True)


def _cells(t: pd.DataFrame, fmt: str) -> str:
    """A pivoted table as markdown, "-" where an interval was not computed."""
    cells = t.map(lambda v: "-" if pd.isna(v) else f"{v:{fmt}}").reset_index()
    return cells.to_markdown(index=False, disable_numparse=True)


def summary(table: pd.DataFrame) -> str:
    """The coverage range of each interval over the table's cells, read off the table itself."""
    one = table[~table.regime.str.startswith("mean over")]

    def span(rows) -> str:
        return f"{rows.coverage.min():.3f}-{rows.coverage.max():.3f}" if len(rows) else "-"

    diff_rel = one[one.statistic.isin(["diff", "rel"])]
    parts = [
        f"`{k}` {span(diff_rel[diff_rel.interval == k])}" for k in INTERVALS if k in set(diff_rel.interval)
    ]
    t_acc, t_mean = (
        one[(one.interval == "t") & (one.statistic == "acc")],
        table[table.regime.str.startswith("mean over") & (table.interval == "t")],
    )
    return (
        "Coverage range over the single-dataset cells, difference and relative change: "
        + ", ".join(parts)
        + f". The tables' interval on an accuracy: {span(t_acc)}; on a mean over datasets: {span(t_mean)}."
    )


def markdown(table: pd.DataFrame, rs: list[Regime], targets: dict, args, seconds: float) -> str:
    cov = table.pivot_table(
        index=["regime", "seeds", "statistic"], columns="interval", values="coverage", sort=False
    )
    width = table.pivot_table(
        index=["regime", "seeds", "statistic"], columns="interval", values="median_width", sort=False
    )
    cols = [k for k in INTERVALS if k in cov.columns]
    fit = pd.DataFrame([asdict(r) for r in rs]).round(4)
    tgt = pd.DataFrame(targets).T.rename_axis("runs").reset_index()
    n_boot = int(table[table.interval == "bootstrap"].replicates.max()) if "bootstrap" in cols else 0
    return "\n".join(
        [
            "# Coverage of the comparison intervals",
            "",
            f"Generated by `make coverage` (`python -m lib.coverage --reps {args.reps} --boot-reps "
            f"{args.boot_reps} --n-boot {args.n_boot} --seed {args.seed}`) in {seconds:.0f} s: "
            f"{args.reps} simulated experiments per cell for the analytic intervals, {n_boot} for the "
            f"crossed bootstrap ({args.n_boot} resamples each), {args.questions} test questions, numpy seed "
            f"{args.seed}. Coverage: the share of experiments whose 95 % interval contains the true value "
            f"(Monte-Carlo SE about {np.sqrt(0.95 * 0.05 / args.reps):.3f} at {args.reps} experiments, "
            f"{np.sqrt(0.95 * 0.05 / max(n_boot, 1)):.3f} at {n_boot}).",
            "",
            "Model (`lib/coverage.py`): correct[arm, s, q] ~ Bernoulli(Phi(mu_arm + sd_question z_q +- "
            "sd_effect w_q / 2 + sd_seed u_arm,s)), crossed question (z, w) and seed (u) effects on the "
            "probit scale, mu_arm set so that each arm's accuracy is exactly acc_arm. The SDs are fitted so "
            "that the model's expected variance components (lib.stats.variance_components, accuracy scale) "
            "equal the committed runs': the baseline's question component and the paired difference's "
            "question and seed components.",
            "",
            "## Coverage (statistic: diff = accuracy difference, rel = relative change, acc = the method's "
            "accuracy)",
            "",
            _cells(cov[cols], ".3f"),
            "",
            "Intervals: " + "; ".join(f"`{k}`: {INTERVALS[k]}" for k in cols) + ". The tables use `t`.",
            "",
            summary(table),
            "",
            "## Median width (points for diff and acc, % for rel)",
            "",
            _cells(width[cols], ".1f"),
            "",
            "## Regimes: the targets (accuracy-scale variance components) and the fitted latent SDs",
            "",
            tgt.to_markdown(index=False, floatfmt=".5f"),
            "",
            fit.to_markdown(index=False),
            "",
        ]
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="coverage of the comparison intervals, by simulation")
    ap.add_argument("--reps", type=int, default=4000, help="experiments per cell, analytic intervals")
    ap.add_argument("--boot-reps", type=int, default=300, help="experiments per cell, crossed bootstrap")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per experiment")
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[3, 10])
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "offline", help="the runs to fit")
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    args = ap.parse_args(argv)
    t0 = time.time()
    rs, targets = regimes(args.results)
    table = run_all(rs, args)
    table.to_csv(args.out / "coverage.csv", index=False)
    (args.out / "coverage.md").write_text(markdown(table, rs, targets, args, time.time() - t0))
    print(f"wrote {args.out / 'coverage.csv'} and {args.out / 'coverage.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
