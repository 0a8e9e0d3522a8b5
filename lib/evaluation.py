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
    prompts, conts, owner = [], [], []
    for i, e in enumerate(examples):
        for c in e.choices:
            prompts.append(answer_prompt(e))
            conts.append(" " + c)
            owner.append(i)
    lps = lm.score(prompts, conts, batch_size=batch_size, progress=progress)
    vals = [float(lp.sum() / (len(lp) if norm == "token" else 1)) for lp in lps]
    out = [[] for _ in examples]
    for i, v in zip(owner, vals):
        out[i].append(v)
    return [np.array(v) for v in out]


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


def paired_bootstrap_rel(ours: np.ndarray, base: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Relative improvement of mean(ours) over mean(base) on the same examples, with a paired 95 % interval."""
    ours, base = np.asarray(ours, float), np.asarray(base, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ours), size=(n_boot, len(ours)))
    o, b = ours[idx].mean(1), base[idx].mean(1)
    rel = 100 * (o - b) / np.where(b == 0, np.nan, b)
    return relative_improvement(ours.mean(), base.mean()), float(np.nanquantile(rel, 0.025)), float(np.nanquantile(rel, 0.975))


def zero_shot_cell(model_name: str, lm_loader, dataset: str, examples: list[Example], preset: str, batch_size: int,
                   max_new_tokens: int = 128) -> dict:
    """Zero-shot accuracy of one model on one dataset's examples, cached on disk (see common.cached_json)."""
    from .common import cached_json

    key = {"preset": preset, "model": model_name, "dataset": dataset, "ids": [e.id for e in examples],
           "max_new_tokens": max_new_tokens}

    def compute():
        r = zero_shot_accuracy(lm_loader(), examples, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=True)
        r["ci"] = bootstrap_ci(r["correct"])
        return r

    return cached_json("zero_shot", key, compute)
