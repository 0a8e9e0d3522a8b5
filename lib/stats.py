"""Statistics for comparisons of methods on 0/1 test correctness, and the verdict words the tables use.

Data layout: one correctness matrix per (dataset, method), `x[s, q]` in {0, 1}, seeds x test questions.
Every seed of a dataset scores the same test questions in the same order, and a method and its baseline
share their seeds, so seeds and questions are *crossed* factors and method and baseline are *paired*.

- `mean_squares`, `variance_components`: the crossed seed x question ANOVA (method of moments);
- `paired_interval`, `accuracy_interval`, `average_intervals`: the crossed-components t interval of a
  relative improvement, an accuracy difference or an accuracy, and of their mean over datasets (how paper A
  reports its average relative improvement); `lib.coverage` measures how often it holds;
- `resample_means`, `paired_bootstrap`: the crossed ("pigeonhole") bootstrap, kept as a labelled
  alternative for the coverage comparison; no table uses it;
- `clopper_pearson`, `wilson`: intervals for a single proportion;
- `mde`, `mde_proportion`, `two_level_se`: minimum detectable effects;
- `verdict`, `VERDICTS`: the one vocabulary for what an interval says about a claim;
- `compare_table`, `table_note`: the comparison table of methods against a baseline, and the line that
  states its interval and MDE under it.

The interval. For a mean over S seeds and Q questions of z[s, q] (the per-question difference method -
baseline, its delta-method linearisation for a relative change, or one method's correctness),
    var(mean) = seed / S + question / Q + residual / (S Q)
for the crossed random-effects model z = mu + a_s + b_q + e_sq. The seed means carry the first and last
terms: var(seed means) / S = MS_seed / (S Q) estimates seed / S + residual / (S Q) with S - 1 degrees of
freedom; the question term is shared by every seed and absent from the seed means, so it is added from the
ANOVA: question = max(0, MS_question - MS_residual) / S, with Q - 1 degrees of freedom. The interval is
    estimate +- sqrt(t(S-1)^2 MS_seed / (S Q) + t(Q-1)^2 question / Q),   t(k) = the (1 + level)/2 t quantile,
each term with the quantile of its own degrees of freedom: with one term it is the exact t interval of
that term. In the coverage simulation (`lib.coverage`, results/coverage.md: binary outcomes fitted to the
committed runs, 3 and 10 seeds) it holds 95 % for a difference and a relative change in every regime,
where one Satterthwaite df for the sum falls to 0.92 (3 seeds, a question term beside a large seed term),
the normal quantile to 0.82 and the seed means alone to 0.88; it is conservative for an accuracy at 3
seeds (0.98). SE = sqrt(MS_seed / (S Q) + question / Q); the effective df is the one whose t quantile
times SE gives the half-width, and
MDE = (t_{1-alpha/2, df} + t_{power, df}) x SE. One seed: var(z over questions) / Q, Q - 1 df (seed variance
not estimated). The mean over K datasets divides every dataset's terms by K^2 and pools the datasets'
seed-means terms (Welch-Satterthwaite df), likewise their question terms, the two groups in quadrature.

Units: accuracies are fractions in [0, 1]; differences are percentage points (100 x the difference of
accuracies, "pts"); relative changes are percent of the baseline accuracy ("rel %").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as st

ALPHA = 0.05  # two-sided test level behind every MDE in the tables
POWER = 0.8  # power behind every MDE in the tables
Z_MDE = float(st.norm.ppf(1 - ALPHA / 2) + st.norm.ppf(POWER))  # 2.8016, the large-df limit of the MDE factor

CONSISTENT = "consistent with the paper"
SMALLER = "smaller than the paper's"
LARGER = "larger than the paper's"
NO_GAIN = "no gain detected"
INCONCLUSIVE = "inconclusive"
OPPOSITE = "opposite"
GAIN = "gain"
NO_DIFFERENCE = "no difference detected"
LOSS = "loss"
NOT_TESTED = "not tested"
UNDEFINED = "undefined"
PAPER_VERDICTS = (CONSISTENT, SMALLER, LARGER, NO_GAIN, INCONCLUSIVE, OPPOSITE)
PLAIN_VERDICTS = (GAIN, NO_DIFFERENCE, LOSS)
VERDICTS = PAPER_VERDICTS + PLAIN_VERDICTS + (NOT_TESTED, UNDEFINED)

STATS = ("rel", "diff", "acc", "base")


# ---------------------------------------------------------------- data


def as_correct(x) -> np.ndarray:
    """One run's per-question correctness as a float vector of 0/1: a list / array of numbers or bools, a
    string of '0'/'1' characters (`encode_correct`), or a JSON list (a list column read back from CSV)."""
    if isinstance(x, str):
        s = x.strip()
        x = json.loads(s) if s.startswith("[") else [int(c) for c in s]
    v = np.asarray(x, dtype=float).ravel()
    if not np.isin(v, (0.0, 1.0)).all():
        raise ValueError("correctness must be 0/1")
    return v


def encode_correct(x) -> str:
    """Per-question correctness as a compact CSV-safe string of '0'/'1' (read back by `as_correct`)."""
    return "".join(str(int(c)) for c in as_correct(x))


def _matrix(x) -> np.ndarray:
    """seeds x questions; a 1-d input is one seed."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"expected a seeds x questions matrix, got shape {a.shape}")
    return a


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def relative_change(ours, base):
    """100 * (ours - base) / base, elementwise. Equal values give 0 (also at base 0: no change is no
    relative change); a change away from base 0 is undefined (nan). Scalars in, float out."""
    o, b = np.broadcast_arrays(np.asarray(ours, float), np.asarray(base, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 100.0 * (o - b) / b
    r = np.where(o == b, 0.0, np.where(b == 0, np.nan, r))
    return float(r) if r.ndim == 0 else r


def _statistic(m, b, stat: str):
    if stat == "rel":
        return relative_change(m, b)
    if stat == "diff":
        return 100.0 * (np.asarray(m) - np.asarray(b))
    if stat == "acc":
        return np.asarray(m, float)
    if stat == "base":
        return np.asarray(b, float)
    raise ValueError(f"stat must be one of {STATS}, got {stat!r}")


# ---------------------------------------------------------------- crossed variance components


def mean_squares(z) -> tuple:
    """Mean squares of the two-way crossed ANOVA without replication over the last two axes (seeds,
    questions) of `z`, leading axes kept (the coverage simulation passes a stack of replicates):
    MS_seed = Q var_s(seed means), MS_question = S var_q(question means), MS_residual = the residuals'
    sum of squares over (S - 1)(Q - 1). Needs S >= 2 and Q >= 2."""
    z = np.asarray(z, float)
    n_s, n_q = z.shape[-2:]
    if n_s < 2 or n_q < 2:
        raise ValueError(f"mean squares need at least 2 seeds and 2 questions, got {n_s} x {n_q}")
    rows, cols = z.mean(-1, keepdims=True), z.mean(-2, keepdims=True)
    grand = z.mean((-2, -1), keepdims=True)
    ms_seed = n_q * ((rows - grand) ** 2).sum((-2, -1)) / (n_s - 1)
    ms_q = n_s * ((cols - grand) ** 2).sum((-2, -1)) / (n_q - 1)
    ms_e = ((z - rows - cols + grand) ** 2).sum((-2, -1)) / ((n_s - 1) * (n_q - 1))
    return ms_seed, ms_q, ms_e


def variance_components(method, base=None) -> dict:
    """Variance components of the paired differences d = method - base (or of `method` alone when `base`
    is None), seeds x questions, by the method of moments on `mean_squares`:
    d[s, q] = mu + a_s + b_q + e_sq, seed = (MS_seed - MS_resid) / Q, question = (MS_question - MS_resid) / S,
    resid = MS_resid, negatives clipped to 0. With one seed the seed component is not estimable (0) and
    question and residual cannot be told apart: their sum var_q(d) is returned as `question` (so more
    seeds are not assumed to shrink it). Fractions squared (accuracy units)."""
    d = _matrix(method) - (0.0 if base is None else _matrix(base))
    n_s, n_q = d.shape
    if n_q < 2:
        raise ValueError("variance components need at least 2 questions")
    if n_s == 1:
        return {
            "seed": 0.0,
            "question": float(np.var(d[0], ddof=1)),
            "resid": 0.0,
            "n_seeds": 1,
            "n_questions": n_q,
        }
    ms_seed, ms_q, ms_e = (float(m) for m in mean_squares(d))
    return {
        "seed": max(0.0, (ms_seed - ms_e) / n_q),
        "question": max(0.0, (ms_q - ms_e) / n_s),
        "resid": ms_e,
        "n_seeds": n_s,
        "n_questions": n_q,
    }


def two_level_se(method, base=None, n_seeds: int | None = None, n_questions: int | None = None) -> float:
    """Standard error of the mean paired difference (or of the accuracy when `base` is None), in accuracy
    units, from `variance_components`: sqrt(seed / S + question / Q + resid / (S Q)), for the data's S seeds
    and Q questions or for a planned design (`n_seeds`, `n_questions`): how an MDE shrinks with seeds or
    questions. The tables' SE is the interval's (`paired_interval`), which at the data's own design
    estimates the same variance."""
    v = variance_components(method, base)
    n_s, n_q = n_seeds or v["n_seeds"], n_questions or v["n_questions"]
    return float(np.sqrt(v["seed"] / n_s + v["question"] / n_q + v["resid"] / (n_s * n_q)))


# ---------------------------------------------------------------- the crossed-components t interval


@dataclass(frozen=True)
class Interval:
    """A point estimate on the full data and its interval at `level`. `se`: the standard error; `df`: the
    effective degrees of freedom (t_{(1+level)/2, df} x se = the half-width; inf where nothing varies or for
    a bootstrap); `terms`: the (variance, df, group) terms behind the half-width (`half_width`; what an
    average over datasets combines); `samples`: a bootstrap's replicates (None for the t interval)."""

    point: float
    lo: float
    hi: float
    se: float
    df: float
    kind: str
    level: float
    terms: tuple = field(default=(), repr=False)
    samples: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_undefined(self) -> int:
        """Bootstrap replicates where the statistic is undefined (nan); 0 for the t interval."""
        return 0 if self.samples is None else int((~np.isfinite(self.samples)).sum())


SEED_TERM, QUESTION_TERM = "seed means", "question"


def interval_terms(z) -> tuple[np.ndarray, tuple, tuple]:
    """The variance terms of the mean of `z` (leading axes: replicates), their degrees of freedom and their
    groups: S >= 2: (MS_seed / (S Q), S - 1, 'seed means') and (max(0, MS_question - MS_residual) / (S Q),
    Q - 1, 'question'); one seed: (var_q(z) / Q, Q - 1, 'question'). Returns (variances with a last axis
    of terms, dfs, groups)."""
    z = np.asarray(z, float)
    n_s, n_q = z.shape[-2:]
    if n_q < 2:
        raise ValueError("an interval needs at least 2 questions")
    if n_s == 1:
        return (np.var(z[..., 0, :], axis=-1, ddof=1) / n_q)[..., None], (n_q - 1,), (QUESTION_TERM,)
    ms_seed, ms_q, ms_e = mean_squares(z)
    # the question term is what the seed means miss: every seed answers the same questions
    var = np.stack([ms_seed, np.maximum(ms_q - ms_e, 0.0)], axis=-1) / (n_s * n_q)
    return var, (n_s - 1, n_q - 1), (SEED_TERM, QUESTION_TERM)


def half_width(var, dfs, groups, level: float = 0.95) -> np.ndarray:
    """sqrt(sum_g t_{(1+level)/2, df_g}^2 V_g) over the groups of terms (last axis of `var`): a group's
    terms (the seed-means terms of several datasets, say) add up to V_g with Welch-Satterthwaite's df_g
    (one term: its own df); each group is scaled by the t quantile of its df, the groups in quadrature."""
    var, dfs, groups = np.asarray(var, float), np.asarray(dfs, float), np.asarray(groups)
    q, total = (1 + level) / 2, 0.0
    for g in dict.fromkeys(groups.tolist()):
        v, d = var[..., groups == g], dfs[groups == g]
        v_g, den = v.sum(-1), (v**2 / d).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            df_g = np.where(den > 0, v_g**2 / den, np.inf)
        total = total + st.t.ppf(q, df_g) ** 2 * v_g
    return np.sqrt(total)


def effective_df(ratio: float, level: float = 0.95) -> float:
    """The df whose (1 + level)/2 t quantile equals `ratio` (half-width / SE); inf at or below the normal
    quantile (where nothing varies, or every term has many df)."""
    q = (1 + level) / 2
    if not np.isfinite(ratio) or ratio <= st.t.ppf(q, 1e9):
        return float("inf")
    return float(optimize.brentq(lambda df: st.t.ppf(q, df) - ratio, 0.05, 1e9, xtol=1e-9))


def _from_terms(point: float, var, dfs, groups, kind: str, level: float, clip=None) -> Interval:
    var = np.asarray(var, float)
    se, h = float(np.sqrt(var.sum())), float(half_width(var, dfs, groups, level))
    df = effective_df(h / se, level) if se > 0 else float("inf")
    lo, hi = point - h, point + h
    if clip is not None:  # an accuracy lies in [0, 1] whatever the normal approximation says
        lo, hi = max(lo, clip[0]), min(hi, clip[1])
    return Interval(point, lo, hi, se, df, kind, level, tuple(zip(var.tolist(), dfs, groups)))


def _kind(n_seeds: int, n_questions: int, level: float, stat: str) -> str:
    what = {"rel": "relative change by the delta method", "diff": "paired difference"}.get(stat, "accuracy")
    if n_seeds > 1:
        return (
            f"{100 * level:g} % crossed-components t interval of the {what}: seed means "
            f"(t, {n_seeds - 1} df) and question term (t, {n_questions - 1} df) in quadrature"
        )
    return (
        f"{100 * level:g} % t interval of the {what} over questions ({n_questions - 1} df; one seed: seed "
        "variance not estimated)"
    )


def linearised_rel(method, base) -> tuple:
    """The relative change 100 (R - 1), R = mean(method) / mean(base), and its delta-method linearisation
    z = 100 (method - R base) / mean(base), whose mean's variance is R's to first order. Leading axes:
    replicates. A baseline mean of 0 gives nan (`paired_interval` handles it)."""
    m, b = np.asarray(method, float), np.asarray(base, float)
    mb, mm = b.mean((-2, -1), keepdims=True), m.mean((-2, -1), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = mm / mb
        z = 100.0 * (m - r * b) / mb
    return 100.0 * (r[..., 0, 0] - 1.0), z


def paired_interval(method, base, stat: str = "rel", *, level: float = 0.95) -> Interval:
    """The crossed-components t interval (module docstring) of a method against its baseline on the same
    seeds and questions (`method`, `base`: seeds x questions 0/1, or 1-d for one seed). `stat`: 'rel' =
    100 (mean(method) / mean(base) - 1) in %, its terms from the delta-method linearisation
    (`linearised_rel`); 'diff' = 100 (mean(method) - mean(base)) in points, its terms from the
    per-question differences; 'acc' / 'base' = the method's / baseline's accuracy (`accuracy_interval`).
    A relative change over a baseline at 0 is 0 [0, 0] when the method is at 0 too, else undefined (nan)."""
    m, b = _matrix(method), _matrix(base)
    if m.shape != b.shape:
        raise ValueError(f"method {m.shape} and baseline {b.shape} must share seeds and questions")
    if stat in ("acc", "base"):
        return accuracy_interval(m if stat == "acc" else b, level=level)
    kind = _kind(*m.shape, level, stat)
    if stat == "diff":
        return _from_terms(100.0 * (m.mean() - b.mean()), *interval_terms(100.0 * (m - b)), kind, level)
    if stat != "rel":
        raise ValueError(f"stat must be one of {STATS}, got {stat!r}")
    if b.mean() == 0:
        v = 0.0 if m.mean() == 0 else float("nan")
        return Interval(v, v, v, v, float("inf") if v == 0 else v, kind, level)
    point, z = linearised_rel(m, b)
    return _from_terms(float(point), *interval_terms(z), kind, level)


def accuracy_interval(correct, *, level: float = 0.95) -> Interval:
    """The crossed-components t interval of one method's accuracy (seeds x questions 0/1, or 1-d for one
    seed), bounds clipped to [0, 1]."""
    c = _matrix(correct)
    kind = _kind(*c.shape, level, "acc")
    return _from_terms(float(c.mean()), *interval_terms(c), kind, level, clip=(0.0, 1.0))


def average_intervals(intervals: Sequence[Interval]) -> Interval:
    """Mean over K datasets measured independently: point = mean of the points; every dataset's terms,
    divided by K^2, are combined as one interval's (`half_width`: the datasets' seed-means terms pooled
    with Welch-Satterthwaite df, likewise their question terms, the two groups in quadrature), so the
    average carries every dataset's uncertainty. Undefined (nan) when any dataset's interval is."""
    if not intervals:
        raise ValueError("no intervals to average")
    levels = {i.level for i in intervals}
    if len(levels) > 1:
        raise ValueError("intervals to average must share their level")
    level, k = levels.pop(), len(intervals)
    kinds = list(dict.fromkeys(i.kind for i in intervals))
    kind = f"mean over {k} datasets (terms pooled by group, Welch-Satterthwaite df), of: " + "; ".join(kinds)
    point = float(np.mean([i.point for i in intervals]))
    if any(i.samples is not None for i in intervals):
        raise ValueError("average_intervals combines t intervals, not bootstrap replicates")
    if not all(np.isfinite(i.point) and np.isfinite(i.se) for i in intervals):
        return Interval(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), kind, level)
    terms = [t for i in intervals for t in i.terms]
    if not terms:  # every dataset exact (nothing varies)
        return Interval(point, point, point, 0.0, float("inf"), kind, level)
    var, dfs, groups = zip(*terms)
    return _from_terms(point, np.array(var) / k**2, dfs, groups, kind, level)


# ---------------------------------------------------------------- crossed bootstrap (labelled alternative)


def percentile_interval(samples, level: float = 0.95) -> tuple[float, float]:
    """The (1 - level)/2 and (1 + level)/2 quantiles of the finite replicates (numpy's default linear
    interpolation); nan when no replicate is finite."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(s, a)), float(np.quantile(s, 1 - a))


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(n_boot, k) resampled indices -> (n_boot, n) how often each index was drawn."""
    b = idx.shape[0]
    return np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)


def resample_means(arrays: Sequence, n_boot: int = 2000, rng=None) -> np.ndarray:
    """Crossed ("pigeonhole") bootstrap replicates of the mean of each seeds x questions matrix in `arrays`
    (all of one shape S x Q). Replicate b draws, in this order from `rng`, seed indices
    `rng.integers(0, S, S)` for every b at once (shape (n_boot, S); skipped when S is 1) and then question
    indices `rng.integers(0, Q, Q)` (shape (n_boot, Q)), one question draw shared by all drawn seeds, and
    takes the mean over the drawn (seed, question) pairs for every matrix with the same draws (pairing
    kept). `lib.coverage` measures its coverage beside the t interval's. Returns (len(arrays), n_boot)."""
    x = np.stack([_matrix(a) for a in arrays])
    _, n_s, n_q = x.shape
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    rng = _rng(rng)
    cs = _counts(rng.integers(0, n_s, size=(n_boot, n_s)), n_s) if n_s > 1 else np.ones((n_boot, 1))
    cq = _counts(rng.integers(0, n_q, size=(n_boot, n_q)), n_q)
    # the mean over drawn pairs (s_i, q_j) is cs @ x @ cq / (S Q): counts replace a gather per replicate
    return (np.matmul(cs.astype(float), x) * cq).sum(-1) / (n_s * n_q)


def paired_bootstrap(
    method, base, stat: str = "rel", *, n_boot: int = 2000, level: float = 0.95, rng=None
) -> Interval:
    """The crossed bootstrap of a method against its baseline (resampling as in `resample_means`): point =
    the statistic on the full data, interval = the percentile interval of the replicates (undefined ones
    left out, `Interval.n_undefined`), se = their SD. A labelled alternative: the tables use
    `paired_interval`."""
    m, b = _matrix(method), _matrix(base)
    if m.shape != b.shape:
        raise ValueError(f"method {m.shape} and baseline {b.shape} must share seeds and questions")
    reps = resample_means([m, b], n_boot, rng)
    samples = np.asarray(_statistic(reps[0], reps[1], stat), float)
    lo, hi = percentile_interval(samples, level)
    f = samples[np.isfinite(samples)]
    se = float(np.std(f, ddof=1)) if len(f) > 1 else float("nan")
    kind = (
        f"{100 * level:g} % crossed bootstrap (seeds, then one question draw for all seeds), "
        f"{n_boot} resamples"
    )
    point = float(_statistic(m.mean(), b.mean(), stat))
    return Interval(point, lo, hi, se, float("inf"), kind, level, samples=samples)


# ---------------------------------------------------------------- single proportions


def clopper_pearson(k, n, level: float = 0.95):
    """Exact (Clopper-Pearson) interval of a proportion k/n: the alpha/2 quantile of Beta(k, n-k+1) and the
    1-alpha/2 quantile of Beta(k+1, n-k), alpha = 1 - level; lower bound 0 at k = 0, upper 1 at k = n;
    nan for n = 0. Scalars or arrays."""
    k, n = np.broadcast_arrays(np.asarray(k, float), np.asarray(n, float))
    a = 1 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, st.beta.ppf(a / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, st.beta.ppf(1 - a / 2, k + 1, n - k), 1.0)
    bad = (n <= 0) | (k < 0) | (k > n)
    lo, hi = np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)


