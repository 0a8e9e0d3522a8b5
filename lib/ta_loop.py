"""Paper A: Teaching-Assistant-in-the-Loop (Zhou & Ai 2024), "query budget" mode (DESIGN.md).

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

import time

import numpy as np

from .common import ReproError, cached_json, check_choice, stable_hash
from .data import Example
from .models import load_model
from .signals import demo_weights, need_score, self_consistency, ta_confidence
from .teachers import annotate, get_teacher
from .training import make_items, predict_prompt, score_test, start_dev_accuracy, train

METHODS = ("plain", "one_stage", "two_stage")
SIGNALS = ("sc", "ta_student", "ta_teacher")
VERSION = 3  # 2: un-warmed signals sampled with a fixed seed; 3: the pretrained student's dev accuracy cached once

DEFAULTS = dict(budget=64, rho=0.2, signals=SIGNALS, use="weight", filter_q=0.3, K=4, temperature=0.7,
                sc_max_new_tokens=12, cot_max_new_tokens=64, cot_shots=0, alpha=0.5, fmt="multitask", epochs=2, lr=5e-5, batch_size=8, stage2_from="warm")


def _check(method, p):
    check_choice("method", method, METHODS)
    for s in p["signals"]:
        check_choice("signal", s, SIGNALS)
    check_choice("use", p["use"], ("weight", "filter"))
    if p["budget"] <= 0:
        raise ReproError(f"budget must be positive, got {p['budget']}")
    if not 0 < p["rho"] < 1:
        raise ReproError(f"rho must be in (0, 1), got {p['rho']}")
    if p["K"] < 1:
        raise ReproError(f"K must be >= 1, got {p['K']}")


def _items(examples, demos, p, weights=None):
    keep = [i for i, d in enumerate(demos) if d.answer is not None]  # an unparseable demo teaches nothing
    w = None if weights is None else [weights[i] for i in keep]
    return make_items([examples[i] for i in keep], [demos[i].answer for i in keep],
                      [demos[i].rationale for i in keep], fmt=p["fmt"], alpha=p["alpha"], weights=w)


def _need(student, ta, examples, p, seed, warmed: bool):
    """Need of every candidate question from the student's signals (random order if none is used)."""
    out = {}
    if "sc" in p["signals"] or "ta_student" in p["signals"]:
        # a warmed student answers in its training format; an un-warmed one gets the question with its options
        # and `cot_shots` chain-of-thought exemplars (offline: 2; with 0 SmolLM2 ends its answer at once; the
        # K samples share one prefill of the prompt, see LM._generate_shared_prefill)
        # the un-warmed student is the same pretrained model in every run, so its samples use one fixed seed
        # and are cached once per pool (their cost would otherwise repeat in every seed and ablation)
        sc = self_consistency(student, examples, K=p["K"], temperature=p["temperature"], seed=seed if warmed else 0,
                              max_new_tokens=p["sc_max_new_tokens"] if warmed else p["cot_max_new_tokens"],
                              prompt_fn=predict_prompt if warmed else None, n_shots=p["cot_shots"],
                              batch_size=p["eval_batch_size"])
        out["sc"] = np.asarray(sc["sc"], float)
        out["ta_student"] = np.asarray(ta_confidence(ta, examples, sc["output"], batch_size=p["eval_batch_size"]), float)
    parts = []
    if "sc" in p["signals"]:
        parts.append(1 - out["sc"])
    if "ta_student" in p["signals"]:
        parts.append(1 - out["ta_student"])
    out["need"] = np.mean(parts, 0) if parts else None
    if "sc" in p["signals"] and "ta_student" in p["signals"]:
        assert np.allclose(out["need"], need_score(out["sc"], out["ta_student"]))
    return out


def _choose(candidates: list[Example], need, n: int, rng) -> list[int]:
    order = rng.permutation(len(candidates))  # random tie-break / random choice without signals
    if need is None:
        return [int(i) for i in order[:n]]
    return [int(i) for i in sorted(order, key=lambda i: -need[i])[:n]]


