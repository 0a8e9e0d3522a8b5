"""Notebook 06: where the papers' premises can hold, on pool and dev questions only (never test).

Per candidate dataset, with an exact (Clopper–Pearson) interval each:

- the student's pretrained dev accuracy (options scored, lib.evaluation);
- the LM teacher's pool accuracy with its options scored the same way;
- the attribution teacher's pool accuracy on the exact prompt it is attributed with (question and options
  listed, each option's text scored; lib.attribution.teacher_option_scores), and with lettered options.

The rule, fixed before any main-table run: a dataset can test paper A where the teacher's interval lies
above the student's pretrained accuracy and below 1 (an imperfect teacher that knows more than its
student); paper B where the attribution teacher's interval on its attribution prompt lies above chance (its
attributions explain answers that carry information). Both also need the student to learn the dataset
(notebook 05's gold-vs-shuffled test) and paper A a signal that sees the teacher's errors (notebook 11);
those are read from their notebooks where they ran.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import data
from .attribution import teacher_option_scores
from .evaluation import option_scores
from .stats import clopper_pearson


def _acc(scores: list, examples) -> tuple[float, float, float, int]:
    right = [int(np.argmax(s)) == e.label for s, e in zip(scores, examples)]
    lo, hi = clopper_pearson(sum(right), len(right))
    return float(np.mean(right)), float(lo), float(hi), len(right)


def accuracy_row(dataset: str, pool, dev, student, teacher, batch_size: int) -> dict:
    """One dataset's accuracies: the student's on `dev`, the teacher's three prompts on `pool`."""
    row = {"dataset": dataset, "kind": pool[0].kind, "chance": data.chance(pool)}
    cells = {
        "student_pretrained_dev": (option_scores(student, dev, batch_size=batch_size), dev),
        "teacher_options_pool": (option_scores(teacher, pool, batch_size=batch_size), pool),
        "teacher_attribution_prompt_pool": (
            teacher_option_scores(teacher, pool, "text", batch_size // 2),
            pool,
        ),
        "teacher_lettered_pool": (teacher_option_scores(teacher, pool, "letter", batch_size // 2), pool),
    }
    for name, (scores, exs) in cells.items():
        acc, lo, hi, n = _acc(scores, exs)
        row |= {name: acc, f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_n": n}
    return row


def judge(table: pd.DataFrame) -> pd.DataFrame:
    """The rule of the module docstring, per dataset: which premises this table can decide, and how."""
    t = table.copy()
    t["teacher_beats_student"] = (t.teacher_options_pool_lo > t.student_pretrained_dev) & (
        t.teacher_options_pool_hi < 1
    )
    t["attribution_above_chance"] = t.teacher_attribution_prompt_pool_lo > t.chance
    return t


def premise_table(P, student, teacher, n: int, seed: int = 0) -> pd.DataFrame:
    """judge(accuracy_row(...)) for every dataset of `P.premise_datasets` (notebook parameters), `n` pool and
    dev questions each (prefixes of the preset's splits)."""
    rows = []
    for d in P.premise_datasets:
        s = data.load_splits(d, P.preset, seed=seed, caps={"pool": n, "dev": n, "test": 0})
        rows.append(accuracy_row(d, s["pool"], s["dev"], student, teacher, P.data.batch_size))
    return judge(pd.DataFrame(rows))
