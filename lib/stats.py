"""Statistics for comparisons of methods on 0/1 test correctness, and the verdict words the tables use.

Data layout: one correctness matrix per (dataset, method), `x[s, q]` in {0, 1}, seeds x test questions.
Every seed of a dataset scores the same test questions in the same order, and a method and its baseline
share their seeds, so seeds and questions are *crossed* factors and method and baseline are *paired*.

- `paired_bootstrap`, `accuracy_bootstrap`, `average_intervals`: two-level (seeds, questions) percentile
  bootstrap intervals of a relative improvement, an accuracy difference or an accuracy, and of their mean
  over datasets (how paper A reports its average relative improvement);
- `clopper_pearson`, `wilson`: intervals for a single proportion;
- `mde`, `mde_proportion`, `variance_components`, `two_level_se`: minimum detectable effects;
- `verdict`, `VERDICTS`: the one vocabulary for what an interval says about a claim;
- `compare_table`, `table_note`: the comparison table of methods against a baseline, and the line that
  states its interval kind and MDE under it.

Units: accuracies are fractions in [0, 1]; differences are percentage points (100 x the difference of
accuracies, "pts"); relative changes are percent of the baseline accuracy ("rel %").
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as st

ALPHA = 0.05  # two-sided test level behind every MDE in the tables
POWER = 0.8  # power behind every MDE in the tables
Z_MDE = float(st.norm.ppf(1 - ALPHA / 2) + st.norm.ppf(POWER))  # 2.8016

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


# ---------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Interval:
    """A point estimate on the full data, its percentile interval, and the bootstrap replicates behind it."""

    point: float
    lo: float
    hi: float
    samples: np.ndarray = field(repr=False)
    kind: str
    level: float

    @property
    def se(self) -> float:
        """Bootstrap standard error: the SD (ddof=1) of the finite replicates."""
        f = self.samples[np.isfinite(self.samples)]
        return float(np.std(f, ddof=1)) if len(f) > 1 else float("nan")

    @property
    def n_undefined(self) -> int:
        """Replicates where the statistic is undefined (nan), left out of the percentiles."""
        return int((~np.isfinite(self.samples)).sum())


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


def _kind(n_seeds: int, n_boot: int, level: float, paired: bool) -> str:
    what = "paired bootstrap" if paired else "bootstrap"
    if n_seeds > 1:
        return f"{100 * level:g} % two-level {what} (seeds, then questions), {n_boot} resamples"
    return (
        f"{100 * level:g} % {what} over questions (one seed: seed variance not estimated), {n_boot} resamples"
    )


def resample_means(arrays: Sequence, n_boot: int = 2000, rng=None) -> np.ndarray:
    """Two-level bootstrap replicates of the mean of each seeds x questions matrix in `arrays` (all of one
    shape S x Q, the same seeds and questions in the same order). Replicate b draws, in this order from
    `rng`, seed indices `s = rng.integers(0, S, S)` for every b at once (shape (n_boot, S); skipped when S
    is 1, so one seed is a plain bootstrap over questions) and then question indices
    `q = rng.integers(0, Q, Q)` (shape (n_boot, Q)), and takes `x[s][:, q].mean()` for every matrix with
    the same s and q, which keeps the pairing. One question draw per replicate, shared by all drawn
    seeds, because every seed answers the same questions (crossed factors): a question that favours a
    method in every seed moves all of them together. This (the 'pigeonhole' bootstrap) is conservative:
    when the seed x question interaction dominates, its variance is up to about 3x the true one.
    Returns the (len(arrays), n_boot) replicate means."""
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
    """Paired two-level bootstrap of a method against its baseline on the same seeds and questions
    (`method`, `base`: seeds x questions 0/1, or 1-d for one seed; resampling as in `resample_means`).
    `stat`: 'rel' = relative_change(mean(method), mean(base)) in %, 'diff' = 100 * (mean(method) -
    mean(base)) in points, 'acc' / 'base' = the method's / baseline's accuracy. The point estimate is the
    statistic on the full data, the interval the percentile interval of the replicates (`level`, default
    95 %), replicates where the statistic is undefined left out (`Interval.n_undefined` counts them).
    `rng`: a numpy Generator (or a seed) for determinism."""
    m, b = _matrix(method), _matrix(base)
    if m.shape != b.shape:
        raise ValueError(f"method {m.shape} and baseline {b.shape} must share seeds and questions")
    reps = resample_means([m, b], n_boot, rng)
    samples = np.asarray(_statistic(reps[0], reps[1], stat), float)
    lo, hi = percentile_interval(samples, level)
    return Interval(
        float(_statistic(m.mean(), b.mean(), stat)),
        lo,
        hi,
        samples,
        _kind(m.shape[0], n_boot, level, paired=True),
        level,
    )


def accuracy_bootstrap(correct, *, n_boot: int = 2000, level: float = 0.95, rng=None) -> Interval:
    """Two-level bootstrap of one method's accuracy (seeds x questions 0/1; resampling as in
    `resample_means`): point = mean over seeds and questions, percentile interval at `level`."""
    c = _matrix(correct)
    reps = resample_means([c], n_boot, rng)
    lo, hi = percentile_interval(reps[0], level)
    return Interval(float(c.mean()), lo, hi, reps[0], _kind(c.shape[0], n_boot, level, paired=False), level)


def average_intervals(intervals: Sequence[Interval]) -> Interval:
    """Mean over datasets: point = mean of the per-dataset points, replicate b = mean of the per-dataset
    replicates b (nan when any of them is nan), interval = percentiles of those means. The datasets must
    have been resampled independently (one Generator passed through them in turn, or distinct seeds),
    so the average's interval carries every dataset's uncertainty and no spurious correlation."""
    if not intervals:
        raise ValueError("no intervals to average")
    levels, sizes = {i.level for i in intervals}, {len(i.samples) for i in intervals}
    if len(levels) > 1 or len(sizes) > 1:
        raise ValueError("intervals to average must share level and number of resamples")
    level = levels.pop()
    samples = np.mean(np.stack([i.samples for i in intervals]), axis=0)
    lo, hi = percentile_interval(samples, level)
    kinds = list(dict.fromkeys(i.kind for i in intervals))
    kind = f"mean over {len(intervals)} datasets, each resampled independently, of: " + "; ".join(kinds)
    return Interval(float(np.mean([i.point for i in intervals])), lo, hi, samples, kind, level)


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


def mde(se, alpha: float = ALPHA, power: float = POWER):
    """Minimum detectable effect: (z_{1-alpha/2} + z_{power}) * se, the true effect a two-sided level-alpha
    test detects with probability `power` when its estimate is normal with standard error `se`
    (2.8016 * se at the defaults). In the units of `se`."""
    r = (st.norm.ppf(1 - alpha / 2) + st.norm.ppf(power)) * np.asarray(se, float)
    return float(r) if r.ndim == 0 else r


def mde_proportion(p0: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """MDE of a single proportion measured on n items against a reference value p0 (a fraction), normal
    approximation with the standard error at p0: (z_{1-alpha/2} + z_{power}) * sqrt(p0 (1 - p0) / n)."""
    return float(mde(np.sqrt(p0 * (1 - p0) / n), alpha, power))


def variance_components(method, base=None) -> dict:
    """Variance components of the paired differences d = method - base (or of `method` alone when `base`
    is None), seeds x questions, from the two-way crossed ANOVA without replication:
    d[s, q] = mu + a_s + b_q + e_sq, with mean squares MS_seed = Q var_s(row means), MS_question =
    S var_q(column means), MS_resid of the residuals (ddof 1, (S-1)(Q-1)); then seed = (MS_seed -
    MS_resid) / Q, question = (MS_question - MS_resid) / S, resid = MS_resid, negatives clipped to 0.
    With one seed the seed component is not estimable (0) and question and residual cannot be told apart:
    their sum var_q(d) is returned as `question` (so more seeds are not assumed to shrink it).
    Fractions squared (accuracy units)."""
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
    rows, cols, grand = d.mean(1, keepdims=True), d.mean(0, keepdims=True), d.mean()
    ms_seed = n_q * float(np.sum((rows - grand) ** 2)) / (n_s - 1)
    ms_q = n_s * float(np.sum((cols - grand) ** 2)) / (n_q - 1)
    ms_e = float(np.sum((d - rows - cols + grand) ** 2)) / ((n_s - 1) * (n_q - 1))
    return {
        "seed": max(0.0, (ms_seed - ms_e) / n_q),
        "question": max(0.0, (ms_q - ms_e) / n_s),
        "resid": ms_e,
        "n_seeds": n_s,
        "n_questions": n_q,
    }


def two_level_se(method, base=None, n_seeds: int | None = None, n_questions: int | None = None) -> float:
    """Analytic standard error of the mean paired difference (or of the accuracy when `base` is None), in
    accuracy units, from `variance_components`: sqrt(seed / S + question / Q + resid / (S Q)), for the
    data's S seeds and Q questions or for a planned design (`n_seeds`, `n_questions`). The tables use
    the bootstrap SE instead (`compare_table`); this one projects to other sizes."""
    v = variance_components(method, base)
    n_s, n_q = n_seeds or v["n_seeds"], n_questions or v["n_questions"]
    return float(np.sqrt(v["seed"] / n_s + v["question"] / n_q + v["resid"] / (n_s * n_q)))


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


def _row_rng(seed: int, dataset: str, method: str) -> np.random.Generator:
    """One generator per (dataset, method): a row's numbers do not depend on the table's other rows."""
    return np.random.default_rng([seed, zlib.crc32(str(dataset).encode()), zlib.crc32(str(method).encode())])


def _runs_of(g: pd.DataFrame, dataset, method) -> tuple[list, np.ndarray, np.ndarray]:
    if g.seed.duplicated().any():
        raise ValueError(f"{dataset}/{method}: more than one run per seed")
    g = g.sort_values("seed")
    vecs = [as_correct(c) for c in g.correct]
    if len({len(v) for v in vecs}) != 1:
        raise ValueError(f"{dataset}/{method}: runs score different numbers of test questions")
    return list(g.seed), np.stack(vecs), g.trained.astype(bool).to_numpy()


def compare_table(
    runs: pd.DataFrame,
    baseline: str,
    *,
    paper: dict | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    trained_rule: str = "majority",
) -> pd.DataFrame:
    """Every method against `baseline`, per dataset and averaged over datasets.

    `runs`: one row per run with columns dataset, method, seed, correct (0/1 per test question, or its
    `encode_correct` string; the same question order in every run of a dataset) and optionally trained
    (the dev-selected student beats its pretrained dev accuracy; True when absent). Every method of a
    dataset must have the baseline's seeds (paired by seed) and question count.

    One row per (dataset, method != baseline), in order of appearance, then one 'average' row per method:
    - seeds, n_test; trained_seeds: seeds where both students beat their pretrained dev accuracy;
    - acc_mean, acc_lo, acc_hi: the method's accuracy with its two-level bootstrap interval; base_acc;
    - rel_%, rel_lo, rel_hi: relative improvement over the baseline (`paired_bootstrap`, stat 'rel');
    - diff_pts, diff_lo, diff_hi: the difference in accuracy points (same replicates);
    - mde_pts, mde_rel_%: `mde` (80 % power, two-sided 5 %) of the bootstrap SE of diff / rel, so the MDE
      describes the test the interval makes (conservative as `resample_means` says);
    - paper_%, verdict: `verdict(rel_lo, rel_hi, paper)` with paper[(dataset, method)] from `paper`
      (relative %, e.g. {("average", "two_stage"): 20.79}); interval: the interval kind in words.
    Average rows are means over the datasets the method has (`average_intervals`; n_test summed, seeds the
    fewest of any dataset); acc_lo/acc_hi too come from averaged replicates.

    "not tested" (`trained_rule`): 'majority' (default) when at most half of a row's seeds have both
    students trained; 'all' when any run of either method did not. The interval keeps every seed: not
    beating the pretrained student is an outcome of training, and leaving such seeds out would select on
    that outcome; only when most pairs compare students that did not learn does the row stop testing the
    methods. An average row is "not tested" when any of its datasets is, since
    an untrained dataset pulls the mean toward 0 by construction.

    Deterministic under `seed`: row (dataset, method) resamples with
    `np.random.default_rng([seed, crc32(dataset), crc32(method)])`."""
    if trained_rule not in ("majority", "all"):
        raise ValueError("trained_rule must be 'majority' or 'all'")
    missing = {"dataset", "method", "seed", "correct"} - set(runs.columns)
    if missing:
        raise ValueError(f"runs lack columns {sorted(missing)}")
    # a run without a trained flag counts as trained: the flag only ever marks the exception
    runs = runs.assign(trained=runs["trained"].fillna(True) if "trained" in runs else True)
    paper = paper or {}
    rows, reps = [], {}
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
            means = resample_means([x, b], n_boot, _row_rng(seed, d, m))
            kind = _kind(len(m_seeds), n_boot, level, paired=True)
            iv = {}
            for s in ("acc", "rel", "diff"):
                smp = np.asarray(_statistic(means[0], means[1], s), float)
                iv[s] = Interval(
                    float(_statistic(x.mean(), b.mean(), s)),
                    *percentile_interval(smp, level),
                    smp,
                    kind,
                    level,
                )
            both = int((m_tr & b_tr).sum())
            tested = both * 2 > len(m_seeds) if trained_rule == "majority" else both == len(m_seeds)
            reps.setdefault(m, []).append((iv, tested))
            rows.append(
                _row(d, m, baseline, len(m_seeds), both, x.shape[1], iv, float(b.mean()), tested, paper)
            )
    for m, per in reps.items():
        iv = {s: average_intervals([p[0][s] for p in per]) for s in ("acc", "rel", "diff")}
        t = [r for r in rows if r["method"] == m]
        rows.append(
            _row(
                "average",
                m,
                baseline,
                min(r["seeds"] for r in t),
                sum(r["trained_seeds"] for r in t),
                sum(r["n_test"] for r in t),
                iv,
                float(np.mean([r["base_acc"] for r in t])),
                all(p[1] for p in per),
                paper,
            )
        )
    return pd.DataFrame(rows)


def _row(d, m, baseline, seeds, trained_seeds, n_test, iv, base_acc, tested, paper) -> dict:
    p = paper.get((d, m), float("nan"))
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
        "rel_%": iv["rel"].point,
        "rel_lo": iv["rel"].lo,
        "rel_hi": iv["rel"].hi,
        "diff_pts": iv["diff"].point,
        "diff_lo": iv["diff"].lo,
        "diff_hi": iv["diff"].hi,
        "mde_pts": float(mde(iv["diff"].se)),
        "mde_rel_%": float(mde(iv["rel"].se)),
        "paper_%": p,
        "interval": iv["rel"].kind,
        "verdict": verdict(iv["rel"].lo, iv["rel"].hi, p, trained=tested),
    }


def table_note(table: pd.DataFrame) -> str:
    """One line to print under a `compare_table` table (also one read back from CSV): its interval kinds
    and the range of its minimum detectable effects."""
    if table.empty:
        return "no comparisons"
    kinds = "; ".join(dict.fromkeys(table.loc[table.dataset != "average", "interval"]))
    pts, rel = table["mde_pts"].dropna(), table["mde_rel_%"].dropna()

    def span(s, f):
        if s.empty:
            return "-"
        return f"{s.min():{f}}" if s.min() == s.max() else f"{s.min():{f}}-{s.max():{f}}"

    return (
        f"Intervals: {kinds}; 'average': mean over datasets of per-dataset replicates. "
        f"MDE ({100 * POWER:g} % power, two-sided {100 * ALPHA:g} %) = {Z_MDE:.2f} x bootstrap SE: "
        f"{span(pts, '.1f')} accuracy points, {span(rel, '.0f')} % relative. "
        "Verdicts on the relative interval; 'not tested': in most seeds a student did not beat its "
        "pretrained dev accuracy (trained_seeds)."
    )