def run(method: str, dataset: str, splits: dict, *, teacher: str, student: str, ta: str, seed: int, preset: str,
        progress: bool = True, **params) -> dict:
    """One (method, dataset, seed) run; returns test accuracy, per-example correctness and diagnostics."""
    p = {**DEFAULTS, "eval_batch_size": 16, **params}
    p["signals"] = tuple(p["signals"])
    _check(method, p)
    pool, dev, test = splits["pool"], splits["dev"], splits["test"]
    B = min(p["budget"], len(pool))
    key = {"method": method, "dataset": dataset, "teacher": teacher, "student": student, "ta": ta, "seed": seed,
           "preset": preset, "params": p, "pool": stable_hash([e.id for e in pool]),
           "dev": stable_hash([e.id for e in dev]), "test": stable_hash([e.id for e in test])}

    def compute():
        t0 = time.time()
        rng = np.random.default_rng(seed)
        T = get_teacher(teacher)
        lm = load_model(student)
        ta_lm = load_model(ta) if ta != student else lm
        train_kw = dict(epochs=p["epochs"], lr=p["lr"], batch_size=p["batch_size"], seed=seed, dev=dev, fmt=p["fmt"],
                        eval_batch_size=p["eval_batch_size"], progress=progress)
        diag = {}
        # the pretrained student's dev accuracy is the same in every run: computed once (cached), not per run
        zero_dev = start_dev_accuracy(lm, student, dev, fmt=p["fmt"], batch_size=p["eval_batch_size"])
        start, pretrained = zero_dev, True  # pretrained: lm still holds the pretrained weights
        if method == "plain":
            chosen = [pool[i] for i in rng.permutation(len(pool))[:B]]
        elif method == "one_stage":
            sig = _need(lm, ta_lm, pool, p, seed, warmed=False)
            chosen = [pool[i] for i in _choose(pool, sig["need"], B, rng)]
        else:
            n1 = max(1, round(p["rho"] * B))
            perm = rng.permutation(len(pool))
            stage1 = [pool[i] for i in perm[:n1]]
            rest = [pool[i] for i in perm[n1:]]
            d1 = annotate(T, stage1, dataset, progress=progress)
            h1 = train(lm, _items(stage1, d1, p), start_dev_acc=zero_dev, **train_kw)
            diag["warm"] = start = h1["best_dev_acc"]  # train() returns its dev-selected model: stage 2 starts there
            pretrained = h1["kept_start"]
            sig = _need(lm, ta_lm, rest, p, seed, warmed=True)
            chosen = stage1 + [rest[i] for i in _choose(rest, sig["need"], B - n1, rng)]
            if p["stage2_from"] == "scratch":
                lm, start, pretrained = load_model(student), zero_dev, True
        demos = annotate(T, chosen, dataset, progress=progress)
        weights = None
        if method != "plain" and "ta_teacher" in p["signals"]:
            conf = ta_confidence(ta_lm, chosen, [d.text() for d in demos], batch_size=p["eval_batch_size"])
            weights = demo_weights(conf, p["use"], filter_q=p["filter_q"]).tolist()
            diag["weight_teacher_correct"] = float(np.mean([w for w, d in zip(weights, demos) if d.correct] or [np.nan]))
            diag["weight_teacher_wrong"] = float(np.mean([w for w, d in zip(weights, demos) if not d.correct] or [np.nan]))
        hist = train(lm, _items(chosen, demos, p, weights), start_dev_acc=start, **train_kw)
        acc, correct = score_test(lm, student, test, pretrained=pretrained and hist["kept_start"], fmt=p["fmt"],
                                  batch_size=p["eval_batch_size"])
        return {"test_acc": acc, "correct": correct, "zero_shot_dev": zero_dev, "best_dev": hist["best_dev_acc"],
                "best_epoch": hist["best_epoch"], "teacher_acc_bought": float(np.mean([d.correct for d in demos])),
                "n_bought": len(demos), "n_trained": int(sum(1 for d in demos if d.answer is not None) if weights is None
                                                        else sum(1 for d, w in zip(demos, weights) if d.answer is not None and w > 0)),
                "seconds": time.time() - t0, **diag}

    return cached_json("ta_run", key, compute, version=VERSION)


def ablation_grid(budget: int, teacher: str) -> list[tuple[str, str, str, dict]]:
    """(group, label, method, overrides) for notebook 13: signals, weighting vs filtering, ρ, B, K, ε."""
    from itertools import combinations

    grid = [("signals", "+".join(c), "two_stage", {"signals": c}) for r in (1, 2, 3) for c in combinations(SIGNALS, r)]
    grid += [("use", u, "two_stage", {"use": u}) for u in ("weight", "filter")]
    grid += [("rho", str(r), "two_stage", {"rho": r}) for r in (0.1, 0.2, 0.4)]
    grid += [("K", str(k), "two_stage", {"K": k}) for k in (2, 4, 8)]
    for b in (budget // 2, budget, budget * 2):
        grid += [("budget", str(b), m, {"budget": b}) for m in ("plain", "two_stage")]
    for eps in (0.0, 0.3, 0.5):
        grid += [("epsilon", str(eps), m, {"teacher": f"simulated:{eps}"}) for m in ("plain", "two_stage")]
    return grid