def wilson(k, n, level: float = 0.95):
    """Wilson score interval of k/n: (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),
    z = the (1 + level)/2 normal quantile; exactly 0 at k = 0 and 1 at k = n; nan for n = 0."""
    k, n = np.broadcast_arrays(np.asarray(k, float), np.asarray(n, float))
    z = st.norm.ppf((1 + level) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        lo = np.where(k > 0, np.clip(centre - half, 0, 1), 0.0)
        hi = np.where(k < n, np.clip(centre + half, 0, 1), 1.0)
    bad = (n <= 0) | (k < 0) | (k > n)
    lo, hi = np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)


# ---------------------------------------------------------------- minimum detectable effects


def mde(se, df=None, alpha: float = ALPHA, power: float = POWER):
    """Minimum detectable effect: (t_{1-alpha/2, df} + t_{power, df}) * se, the true effect a two-sided
    level-alpha t test with standard error `se` and `df` degrees of freedom detects with probability about
    `power`; df None or inf gives the normal quantiles (2.8016 * se at the defaults). In the units of `se`."""
    df = np.inf if df is None else np.asarray(df, float)
    r = (st.t.ppf(1 - alpha / 2, df) + st.t.ppf(power, df)) * np.asarray(se, float)
    return float(r) if np.ndim(r) == 0 else r


