"""Paper A: Teaching-Assistant-in-the-Loop (Zhou & Ai 2024), the "query budget" mode.

  plain      B random pool questions -> teacher demonstrations -> fine-tune, uniform weights
  one_stage  signals from the un-warmed student on the whole pool choose the B questions of highest need
  two_stage  1. ρ·B random questions -> teacher -> warm the student up (fine-tune)
             2. the warmed student's signals over the rest of the pool (no teacher cost):
                need = mean(1 − self_consistency, 1 − ta_confidence(student output))
                -> query the teacher on the (1−ρ)·B questions of highest need
             3. weight every bought demonstration by ta_confidence(teacher output) (mean 1), or drop
                those below τ; fine-tune stage 2 (from the warmed student) on all bought demonstrations

`signals` picks which of the three are used (ablations); with no student signal the stage-2 questions
are random, with no teacher signal the weights are uniform. Every run's result (not the weights) is
cached under a key of all its inputs: a rerun or resumed run recomputes nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace

import numpy as np

from .common import ReproError, cached_json, check_choice, stable_hash
from .config import TARun
from .data import Example
from .models import load_model, load_shared
from .prompts import is_correct
from .signals import demo_weights, need_score, self_consistency, ta_confidence
from .teachers import annotate, get_teacher
from .training import lm_student, make_items, predict_prompt, start_dev_accuracy, train, train_and_test

# shuffled: plain's questions and demonstrations, each question given another's demonstration (its answer
# at the same option position): the control a student must beat to show it learned more than the format
METHODS = ("plain", "one_stage", "two_stage", "shuffled")
SIGNALS = ("sc", "ta_student", "ta_teacher")
VERSION = 8  # bump when a run's definition changes: cached runs are then recomputed


def methods(names=METHODS) -> tuple[str, ...]:
    """The paper-A methods of a table, checked: plain fine-tuning is every comparison's baseline."""
    names = tuple(check_choice("method", m, METHODS) for m in names)
    if "plain" not in names:
        raise ReproError(f"methods must include 'plain', the baseline of every comparison; got {list(names)}")
    return names


def _check(method: str, run: TARun) -> None:
    check_choice("method", method, METHODS)
    for s in run.signals:
        check_choice("signal", s, SIGNALS)
    check_choice("use", run.use, ("weight", "filter"))
    check_choice("stage2_from", run.stage2_from, ("warm", "scratch"))
    if run.budget <= 0:
        raise ReproError(f"budget must be positive, got {run.budget}")
    if not 0 < run.rho < 1:
        raise ReproError(f"rho must be in (0, 1), got {run.rho}")
    if run.K < 1:
        raise ReproError(f"K must be >= 1, got {run.K}")


def _items(examples, demos, run: TARun, weights=None):
    keep = [i for i, d in enumerate(demos) if d.answer is not None]  # an unparseable demo teaches nothing
    w = None if weights is None else [weights[i] for i in keep]
    return make_items(
        [examples[i] for i in keep],
        [demos[i].answer for i in keep],
        [demos[i].rationale for i in keep],
        fmt=run.fmt,
        alpha=run.alpha,
        weights=w,
    )


def shuffled_demos(examples: list[Example], demos: list, seed: int) -> list:
    """The shuffled-label control of a run's demonstrations: question i gets the rationale and answer of
    another question's demonstration; an option answer moves to the same option position among question
    i's own options, so the target is still one of its options. `correct` is judged against question i."""

    perm = np.random.default_rng(seed).permutation(len(examples))
    out = []
    for e, j in zip(examples, perm):
        o, d = examples[int(j)], demos[int(j)]
        ans = d.answer
        if e.choices and o.choices and ans in o.choices:
            ans = e.choices[o.choices.index(ans) % len(e.choices)]
        out.append(replace(d, id=e.id, answer=ans, correct=is_correct(ans, e), true_correct=None))
    return out


def student_signals(student, ta, examples, run: TARun, seed: int, warmed: bool) -> dict:
    """Self-consistency and the TA's confidence in the student's output, per candidate question.

    A warmed student answers in its training format; an un-warmed one gets the question with its options and
    `cot_shots` chain-of-thought exemplars (the K samples share one prefill of the prompt). Every seed draws
    its own samples: the seed is what makes repeated runs of one method differ, so seeds that shared one
    draw would make the spread over seeds look smaller than it is."""
    numeric = bool(examples) and examples[0].kind == "numeric"
    cot_len = run.cot_max_new_tokens_numeric if numeric else run.cot_max_new_tokens
    sc = self_consistency(
        student,
        examples,
        K=run.K,
        temperature=run.temperature,
        seed=seed,
        max_new_tokens=run.sc_max_new_tokens if warmed else cot_len,
        prompt_fn=predict_prompt if warmed else None,
        n_shots=run.cot_shots,
        batch_size=run.train.eval_batch_size,
        answer_by=run.sc_answer_by,
    )
    conf = ta_confidence(
        ta,
        examples,
        sc["output"],
        n_shots=run.ta_shots,
        span=run.ta_span,
        batch_size=run.train.eval_batch_size,
    )
    # parsed: the share of samples with an answer (an unparseable one counts as disagreeing with the majority)
    parsed = float(np.mean([a is not None for x in sc["answers"] for a in x]))
    return {
        "sc": np.asarray(sc["sc"], float),
        "ta_student": np.asarray(conf, float),
        "parsed": parsed,
        # whether the student's majority answer is right: what its signals are meant to foresee
        "right": [is_correct(m, e) for m, e in zip(sc["majority"], examples)],
    }


