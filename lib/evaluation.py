"""Accuracy by task kind, seeds and intervals.

- options (mc, yes/no): argmax over options of the length-normalised log-likelihood of the option
  text after `answer_prompt` (mean token log-prob by default; `norm="sum"` for the raw sum);
- free-form numbers: greedy chain-of-thought, the parsed final answer compared with the gold;
- intervals: percentile bootstrap over examples (and over seeds where there are several);
- relative improvement as the paper states it: (ours - baseline) / baseline.
"""
from __future__ import annotations

import numpy as np
import torch

from .data import Example
from .prompts import answer_prompt, cot_prompt, is_correct, parse_answer


def option_scores(lm, examples: list[Example], norm: str = "token", batch_size: int = 16, progress: bool = False) -> list[np.ndarray]:
    """Per example, the score of each option (higher is more likely)."""
    lps = lm.score_options([answer_prompt(e) for e in examples], [[" " + c for c in e.choices] for e in examples],
                           batch_size=batch_size * 4, progress=progress)
    return [np.array([float(lp.sum() / (len(lp) if norm == "token" else 1)) for lp in per]) for per in lps]


def predict_options(lm, examples: list[Example], **kw) -> list[str]:
    return [e.choices[int(np.argmax(s))] for e, s in zip(examples, option_scores(lm, examples, **kw))]


def predict_cot(lm, examples: list[Example], max_new_tokens: int = 128, batch_size: int = 16, progress: bool = False) -> tuple[list[str | None], list[str]]:
    """Greedy chain-of-thought: (parsed answers, raw generations)."""
    gens = lm.generate([cot_prompt(e) for e in examples], max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return [parse_answer(g, e) for g, e in zip(gens, examples)], gens


def zero_shot_accuracy(lm, examples: list[Example], batch_size: int = 16, max_new_tokens: int = 128, progress: bool = False) -> dict:
    """Accuracy (and per-example correctness) by the method fitting the task kind."""
    if not examples:
        return {"acc": float("nan"), "n": 0, "correct": [], "method": "-"}
    if examples[0].choices:
        preds = predict_options(lm, examples, batch_size=batch_size, progress=progress)
        method = "option log-likelihood"
    else:
        preds, _ = predict_cot(lm, examples, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        method = "greedy chain-of-thought"
    correct = [is_correct(p, e) for p, e in zip(preds, examples)]
    return {"acc": float(np.mean(correct)), "n": len(correct), "correct": correct, "method": method,
            "unparsed": sum(p is None for p in preds)}


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (0/1 correctness or per-seed scores)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def relative_improvement(ours: float, baseline: float) -> float:
    """(ours - baseline) / baseline, in percent (how paper A states its 20.79 %)."""
    return 100.0 * (ours - baseline) / baseline if baseline else float("nan")


def zero_shot_cell(model_name: str, lm_loader, dataset: str, examples: list[Example], preset: str, *,
                   batch_size: int, max_new_tokens: int) -> dict:
    """Zero-shot accuracy of one model on one dataset's examples, cached on disk (see common.cached_json)."""
    from .common import cached_json

    key = {"preset": preset, "model": model_name, "dataset": dataset, "ids": [e.id for e in examples],
           "max_new_tokens": max_new_tokens}

    def compute():
        r = zero_shot_accuracy(lm_loader(), examples, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=True)
        r["ci"] = bootstrap_ci(r["correct"])
        return r

    return cached_json("zero_shot", key, compute)


def ablation_summary(runs, keys=("group", "setting", "method")):
    """One row per ablation setting: mean ± std of test accuracy over seeds, and a 95 % bootstrap interval over
    test questions (each question's correctness averaged over the seeds first), so a 1-seed ablation still says
    how wide its uncertainty is. `runs`: DataFrame with the `keys`, seed, test_acc and correct."""
    import pandas as pd

    rows = []
    for k, g in runs.groupby(list(keys), sort=False):
        per_q = np.stack([np.asarray(c, float) for c in g.correct]).mean(0)
        lo, hi = bootstrap_ci(per_q)
        acc = g.test_acc.astype(float)
        rows.append({**dict(zip(keys, k)), "seeds": g.seed.nunique(), "n_test": len(per_q), "acc_mean": acc.mean(),
                     "acc_std": acc.std(ddof=1) if len(acc) > 1 else float("nan"), "acc_lo": lo, "acc_hi": hi})
    return pd.DataFrame(rows)


def compare_methods(runs, baseline: str, n_boot: int = 2000, seed: int = 0):
    """Per dataset and method: mean ± std of test accuracy over seeds, a 95 % interval (bootstrap over
    test examples, seeds pooled), and the relative improvement over `baseline` with a paired interval
    (same seeds, same test examples). Plus an 'average' row per method: the mean over datasets of the
    relative improvements (how paper A reports its 20.79 %), its interval from resampling every
    dataset's examples at once. `runs`: DataFrame with dataset, method, seed, test_acc, correct."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows, rel_boot = [], {}
    for d, g in runs.groupby("dataset", sort=False):
        seeds = sorted(g.seed.unique())
        base = g[g.method == baseline].set_index("seed")
        b = np.stack([np.asarray(base.loc[s, "correct"], float) for s in seeds])  # seeds x examples
        idx = rng.integers(0, b.shape[1], size=(n_boot, b.shape[1]))
        b_boot = b[:, idx].mean(axis=(0, 2))
        for m, gm in g.groupby("method", sort=False):
            gm = gm.set_index("seed")
            c = np.stack([np.asarray(gm.loc[s, "correct"], float) for s in seeds])
            c_boot = c[:, idx].mean(axis=(0, 2))
            acc = gm.test_acc.astype(float)
            rel = relative_improvement(c.mean(), b.mean())
            rb = 100 * (c_boot - b_boot) / np.where(b_boot == 0, np.nan, b_boot)
            rel_boot.setdefault(m, []).append(rb)
            rows.append({"dataset": d, "method": m, "seeds": len(seeds), "n_test": c.shape[1], "acc_mean": acc.mean(),
                         "acc_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
                         "acc_lo": float(np.quantile(c_boot, 0.025)), "acc_hi": float(np.quantile(c_boot, 0.975)),
                         "rel_impr_%": rel, "rel_lo": float(np.nanquantile(rb, 0.025)) if np.isfinite(rb).any() else np.nan,
                         "rel_hi": float(np.nanquantile(rb, 0.975)) if np.isfinite(rb).any() else np.nan})
    table = pd.DataFrame(rows)
    for m, rbs in rel_boot.items():
        t = table[table.method == m]
        finite = np.isfinite(t["rel_impr_%"].values)
        avg_boot = np.nanmean(np.stack(rbs)[finite], 0) if finite.any() else np.full(n_boot, np.nan)
        rows.append({"dataset": "average", "method": m, "seeds": int(t.seeds.max()), "n_test": int(t.n_test.sum()),
                     "acc_mean": t.acc_mean.mean(), "acc_std": np.nan, "acc_lo": np.nan, "acc_hi": np.nan,
                     "rel_impr_%": float(t["rel_impr_%"][finite].mean()) if finite.any() else np.nan,
                     "rel_lo": float(np.nanquantile(avg_boot, 0.025)) if np.isfinite(avg_boot).any() else np.nan,
                     "rel_hi": float(np.nanquantile(avg_boot, 0.975)) if np.isfinite(avg_boot).any() else np.nan})
    return pd.DataFrame(rows)