def planned_mde(method, base, n_seeds: int, n_questions: int, level: float = 0.95) -> float:
    """The MDE (points) of the accuracy difference at a planned design of `n_seeds` x `n_questions`, from the
    variance components of the runs at hand (`variance_components`): the interval's two terms at that design,
    seed means (seed / S + resid / (S Q), S - 1 df) and question (question / Q, Q - 1 df), combined as
    `half_width` does, and `mde` at the effective df. At the runs' own design it is the MDE of
    `paired_interval(..., 'diff')` wherever the seed component is not clipped at 0: how seeds for a target MDE
    are chosen."""
    v, n_s, n_q = variance_components(method, base), n_seeds, n_questions
    var = np.array([v["seed"] / n_s + v["resid"] / (n_s * n_q), v["question"] / n_q]) * 100.0**2
    hw = float(half_width(var, (n_s - 1, n_q - 1), (SEED_TERM, QUESTION_TERM), level))
    se = float(np.sqrt(var.sum()))
    return mde(se, effective_df(hw / se if se > 0 else float("nan"), level))


def mde_proportion(p0: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """MDE of a single proportion measured on n items against a reference value p0 (a fraction), normal
    approximation with the standard error at p0: (z_{1-alpha/2} + z_{power}) * sqrt(p0 (1 - p0) / n)."""
    return float(mde(np.sqrt(p0 * (1 - p0) / n), None, alpha, power))


# ---------------------------------------------------------------- verdicts


def _missing(x) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and np.isnan(x))


