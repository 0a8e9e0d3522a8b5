"""Paper B students: which rationale does the student learn from? (Ballout et al. 2024, DESIGN.md)

  ft        standard fine-tuning: predict: -> answer only
  dss       Distilling Step-by-Step: explain: -> a free-text rationale (the dataset's gold explanation where
            it has one: StrategyQA, GSM8K, MathQA; otherwise the LM teacher's chain of thought, cached)
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
from .models import load_shared
from .teachers import annotate, get_teacher
from .training import finetune_and_test, make_items

METHODS = ("ft", "dss", "tokens", "hint")


def methods_for(examples) -> tuple[str, ...]:
    """`hint` needs answer options (see run); every other method fits every dataset."""
    return METHODS if examples and examples[0].choices else METHODS[:3]
PAPER_DSS_T5_BASE = {  # Hsieh et al. 2023, T5-Base, accuracy %: printed beside ours for scale only
    "standard fine-tuning": {"esnli": 88.38, "anli": 43.58, "commonsense_qa": 62.19, "svamp": 62.63},
    "DSS (PaLM rationales)": {"esnli": 89.51, "anli": 49.58, "commonsense_qa": 63.29, "svamp": 65.50},
}


class Rationales:
    """Lazily computed, cached rationales of every kind for one dataset's train/test examples."""

    def __init__(self, teacher_model: str, dataset: str, k: int = 5, method: str = "saliency", batch_size: int = 8,
                 progress: bool = True):
        self.teacher_model, self.dataset, self.k, self.method = teacher_model, dataset, k, method
        self.batch_size, self.progress = batch_size, progress
        self._lm = None

    @property
    def lm(self):
        if self._lm is None:
            self._lm = load_shared(self.teacher_model)  # read-only: shared by every Rationales of the notebook
        return self._lm

    def words(self, examples, target: str = "gold", k: int | None = None) -> list[str]:
        recs = influential_words(self.lm, examples, method=self.method, k=k or self.k, target=target,
                                 batch_size=self.batch_size, progress=self.progress)
        return [" ".join(r["words"]) for r in recs]

    def free_text(self, examples) -> list[str | None]:
        """Gold explanation where the dataset has one, else the LM teacher's chain of thought."""
        missing = [e for e in examples if not e.rationale]
        demos = {}
        if missing:
            T = get_teacher(f"lm:{self.teacher_model}")
            demos = {d.id: d for d in annotate(T, missing, self.dataset, progress=self.progress)}
        return [e.rationale or (demos[e.id].rationale or None) for e in examples]


def run(method: str, dataset: str, splits: dict, R: Rationales, *, student: str, seed: int, preset: str,
        n_train: int | None = None, alpha: float = 0.5, **train_kw) -> dict:
    """One (method, dataset, seed) run of a paper-B student; cached via finetune_and_test."""
    check_choice("method", method, METHODS)
    if method == "hint" and not splits["test"][0].choices:
        raise ReproError(f"method 'hint' needs answer options (the teacher attributes its own predicted option at "
                         f"test time); {dataset} has none")
    train = splits["pool"][:n_train] if n_train else splits["pool"]
    longest = max(len(e.question.split()) + sum(len(c.split()) for c in e.choices or []) for e in train)
    if R.k > longest:
        raise ReproError(f"k={R.k} is larger than the longest input ({longest} words in {dataset})")
    dev, test = splits["dev"], splits["test"]
    answers = [e.answer for e in train]
    hints = test_hints = dev_hints = None
    if method == "ft":
        items = make_items(train, answers, [None] * len(train), fmt="answer_only")
    elif method == "dss":
        items = make_items(train, answers, R.free_text(train), alpha=alpha)
    elif method == "tokens":
        items = make_items(train, answers, R.words(train, "gold"), alpha=alpha)
    else:
        hints, dev_hints, test_hints = (R.words(x, "predicted") for x in (train, dev, test))
        items = make_items(train, answers, [None] * len(train), fmt="answer_only", hints=hints)
    key = {"paper": "B", "method": method, "dataset": dataset, "seed": seed, "preset": preset, "alpha": alpha,
           "teacher": R.teacher_model, "k": R.k, "attr_method": R.method}
    r = finetune_and_test(student, items, dev, test, key=key, fmt="answer_only" if method in ("ft", "hint") else "multitask",
                          test_hints=test_hints, dev_hints=dev_hints, seed=seed, **train_kw)
    if method == "hint":
        r = {**r, "hint_leak": float(np.mean([contains_gold(h.split(), e) for h, e in zip(test_hints, test)]))}
    return r


# ---------------------------------------------------------------- beyond both papers: a weak teacher + paper A's TA

WEAK_VARIANTS = ("ft_teacher", "tokens_teacher", "tokens_ta_weight", "tokens_ta_filter")


def weak_teacher_signals(R: Rationales, ta_model: str, examples) -> dict:
    """The LM teacher without the gold label: its predicted option, the words it attributes that answer to,
    whether it is right, and the TA's confidence in its answer (paper A's third signal), per example."""
    from .attribution import option_scores
    from .signals import ta_confidence

    pred = [int(np.argmax(s)) for s in option_scores(R.lm, examples, progress=R.progress)]
    answers = [e.choices[i] for e, i in zip(examples, pred)]
    ta = load_shared(ta_model)
    conf = ta_confidence(ta, examples, answers)
    return {"answers": answers, "words": R.words(examples, "predicted"), "correct": [i == e.label for e, i in zip(examples, pred)],
            "ta_conf": conf}


def run_weak(variant: str, dataset: str, splits: dict, R: Rationales, sig: dict, *, student: str, seed: int, preset: str,
             alpha: float = 0.5, filter_q: float = 0.3, **train_kw) -> dict:
    """A student taught only by the weak teacher (its answers, and for tokens_* its influential words):
    uniform, weighted by the TA's confidence in the teacher's answer (mean 1), or with the filter_q share of
    least-trusted examples dropped. `sig` = weak_teacher_signals(...) on splits["pool"]."""
    from .signals import demo_weights

    check_choice("variant", variant, WEAK_VARIANTS)
    train, dev, test = splits["pool"], splits["dev"], splits["test"]
    conf = np.asarray(sig["ta_conf"], float)
    weights = None
    if variant == "tokens_ta_weight":
        weights = demo_weights(conf, "weight").tolist()
    elif variant == "tokens_ta_filter":
        weights = demo_weights(conf, "filter", filter_q=filter_q).tolist()
    if variant == "ft_teacher":
        items = make_items(train, sig["answers"], [None] * len(train), fmt="answer_only")
    else:
        items = make_items(train, sig["answers"], sig["words"], alpha=alpha, weights=weights)
    key = {"paper": "B-weak", "variant": variant, "dataset": dataset, "seed": seed, "preset": preset, "alpha": alpha,
           "teacher": R.teacher_model, "k": R.k, "attr_method": R.method, "filter_q": filter_q}
    r = finetune_and_test(student, items, dev, test, key=key, fmt="answer_only" if variant == "ft_teacher" else "multitask",
                          seed=seed, **train_kw)
    kept = [w > 0 for w in weights] if weights else [True] * len(train)
    return {**r, "teacher_acc_trained": float(np.mean([c for c, k in zip(sig["correct"], kept) if k]))}
