"""Zero-shot accuracy by task kind.

- options (mc, yes/no): argmax over options of the length-normalised log-likelihood of the option
  text after `answer_prompt` (mean token log-prob by default; `norm="sum"` for the raw sum);
- free-form numbers: greedy chain-of-thought, the parsed final answer compared with the gold;
- intervals: exact (Clopper–Pearson) for a single accuracy (lib.stats).
"""

from __future__ import annotations

import numpy as np

from .data import Example
from .prompts import answer_prompt, cot_prompt, is_correct, parse_answer

# bump when a zero-shot cell's answers for the same config change: cached cells recompute
ZERO_SHOT_VERSION = 2


def option_scores(
    lm, examples: list[Example], norm: str = "token", batch_size: int = 16, progress: bool = False
) -> list[np.ndarray]:
    """Per example, the score of each option (higher is more likely)."""
    lps = lm.score_options(
        [answer_prompt(e) for e in examples],
        [[" " + c for c in e.choices] for e in examples],
        batch_size=batch_size * 4,
        progress=progress,
    )
    return [np.array([float(lp.sum() / (len(lp) if norm == "token" else 1)) for lp in per]) for per in lps]


def predict_options(lm, examples: list[Example], **kw) -> list[str]:
    return [e.choices[int(np.argmax(s))] for e, s in zip(examples, option_scores(lm, examples, **kw))]


def predict_cot(
    lm, examples: list[Example], *, max_new_tokens: int, batch_size: int = 16, progress: bool = False
) -> tuple[list[str | None], list[str]]:
    """Greedy chain-of-thought: (parsed answers, raw generations)."""
    gens = lm.generate(
        [cot_prompt(e) for e in examples],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    return [parse_answer(g, e) for g, e in zip(gens, examples)], gens


def zero_shot_accuracy(
    lm, examples: list[Example], *, max_new_tokens: int, batch_size: int = 16, progress: bool = False
) -> dict:
    """Accuracy (and per-example correctness) by the method fitting the task kind."""
    if not examples:
        return {"acc": float("nan"), "n": 0, "correct": [], "method": "-"}
    if examples[0].choices:
        preds = predict_options(lm, examples, batch_size=batch_size, progress=progress)
        method = "option log-likelihood"
    else:
        preds, _ = predict_cot(
            lm, examples, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress
        )
        method = "greedy chain-of-thought"
    correct = [is_correct(p, e) for p, e in zip(preds, examples)]
    return {
        "acc": float(np.mean(correct)),
        "n": len(correct),
        "correct": correct,
        "method": method,
        "unparsed": sum(p is None for p in preds),
    }


def zero_shot_cell(
    model_name: str,
    lm_loader,
    dataset: str,
    examples: list[Example],
    preset: str,
    *,
    batch_size: int,
    max_new_tokens: int,
    precision: str = "fp32",
) -> dict:
    """Zero-shot accuracy of one model (loaded by `lm_loader` at `precision`) on one dataset's examples,
    cached on disk (see common.cached_json)."""
    from .common import cached_json
    from .config import run_preset
    from .stats import clopper_pearson

    key = {
        "preset": run_preset(preset),
        "model": model_name,
        "dataset": dataset,
        "ids": [e.id for e in examples],
        "max_new_tokens": max_new_tokens,
        **({"precision": precision} if precision != "fp32" else {}),
    }

    def compute():
        r = zero_shot_accuracy(
            lm_loader(), examples, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=True
        )
        r["ci"] = [float(x) for x in clopper_pearson(sum(r["correct"]), len(r["correct"]))]
        return r

    return cached_json("zero_shot", key, compute, version=ZERO_SHOT_VERSION)