def verdict(lo: float, hi: float, paper: float | None = None, trained: bool = True, null: float = 0.0) -> str:
    """What the interval [lo, hi] says, in the words of `VERDICTS`. Containment is inclusive: x is in the
    interval when lo <= x <= hi. `paper` (the paper's value) and `null` (the no-effect value: 0 for a
    difference or relative change, or e.g. a chance / control level for a proportion) are in the
    interval's units.

    - `trained` False (the compared students did not learn: they did not beat their pretrained dev
      accuracy): "not tested", before anything else;
    - a nan bound: "undefined" (the statistic has no value here, e.g. a relative change over a baseline
      at 0); "not tested" is kept for untrained students;
    - with a paper value (None or nan means none): contains paper and excludes null: "consistent with the
      paper"; contains both: "inconclusive"; contains null, excludes paper: "no gain detected"; entirely
      on the paper's side of null: "smaller than the paper's" between null and paper, "larger than the
      paper's" beyond paper; entirely on the other side of null: "opposite". `paper` must differ from
      `null` (a claim of no effect has no direction);
    - without a paper value: "gain" (lo > null), "loss" (hi < null), else "no difference detected"."""
    if not trained:
        return NOT_TESTED
    if _missing(lo) or _missing(hi):
        return UNDEFINED
    if lo > hi:
        raise ValueError(f"interval bounds out of order: [{lo}, {hi}]")
    has_null = lo <= null <= hi
    if _missing(paper):
        return NO_DIFFERENCE if has_null else (GAIN if lo > null else LOSS)
    if paper == null:
        raise ValueError("the paper value equals the null: the verdict needs a claimed effect")
    has_paper = lo <= paper <= hi
    if has_paper:
        return INCONCLUSIVE if has_null else CONSISTENT
    if has_null:
        return NO_GAIN
    up = paper > null  # the claimed direction
    if (lo > null) != up:
        return OPPOSITE
    # the interval lies between null and paper, or beyond paper, on the claimed side
    return SMALLER if (hi < paper if up else lo > paper) else LARGER