def need(sig: dict, signals) -> np.ndarray | None:
    return need_score(*(sig[s] if s in signals else None for s in ("sc", "ta_student")))


def _choose(candidates: list[Example], need_, n: int, rng) -> list[int]:
    order = rng.permutation(len(candidates))  # random tie-break / random choice without signals
    if need_ is None:
        return [int(i) for i in order[:n]]
    return [int(i) for i in sorted(order, key=lambda i: -need_[i])[:n]]


def run(method: str, dataset: str, splits: dict, cfg: TARun, *, seed: int, progress: bool = True) -> dict:
    """One (method, dataset, seed) run; returns test accuracy, per-example correctness and diagnostics."""
    _check(method, cfg)
    pool, dev, test = splits["pool"], splits["dev"], splits["test"]
    B = min(cfg.budget, len(pool))
    T = get_teacher(cfg.teacher, cfg.teacher_settings, pool=pool)
    # the run's config object is its key, with what it draws from (data, seed) and the teacher's own config
    key = {
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "cfg": asdict(cfg),
        "teacher_config": T.config(),
        "pool": stable_hash([e.id for e in pool]),
        "dev": stable_hash([e.id for e in dev]),
        "test": stable_hash([e.id for e in test]),
    }

    def compute():
        t0 = time.time()
        rng = np.random.default_rng(seed)
        lm = load_model(cfg.student, cfg.precision)
        # the TA is read-only and never the student object, also when it is the same pretrained model: the
        # student trains in place, and a TA that trained with it would judge outputs with the student's eyes
        ta_lm = load_shared(cfg.ta, cfg.precision)
        bs = cfg.train.eval_batch_size
        student = lambda items: lm_student(lm, items, fmt=cfg.fmt, batch_size=bs)  # noqa: E731
        diag = {}
        uses_student = "sc" in cfg.signals or "ta_student" in cfg.signals
        # the pretrained student's dev accuracy is the same in every run: computed once (cached), not per run
        zero_dev = start_dev_accuracy(lm, cfg.student, dev, fmt=cfg.fmt, batch_size=bs)
        start = zero_dev
        steps = 0  # optimizer steps before the final stage (two-stage's warm-up)
        if method in ("plain", "shuffled"):
            chosen = [pool[i] for i in rng.permutation(len(pool))[:B]]
        elif method == "one_stage":
            n = None
            if uses_student:
                sig = student_signals(lm, ta_lm, pool, cfg, seed, warmed=False)
                n, diag["sc_parsed"] = need(sig, cfg.signals), sig["parsed"]
            chosen = [pool[i] for i in _choose(pool, n, B, rng)]
        else:
            n1 = max(1, round(cfg.rho * B))
            perm = rng.permutation(len(pool))
            stage1 = [pool[i] for i in perm[:n1]]
            rest = [pool[i] for i in perm[n1:]]
            d1 = annotate(T, stage1, dataset, progress=progress)
            h1 = train(
                student(_items(stage1, d1, cfg)),
                cfg.train,
                seed,
                dev,
                start_dev_acc=zero_dev,
                progress=progress,
            )
            # train() returns its dev-selected model: stage 2 starts there
            diag["warm"] = start = h1["best_dev_acc"]
            steps = h1["steps"]
            n = None
            if uses_student:
                sig = student_signals(lm, ta_lm, rest, cfg, seed, warmed=True)
                n, diag["sc_parsed"] = need(sig, cfg.signals), sig["parsed"]
                # two-stage's premise: these signals tell which questions the warmed student gets wrong
                diag["warm_signals"] = {
                    "id": [e.id for e in rest],
                    **{s: np.round(sig[s], 6).tolist() for s in ("sc", "ta_student") if s in cfg.signals},
                    "right": sig["right"],
                }
            chosen = stage1 + [rest[i] for i in _choose(rest, n, B - n1, rng)]
            if cfg.stage2_from == "scratch":
                lm, start = load_model(cfg.student, cfg.precision), zero_dev
        demos = annotate(T, chosen, dataset, progress=progress)
        if method == "shuffled":
            demos = shuffled_demos(chosen, demos, seed)
        weights = None
        if method in ("one_stage", "two_stage") and "ta_teacher" in cfg.signals:
            conf = ta_confidence(
                ta_lm,
                chosen,
                [d.text() for d in demos],
                n_shots=cfg.ta_shots,
                span=cfg.ta_span,
                batch_size=bs,
            )
            weights = demo_weights(conf, cfg.use, filter_q=cfg.filter_q).tolist()
            right = [w for w, d in zip(weights, demos) if d.correct]
            wrong = [w for w, d in zip(weights, demos) if not d.correct]
            diag["weight_teacher_correct"] = float(np.mean(right)) if right else float("nan")
            diag["weight_teacher_wrong"] = float(np.mean(wrong)) if wrong else float("nan")
        items = _items(chosen, demos, cfg, weights)
        # equal compute: every method takes round(epochs x ceil(B / batch)) optimizer steps in all, whatever
        # its demonstrations without an answer dropped; two-stage's warm-up steps come out of its stage 2
        target = round(cfg.train.epochs * math.ceil(B / cfg.train.batch_size))
        per_epoch = max(1, math.ceil(len(items) / cfg.train.batch_size))
        final = replace(cfg.train, epochs=max(1, target - steps) / per_epoch)
        r = train_and_test(student(items), final, seed, dev, test, start_dev_acc=start, progress=progress)
        kept = [
            d.answer is not None and (weights is None or w > 0)
            for d, w in zip(demos, weights or [1.0] * len(demos))
        ]
        return {
            **r,
            "zero_shot_dev": zero_dev,
            # trained: the dev-selected student beats the pretrained one on dev
            "trained": bool(r["best_dev"] > zero_dev),
            "steps": steps + r["steps"],
            "teacher_acc_bought": float(np.mean([d.correct for d in demos])),
            # what the run learned from: the demonstrations bought, the teacher's answers and their weights
            "bought": stable_hash(
                [[e.id for e in chosen], [d.answer for d in demos], [round(w, 6) for w in weights or []]], 16
            ),
            "n_bought": len(demos),
            "n_trained": int(sum(kept)),
            **diag,
            "seconds": time.time() - t0,
        }

    return cached_json("ta_run", key, compute, version=VERSION)


