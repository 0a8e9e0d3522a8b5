"""Beyond both papers: a weak teacher's influential tokens (paper B) weighted by a TA (paper A).

The LM teacher answers without the gold label; a student learns its answers and, for the tokens_* variants,
the words the teacher attributes its own answer to. Paper A's third signal, the TA's confidence in the
teacher's output, then weights those examples (mean 1) or drops the least-trusted share. This module is
where the two papers' cores meet: neither imports the other.

  ft_teacher        predict: -> the teacher's answer (no rationale)
  tokens_teacher    + explain: -> its influential words, uniform weights
  tokens_ta_weight  + weights = TA confidence in the teacher's answer, normalised to mean 1
  tokens_ta_filter  + the `filter_q` share of least-trusted examples dropped
"""

from __future__ import annotations

import numpy as np

from .attribution import teacher_option_scores
from .common import check_choice
from .config import BRun
from .models import load_shared
from .rationales import Rationales
from .signals import demo_weights, ta_confidence
from .training import finetune_and_test, make_items

VARIANTS = ("ft_teacher", "tokens_teacher", "tokens_ta_weight", "tokens_ta_filter")


def teacher_signals(R: Rationales, ta_model: str, examples, *, ta_shots: int, ta_span: str) -> dict:
    """Per example: its id, the teacher's predicted option, the words it attributes that answer to,
    whether it is right, and the TA's confidence in its answer."""
    pred = [int(np.argmax(s)) for s in teacher_option_scores(R.lm, examples, progress=R.progress)]
    answers = [e.choices[i] for e, i in zip(examples, pred)]
    conf = ta_confidence(
        load_shared(ta_model, R.cfg.precision), examples, answers, n_shots=ta_shots, span=ta_span
    )
    return {
        "ids": [e.id for e in examples],
        "answers": answers,
        "words": R.words(examples, "predicted"),
        "correct": [i == e.label for e, i in zip(examples, pred)],
        "ta_conf": conf,
    }


def run(
    variant: str, dataset: str, splits: dict, cfg: BRun, sig: dict, *, seed: int, filter_q: float
) -> dict:
    """A student taught only by the weak teacher; `sig` = teacher_signals(...) on splits["pool"]."""
    check_choice("variant", variant, VARIANTS)
    pool, dev, test = splits["pool"], splits["dev"], splits["test"]
    conf = np.asarray(sig["ta_conf"], float)
    weights = None
    if variant == "tokens_ta_weight":
        weights = demo_weights(conf, "weight").tolist()
    elif variant == "tokens_ta_filter":
        weights = demo_weights(conf, "filter", filter_q=filter_q).tolist()
    if variant == "ft_teacher":
        items = make_items(pool, sig["answers"], [None] * len(pool), fmt="answer_only")
    else:
        items = make_items(pool, sig["answers"], sig["words"], alpha=cfg.alpha, weights=weights)
    fmt = "answer_only" if variant == "ft_teacher" else "multitask"
    r = finetune_and_test(
        cfg.student, items, dev, test, fmt=fmt, seed=seed, cfg=cfg.train, precision=cfg.precision
    )
    kept = [w > 0 for w in weights] if weights else [True] * len(pool)
    return {**r, "teacher_acc_trained": float(np.mean([c for c, k in zip(sig["correct"], kept) if k]))}