# ---------------------------------------------------------------- comparison table


def _runs_of(g: pd.DataFrame, dataset, method) -> tuple[list, np.ndarray, np.ndarray]:
    if g.seed.duplicated().any():
        raise ValueError(f"{dataset}/{method}: more than one run per seed")
    g = g.sort_values("seed")
    vecs = [as_correct(c) for c in g.correct]
    if len({len(v) for v in vecs}) != 1:
        raise ValueError(f"{dataset}/{method}: runs score different numbers of test questions")
    return list(g.seed), np.stack(vecs), g.trained.astype(bool).to_numpy()


def _tested(m_tr: np.ndarray, b_tr: np.ndarray, rule: str) -> tuple[int, bool]:
    both = int((m_tr & b_tr).sum())
    return both, (both * 2 > len(m_tr) if rule == "majority" else both == len(m_tr))


def compare_table(
    runs: pd.DataFrame,
    baseline: str,
    *,
    paper: dict | None = None,
    level: float = 0.95,
    trained_rule: str = "majority",
) -> pd.DataFrame:
    """Every method against `baseline`, per dataset and averaged over datasets.

    `runs`: one row per run with columns dataset, method, seed, correct (0/1 per test question, or its
    `encode_correct` string; the same question order in every run of a dataset) and optionally trained
    (the run learned: lib.report.against_control; True when absent). Every method of a
    dataset must have the baseline's seeds (paired by seed) and question count.

    One row per (dataset, method != baseline), in order of appearance, then one 'average' row per method:
    - seeds, n_test; trained_seeds: seeds where both students are trained;
    - acc_mean, acc_lo, acc_hi: the method's accuracy with its interval (`accuracy_interval`); base_acc;
    - rel_%, rel_lo, rel_hi, rel_df: relative improvement over the baseline (`paired_interval`, 'rel');
    - diff_pts, diff_lo, diff_hi, diff_df: the difference in accuracy points (`paired_interval`, 'diff');
    - mde_pts, mde_rel_%: `mde` (80 % power, two-sided 5 %) of the diff / rel interval's SE at its
      effective df, so the MDE describes the test the interval makes;
    - paper_%, verdict: `verdict(rel_lo, rel_hi, paper)` with paper[(dataset, method)] from `paper`
      (relative %, e.g. {("average", "two_stage"): 20.79}); interval: the relative interval in words.
    Average rows: `average_intervals` of the per-dataset intervals (n_test summed, seeds the fewest of any
    dataset). Deterministic: no resampling.

    "not tested" (`trained_rule`): 'majority' (default) when at most half of a row's seeds have both
    students trained; 'all' when any run of either method did not. The interval keeps every seed: not
    beating the pretrained student is an outcome of training, and leaving such seeds out would select on
    that outcome; only when most pairs compare students that did not learn does the row stop testing the
    methods. An average row is "not tested" when any of its datasets is, since an untrained dataset pulls
    the mean toward 0 by construction."""
    if trained_rule not in ("majority", "all"):
        raise ValueError("trained_rule must be 'majority' or 'all'")
    missing = {"dataset", "method", "seed", "correct"} - set(runs.columns)
    if missing:
        raise ValueError(f"runs lack columns {sorted(missing)}")
    # a run without a trained flag counts as trained: the flag only ever marks the exception
    runs = runs.assign(trained=runs["trained"].fillna(True) if "trained" in runs else True)
    paper = paper or {}
    rows, per_method = [], {}
    for d, g in runs.groupby("dataset", sort=False):
        gb = g[g.method == baseline]
        if gb.empty:
            raise ValueError(f"dataset {d}: no run of the baseline {baseline!r}")
        b_seeds, b, b_tr = _runs_of(gb, d, baseline)
        for m, gm in g[g.method != baseline].groupby("method", sort=False):
            m_seeds, x, m_tr = _runs_of(gm, d, m)
            if m_seeds != b_seeds or x.shape != b.shape:
                raise ValueError(
                    f"{d}/{m}: seeds {m_seeds} x {x.shape[1]} questions do not pair with the "
                    f"baseline's {b_seeds} x {b.shape[1]}"
                )
            iv = {s: paired_interval(x, b, s, level=level) for s in ("acc", "rel", "diff")}
            both, tested = _tested(m_tr, b_tr, trained_rule)
            per_method.setdefault(m, []).append((iv, tested))
            rows.append(
                _row(d, m, baseline, len(m_seeds), both, x.shape[1], iv, float(b.mean()), tested, paper)
            )
    for m, per in per_method.items():
        iv = {s: average_intervals([p[0][s] for p in per]) for s in ("acc", "rel", "diff")}
        t = [r for r in rows if r["method"] == m]
        seeds, trained = min(r["seeds"] for r in t), sum(r["trained_seeds"] for r in t)
        base_acc, tested = float(np.mean([r["base_acc"] for r in t])), all(p[1] for p in per)
        n_test = sum(r["n_test"] for r in t)
        rows.append(_row("average", m, baseline, seeds, trained, n_test, iv, base_acc, tested, paper))
    return pd.DataFrame(rows)