WARM_SIGNALS = {"sc": "self-consistency", "ta_student": "TA confidence in the student", "need": "1 - need"}


def warm_signal_rows(grid: list[dict], results: list[dict]):
    """Per question two-stage chose among, per run: each signal of the warmed student (and 1 - need over
    the signals the run used, the order two-stage buys in reversed) as `score`, with whether the student's
    majority answer is right as `correct`; columns dataset, seed, id, signal, score, correct."""
    import pandas as pd

    rows = []
    for c, r in zip(grid, results):
        w = r.get("warm_signals")
        if not w:
            continue
        used = {s: np.asarray(w[s], float) for s in ("sc", "ta_student") if s in w}
        scores = used | {"need": 1 - need_score(*(used.get(s) for s in ("sc", "ta_student")))}
        for s, v in scores.items():
            rows += [
                {"dataset": c["dataset"], "seed": c["seed"], "id": i, "signal": WARM_SIGNALS[s]}
                | {"score": float(x), "correct": bool(y)}
                for i, x, y in zip(w["id"], v, w["right"])
            ]
    return pd.DataFrame(rows, columns=["dataset", "seed", "id", "signal", "score", "correct"])


def buy_pool(dataset: str, splits: dict, cfg: TARun) -> None:
    """The teacher's demonstrations for the whole pool, once per dataset before a grid fans out: every run
    then reads them from the teacher's cache instead of asking it in parallel. Only for teachers that cost
    nothing per question (simulated, local LM): an API teacher is asked per run, for the questions it buys."""
    T = get_teacher(cfg.teacher, cfg.teacher_settings, pool=splits["pool"])
    if not cfg.teacher.startswith("openai:"):
        annotate(T, splits["pool"], dataset)


def ablation_grid(P) -> list[tuple[str, str, str, dict]]:
    """(group, label, method, TARun overrides) for notebook 13, from notebook parameters `P` (config section
    "a"): signal subsets, weighting vs filtering (`ablation_uses`), ρ (`ablation_rhos`), K (`ablation_Ks`),
    the budget times `ablation_budget_factors`, and ε (`ablation_epsilons`, the simulated hard teacher's
    error rates)."""
    from itertools import combinations

    grid = [
        ("signals", "+".join(c), "two_stage", {"signals": tuple(c)})
        for r in (1, 2, 3)
        for c in combinations(SIGNALS, r)
    ]
    grid += [("use", u, "two_stage", {"use": u}) for u in P.ablation_uses]
    grid += [("rho", str(r), "two_stage", {"rho": r}) for r in P.ablation_rhos]
    grid += [("K", str(k), "two_stage", {"K": k}) for k in P.ablation_Ks]
    for b in (max(1, round(P.budget * f)) for f in P.ablation_budget_factors):
        grid += [("budget", str(b), m, {"budget": b}) for m in ("plain", "two_stage")]
    # the controlled ε experiment: errors fall on the questions the reference model finds hardest
    for eps in P.ablation_epsilons:
        grid += [
            ("epsilon", str(eps), m, {"teacher": f"simulated:{eps}:hard"}) for m in ("plain", "two_stage")
        ]
    return grid
