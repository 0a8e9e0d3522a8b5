"""Paper B students: which rationale does the student learn from? (Ballout et al. 2024)

  ft        standard fine-tuning: predict: -> answer only
  dss       Distilling Step-by-Step: explain: -> a free-text rationale (the dataset's gold explanation where
            it has one: SciQ, GSM8K, StrategyQA, MathQA; otherwise the LM teacher's chain of thought, cached)
  tokens    the paper's method in the multi-task format: explain: -> the teacher's top-k influential words
            (attribution target = gold answer); no teacher at test time
  hint      the influential words appended to the input (train and test); the teacher is needed at test
            time and, since it cannot see the gold answer there, attributes its own predicted answer; the
            share of test hints that contain the gold answer's words is reported (leakage)

All four share lib.training (same student, same budget, same dev selection, same seeds).
"""

from __future__ import annotations

import numpy as np

from .attribution import contains_gold, influential_words
from .common import ReproError, check_choice
from .config import BRun
from .models import load_shared
from .teachers import annotate, get_teacher
from .training import finetune_and_test, make_items, shuffled_answers

# shuffled: fine-tuning on gold answers permuted across questions (lib.training.shuffled_answers), the
# control a student must beat to show it learned the task, not the answer format
METHODS = ("ft", "dss", "tokens", "hint", "shuffled")


def methods_for(examples, methods=METHODS) -> tuple[str, ...]:
    """`methods` (checked; fine-tuning is every comparison's baseline) that fit the dataset of `examples`:
    `hint` needs answer options (see run); every other method fits every dataset."""
    methods = tuple(check_choice("method", m, METHODS) for m in methods)
    if "ft" not in methods:
        raise ReproError(f"methods must include 'ft', the baseline of every comparison; got {list(methods)}")
    has_options = bool(examples and examples[0].choices)
    return tuple(m for m in methods if m != "hint" or has_options)


class Rationales:
    """Lazily computed, cached rationales of every kind for one dataset's train/test examples, as a paper-B
    run config (`cfg`) says: teacher, k, attribution method, DSS generation."""

    def __init__(self, cfg: BRun, dataset: str, progress: bool = True):
        self.cfg, self.dataset, self.progress = cfg, dataset, progress
        self._lm = None

    def key(self) -> dict:
        """What of these rationales a run's cache key needs."""
        return {"teacher": self.cfg.teacher, "k": self.cfg.k, "attr_method": self.cfg.attr_method}

    def __getstate__(self):  # a Ray task receives the settings, never a loaded teacher model
        return {**self.__dict__, "_lm": None}

    def prepare(self, splits: dict, methods) -> None:
        """Every teacher output the methods' runs read, computed once before a grid fans out (the runs then
        find them in the cache): influential words, free-text rationales, hints."""
        if "tokens" in methods:
            self.words(splits["pool"], "gold")
        if "dss" in methods:
            self.free_text(splits["pool"])
        if "hint" in methods:
            for x in (splits["pool"], splits["dev"], splits["test"]):
                self.words(x, "predicted")

    @property
    def lm(self):
        if self._lm is None:
            # read-only: shared by every Rationales of the notebook
            self._lm = load_shared(self.cfg.teacher, self.cfg.precision)
        return self._lm

    def words(self, examples, target: str) -> list[str]:
        recs = influential_words(
            self.lm,
            examples,
            method=self.cfg.attr_method,
            k=self.cfg.k,
            target=target,
            batch_size=self.cfg.attr_batch_size,
            progress=self.progress,
        )
        return [" ".join(r["words"]) for r in recs]

    def free_text(self, examples) -> list[str | None]:
        """Gold explanation where the dataset has one, else the LM teacher's chain of thought."""
        missing = [e for e in examples if not e.rationale]
        demos = {}
        if missing:
            T = get_teacher(
                f"lm:{self.cfg.teacher}",
                answer_by="generate",
                max_new_tokens=self.cfg.dss_max_new_tokens,
                n_shots=self.cfg.dss_shots,
                batch_size=2 * self.cfg.attr_batch_size,
                precision=self.cfg.precision,
            )
            demos = {d.id: d for d in annotate(T, missing, self.dataset, progress=self.progress)}
        return [e.rationale or (demos[e.id].rationale or None) for e in examples]


def run(method: str, dataset: str, splits: dict, cfg: BRun, *, seed: int, n_train: int | None = None) -> dict:
    """One (method, dataset, seed) run of a paper-B student; cached via finetune_and_test."""
    check_choice("method", method, METHODS)
    if method == "hint" and not splits["test"][0].choices:
        raise ReproError(
            f"method 'hint' needs answer options (the teacher attributes its own predicted option at "
            f"test time); {dataset} has none"
        )
    pool = splits["pool"][:n_train] if n_train else splits["pool"]
    longest = max(len(e.question.split()) + sum(len(c.split()) for c in e.choices or []) for e in pool)
    R = Rationales(cfg, dataset)
    if cfg.k > longest:
        raise ReproError(f"k={cfg.k} is larger than the longest input ({longest} words in {dataset})")
    dev, test = splits["dev"], splits["test"]
    answers = [e.answer for e in pool]
    hints = test_hints = dev_hints = None
    if method == "ft":
        items = make_items(pool, answers, [None] * len(pool), fmt="answer_only")
    elif method == "shuffled":
        items = make_items(pool, shuffled_answers(pool, seed), [None] * len(pool), fmt="answer_only")
    elif method == "dss":
        items = make_items(pool, answers, R.free_text(pool), alpha=cfg.alpha)
    elif method == "tokens":
        items = make_items(pool, answers, R.words(pool, "gold"), alpha=cfg.alpha)
    else:
        hints, dev_hints, test_hints = (R.words(x, "predicted") for x in (pool, dev, test))
        items = make_items(pool, answers, [None] * len(pool), fmt="answer_only", hints=hints)
    fmt = "answer_only" if method in ("ft", "hint", "shuffled") else "multitask"
    r = finetune_and_test(
        cfg.student,
        items,
        dev,
        test,
        seed=seed,
        cfg=cfg.train,
        precision=cfg.precision,
        fmt=fmt,
        test_hints=test_hints,
        dev_hints=dev_hints,
    )
    if method == "hint":
        r = {
            **r,
            "hint_leak": float(np.mean([contains_gold(h.split(), e) for h, e in zip(test_hints, test)])),
        }
    return r