def _row(d, m, baseline, seeds, trained_seeds, n_test, iv, base_acc, tested, paper) -> dict:
    p = paper.get((d, m), float("nan"))
    rel, diff = iv["rel"], iv["diff"]
    return {
        "dataset": d,
        "method": m,
        "baseline": baseline,
        "seeds": seeds,
        "trained_seeds": trained_seeds,
        "n_test": n_test,
        "acc_mean": iv["acc"].point,
        "acc_lo": iv["acc"].lo,
        "acc_hi": iv["acc"].hi,
        "base_acc": base_acc,
        "rel_%": rel.point,
        "rel_lo": rel.lo,
        "rel_hi": rel.hi,
        "rel_df": rel.df,
        "diff_pts": diff.point,
        "diff_lo": diff.lo,
        "diff_hi": diff.hi,
        "diff_df": diff.df,
        "mde_pts": float(mde(diff.se, diff.df)),
        "mde_rel_%": float(mde(rel.se, rel.df)),
        "paper_%": p,
        "interval": rel.kind,
        "verdict": verdict(rel.lo, rel.hi, p, trained=tested),
    }


METHOD_NOTE = (
    "each bound is the estimate +- sqrt(t(S-1)^2 var(seed means)/S + t(Q-1)^2 question/Q) over S seeds "
    "and Q questions, t the two-sided 95 % t quantile, computed on the per-question method - baseline "
    "differences (one seed: estimate +- t(Q-1) sd/sqrt(Q) over questions) "
    "(relative change: on their delta-method linearisation (x - R b)/mean(b), R the ratio of accuracies; "
    "accuracy: on the method's 0/1 correctness); question = max(0, MS_question - MS_residual)/S from the "
    "crossed seed x question ANOVA (method of moments); 'average': the mean over datasets, the datasets' "
    "terms divided by K^2, seed-means terms pooled with Welch-Satterthwaite df, likewise question terms, "
    "the two in quadrature (lib/stats.py; coverage by simulation: results/coverage.md)"
)


def table_note(table: pd.DataFrame) -> str:
    """One line to print under a `compare_table` table (also one read back from CSV): its interval kinds,
    how the interval is computed, and the range of its minimum detectable effects."""
    if table.empty:
        return "no comparisons"
    kinds = "; ".join(dict.fromkeys(table.loc[table.dataset != "average", "interval"]))
    pts, rel = table["mde_pts"].dropna(), table["mde_rel_%"].dropna()

    def span(s, f):
        if s.empty:
            return "-"
        return f"{s.min():{f}}" if s.min() == s.max() else f"{s.min():{f}}-{s.max():{f}}"

    return (
        f"Intervals: {kinds}; {METHOD_NOTE}. "
        f"MDE ({100 * POWER:g} % power, two-sided {100 * ALPHA:g} %) = (t_0.975,df + t_0.8,df) x SE, "
        "SE = sqrt(var(seed means)/S + question/Q), df the interval's effective df "
        "(t_0.975,df x SE = half-width): "
        f"{span(pts, '.1f')} accuracy points, {span(rel, '.0f')} % relative. "
        "Verdicts on the relative interval; 'not tested': in most seeds a student was not trained "
        "(trained_seeds: its best dev accuracy beat its shuffled-label control's on the same seed where the "
        "table ran that control, else its pretrained dev accuracy)."
    )
