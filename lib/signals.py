"""Paper A's signals, per example, all in [0, 1].

- self_consistency: K sampled rationale+answer outputs of the student (one batched `generate` call per batch
  with num_return_sequences=K, never K loops); each final answer parsed by lib.prompts.parse_answer; the
  signal is the share of the K samples whose answer equals the majority answer. The majority is taken over
  *parseable* answers only: an unparseable sample is its own answer that agrees with nothing, so it only
  lowers the share; with no parseable sample the majority is None and the signal 0. With answer_by="options"
  an unparseable sample of a question with options first gets the option the student finds likeliest after
  it (the same samples, read further). Ties go to the answer
  sampled first; the share itself does not depend on how ties are broken (every tied answer has the same
  count). The student's "output" (scored by the TA, judged for correctness) is the first sample that agrees
  with the majority: no extra greedy pass.
- ta_confidence: exp(mean token log-prob) of an output text under the TA model, given the question prompt
  (teacher-forced, one batched pass through LM.score, pad-masked). Same function for student and teacher
  outputs. An empty output gets 0 (no evidence of confidence).
- need_score = mean(1 - self_consistency, 1 - ta_confidence(student)): which questions to buy from the
  teacher.
- demo_weights: ta_confidence(teacher) normalised to mean 1 ("weight"), or a 0/1 filter dropping those
  below tau ("filter").

Both model-based signals are cached through lib.common.cached_json, keyed by a fingerprint of the model's
weights (a fine-tuned student keeps its name but not its weights), the exact prompts and outputs, and every
sampling parameter.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Callable

import numpy as np

from .common import ReproError, cached_json, check_choice, stable_hash
from .data import Example
from .prompts import cot_prompt, parse_answer

VERSION = 1  # bump when a signal's definition changes: cached values are then recomputed


def model_fingerprint(lm) -> str:
    """Cheap hash of a model's weights: per tensor its float64 sum and a strided sample of its values."""
    import torch

    parts = [lm.name]
    with torch.no_grad():
        for n, p in lm.model.named_parameters():
            flat = p.detach().reshape(-1)
            parts += [
                n,
                list(p.shape),
                float(flat.sum(dtype=torch.float64)),
                flat[:: max(1, flat.numel() // 16)].tolist(),
            ]
    return stable_hash(parts, 20)


def majority_vote(answers: list[str | None]) -> tuple[str | None, float]:
    """(majority answer, share of all samples that agree with it); see the module docstring for the rules."""
    if not answers:
        return None, 0.0
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0.0
    top = max(counts.values())
    maj = next(a for a in answers if a is not None and counts[a] == top)  # first sampled among the tied
    return maj, top / len(answers)


def self_consistency(
    lm,
    examples: list[Example],
    *,
    K: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    n_shots: int,
    prompt_fn: Callable[[Example], str] | None = None,
    batch_size: int = 16,
    answer_by: str = "parse",
    cache: bool = True,
    progress: bool = False,
) -> dict:
    """{"sc": [share], "majority": [answer|None], "answers": [[K parsed]], "samples": [[K texts]],
    "output": [text]}.

    prompt_fn defaults to the few-shot chain-of-thought prompt (n_shots exemplars), which an un-warmed
    student needs to write "So the answer is X"; pass the student's training prompt for a fine-tuned one.
    answer_by="options": on a question with options, a sample with no parseable answer gets the option the
    student finds likeliest after the sample and "So the answer is" (its own reasoning decides, every
    sample counts); "parse" leaves it unparsed."""
    if K < 1:
        raise ReproError(f"K must be >= 1, got {K}")
    check_choice("answer_by", answer_by, ANSWER_BY)
    prompts = [(prompt_fn or (lambda e: cot_prompt(e, n_shots)))(e) for e in examples]

    if answer_by == "options":

        def compute():
            # answer_by="parse"'s samples (its cache entry where there is one); only the unparsed get scored
            base = self_consistency(
                lm,
                examples,
                K=K,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                seed=seed,
                n_shots=n_shots,
                prompt_fn=prompt_fn,
                batch_size=batch_size,
                cache=cache,
                progress=progress,
            )
            parsed = [list(a) for a in base["answers"]]
            _answer_unparsed_by_options(lm, examples, prompts, base["samples"], parsed, batch_size, progress)
            return _tally(base["samples"], parsed)

    else:

        def compute():
            gens = lm.generate(
                prompts,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=temperature,
                num_return_sequences=K,
                batch_size=batch_size,
                seed=seed,
                progress=progress,
            )
            gens = [g if isinstance(g, list) else [g] for g in gens]  # K=1 returns plain strings
            return _tally(gens, [[parse_answer(s, e) for s in samples] for e, samples in zip(examples, gens)])

    if not cache:
        return compute()
    key = {
        "model": model_fingerprint(lm),
        **({"precision": "bf16"} if lm.bf16 else {}),
        "prompts": stable_hash(prompts, 20),
        "examples": stable_hash([e.to_dict() for e in examples], 20),
        "K": K,
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "seed": seed,
    }  # batching changes the RNG draws
    if answer_by != "parse":
        key["answer_by"] = answer_by
    return cached_json("signal_self_consistency", key, compute, version=VERSION)


def _tally(gens: list[list[str]], parsed: list[list[str | None]]) -> dict:
    res = {"sc": [], "majority": [], "answers": [], "samples": gens, "output": []}
    for samples, answers in zip(gens, parsed):
        maj, share = majority_vote(answers)
        res["sc"].append(share)
        res["majority"].append(maj)
        res["answers"].append(answers)
        res["output"].append(
            next((s for s, a in zip(samples, answers) if maj is not None and a == maj), samples[0])
        )
    return res


ANSWER_BY = ("parse", "options")


def _answer_unparsed_by_options(
    lm, examples, prompts, gens, parsed, batch_size: int, progress: bool = False
) -> None:
    """Fill in place each unparsed answer of a question with options: the option with the highest mean token
    log-prob after prompt + sample + "So the answer is"."""
    todo = [
        (i, k)
        for i, (e, answers) in enumerate(zip(examples, parsed))
        if e.choices
        for k, a in enumerate(answers)
        if a is None
    ]
    if not todo:
        return
    ctx = [f"{prompts[i]} {gens[i][k].strip()}\nSo the answer is" for i, k in todo]
    opts = [[" " + c for c in examples[i].choices] for i, _ in todo]
    scores = lm.score_options(ctx, opts, batch_size=batch_size, progress=progress)
    for (i, k), per in zip(todo, scores):
        parsed[i][k] = examples[i].choices[int(np.argmax([float(x.mean()) for x in per]))]


SPANS = ("answer", "full")
_FINAL = re.compile(r"^(.*\bso the answer is)(.*)$", re.I | re.S)


def split_final_answer(output: str) -> tuple[str, str]:
    """(the output up to and including its last "So the answer is", the final answer after it, without a
    closing period); an output without that phrase is all answer: ("", output)."""
    m = _FINAL.match((output or "").strip())
    if not m:
        return "", (output or "").strip()
    return m.group(1).strip(), m.group(2).strip().rstrip(".").strip()


def ta_confidence(
    ta_lm,
    examples: list[Example],
    outputs: list[str],
    *,
    n_shots: int,
    span: str,
    batch_size: int = 16,
    prompt_fn: Callable[[Example], str] | None = None,
    cache: bool = True,
    progress: bool = False,
) -> list[float]:
    """The TA's confidence in each output, exp(mean log p_TA(span tokens | context)); the prompt is the
    question with its options (cot_prompt with n_shots exemplars), the output follows after one space.

    span="full": every token of the output given the question. span="answer": only the final answer's tokens,
    given the question and the output's rationale (everything up to "So the answer is"): a wrong answer after
    a rationale that argues for the right one then gets little confidence, while "full" averages it away among
    the rationale's tokens. An empty output (or answer) gets 0, no evidence of confidence."""
    check_choice("ta_span", span, SPANS)
    if len(outputs) != len(examples):
        raise ReproError(f"{len(outputs)} outputs for {len(examples)} examples")
    prompts = [(prompt_fn or (lambda e: cot_prompt(e, n_shots)))(e) for e in examples]
    if span == "full":
        conts = [" " + (o or "").strip() for o in outputs]
    else:
        parts = [split_final_answer(o) for o in outputs]
        prompts = [p + (" " + pre if pre else "") for p, (pre, _) in zip(prompts, parts)]
        conts = [" " + ans for _, ans in parts]

    def compute():
        lps = ta_lm.score(prompts, conts, batch_size=batch_size, progress=progress)
        return [math.exp(float(lp.mean())) if len(lp) and c.strip() else 0.0 for lp, c in zip(lps, conts)]

    if not cache:
        return compute()
    key = {
        "model": model_fingerprint(ta_lm),
        **({"precision": "bf16"} if ta_lm.bf16 else {}),
        "prompts": stable_hash(prompts, 20),
        "outputs": stable_hash(conts, 20),
    }
    return cached_json("signal_ta_confidence", key, compute, version=VERSION)


def need_score(sc=None, ta_student=None) -> np.ndarray | None:
    """mean(1 - self_consistency, 1 - ta_confidence(student)) over the signals given: high = the student needs
    this demonstration; None when neither is given (the caller then chooses at random)."""
    parts = [1 - np.asarray(x, float) for x in (sc, ta_student) if x is not None]
    if len(parts) == 2 and parts[0].shape != parts[1].shape:
        raise ReproError(f"signals of different lengths: {parts[0].shape} vs {parts[1].shape}")
    return np.mean(parts, 0) if parts else None


def demo_weights(
    ta_teacher, mode: str = "weight", tau: float | None = None, filter_q: float | None = None
) -> np.ndarray:
    """Per-demonstration training weights from ta_confidence(teacher): "weight" = normalised to mean 1
    (uniform if all are 0); "filter" = 1 where confidence >= tau, else 0 (dropped). Instead of tau, `filter_q`
    drops that share of the least-trusted demonstrations (tau = its quantile): an absolute tau would mean
    nothing across TAs whose confidences live on different scales."""
    t = np.asarray(ta_teacher, float)
    if mode == "weight":
        return t / t.mean() if len(t) and t.mean() > 0 else np.ones_like(t)
    if mode == "filter":
        if tau is None and filter_q is not None:
            tau = float(np.quantile(t, filter_q))
        if tau is None:
            raise ReproError("demo_weights(mode='filter') needs a threshold tau or a share filter_q")
        return (t >= tau).astype(float)
    raise ReproError(f"unknown weighting mode {mode!r}; valid: filter, weight")


def auroc(scores, correct) -> float:
    """How well a signal separates right (1) from wrong (0) outputs: ROC AUC, nan when only one class
    occurs."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(correct, int)
    return float(roc_auc_score(y, np.asarray(scores, float))) if 0 < y.sum() < len(y) else float("nan")


def _auroc_resamples(s: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUROC of every resample at once (`counts`: resamples x rows, how often each row was drawn): sum
    over (right i, wrong j) pairs of count_i * count_j * [s_i > s_j] (ties 1/2), over (number of right) *
    (number of wrong); nan where a resample has one class."""
    cmp = (s[y == 1][:, None] > s[y == 0][None, :]) + 0.5 * (s[y == 1][:, None] == s[y == 0][None, :])
    wp, wn = counts[:, y == 1], counts[:, y == 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((wp @ cmp) * wn).sum(1) / (wp.sum(1) * wn.sum(1))


def _draw_counts(n_units: int, n_boot: int, rng) -> np.ndarray:
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    return np.stack([np.bincount(r, minlength=n_units) for r in draws]).astype(float)


def auroc_ci(
    scores, correct, n_boot: int = 500, seed: int = 0, level: float = 0.95, groups=None
) -> tuple[float, float]:
    """Percentile bootstrap interval of `auroc` over examples (resamples holding one class only are skipped);
    vectorised over resamples (500 sklearn calls per cell took seconds). `groups`: resample these units
    instead of rows, the rows of a unit in or out together (one question scored under several seeds is one
    unit: its rows are not independent evidence)."""
    s, y = np.asarray(scores, float), np.asarray(correct, int)
    if not 0 < y.sum() < len(y):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if groups is None:
        counts = _draw_counts(len(y), n_boot, rng)
    else:
        units, of_row = np.unique(np.asarray(groups), return_inverse=True)
        counts = _draw_counts(len(units), n_boot, rng)[:, of_row]
    vals = _auroc_resamples(s, y, counts)
    a = (1 - level) / 2
    return float(np.nanquantile(vals, a)), float(np.nanquantile(vals, 1 - a))


# ---------------------------------------------------------------- notebook 11: does a signal see mistakes?


def signal_rows(P, pools: dict, student_lm, teachers: dict, seed: int) -> tuple[list[dict], list[dict]]:
    """Per example, every signal notebook 11 measures (self-consistency of the un-warmed student, each TA's
    confidence in each output under each span, 1 - need) with whether that output is right, and the student's
    parse rates. `teachers`: dataset -> {whose: list of Demo} for the teachers' outputs on that pool. Settings
    come from notebook parameters `P` (config sections "a" and "signals")."""
    from .models import load_shared
    from .prompts import is_correct

    rows, parsed = [], []

    def add(d, exs, signal, whose, ta, span, scores, correct):
        rows.extend(
            {"dataset": d, "id": e.id, "signal": signal, "of": whose, "ta": ta, "span": span, "score": s}
            | {"correct": bool(c)}
            for e, s, c in zip(exs, scores, correct)
        )

    for d, exs in pools.items():
        # a simulated demonstration is right when it was not corrupted; an LM teacher's when its answer is
        outputs = {
            who: (
                [x.text() for x in ds],
                [x.correct if x.true_correct is None else x.true_correct for x in ds],
            )
            for who, ds in teachers[d].items()
        }
        sc = None
        if d in P.student_datasets:
            sc = _unwarmed_consistency(P, student_lm, exs, seed)
            right = [is_correct(m, e) for m, e in zip(sc["majority"], exs)]
            parsed.append(_parse_rates(P, d, exs, sc))
            add(d, exs, "self-consistency", "student", "-", "-", sc["sc"], right)
            outputs = {"student": (sc["output"], right), **outputs}
        for ta in P.tas or [P.models.ta]:
            ta_lm = load_shared(ta, P.precision)  # read-only and frozen, as in paper A's runs
            for span in P.ta_spans:
                for whose, (texts, right) in outputs.items():
                    conf = ta_confidence(
                        ta_lm, exs, texts, batch_size=P.data.batch_size, n_shots=P.ta_shots, span=span
                    )
                    add(d, exs, "TA confidence", whose, ta, span, conf, right)
                    if whose == "student":
                        need = 1 - need_score(sc["sc"], conf)
                        add(d, exs, "1 - need (both student signals)", whose, ta, span, need, right)
    return rows, parsed


def _unwarmed_consistency(P, student_lm, exs, seed: int) -> dict:
    mnt = P.cot_max_new_tokens_numeric if exs[0].kind == "numeric" else P.cot_max_new_tokens
    return self_consistency(
        student_lm,
        exs,
        K=P.K,
        temperature=P.temperature,
        max_new_tokens=mnt,
        batch_size=P.data.batch_size,
        seed=seed,
        n_shots=P.cot_shots,
        answer_by=P.sc_answer_by,
        progress=True,
    )


def _parse_rates(P, d: str, exs, sc: dict) -> dict:
    samples = [parse_answer(s, e) is not None for e, x in zip(exs, sc["samples"]) for s in x]
    return {
        "dataset": d,
        "student": "un-warmed (few-shot CoT)",
        "n": len(exs),
        "samples_parsed": float(np.mean(samples)),
        f"samples_answered ({P.sc_answer_by})": float(
            np.mean([a is not None for x in sc["answers"] for a in x])
        ),
        "questions_with_an_answer": float(np.mean([m is not None for m in sc["majority"]])),
    }


def auroc_table(per_ex, n_boot: int, seed: int, keys=("signal", "of", "ta", "span", "dataset"), group=None):
    """One row per signal cell: AUROC of its scores against right / wrong outputs, with its bootstrap
    interval (over the values of column `group` where given, else over rows); `informative`: the interval
    lies above 0.5 (no separation)."""
    import pandas as pd

    out = []
    for k, g in per_ex.groupby(list(keys), sort=False):
        units = None if group is None else g[group].to_numpy()
        lo, hi = auroc_ci(g.score, g.correct, n_boot=n_boot, seed=seed, groups=units)
        out.append(
            {**dict(zip(keys, k)), "n": len(g), "n_correct": int(g.correct.sum())}
            | {"auroc": auroc(g.score, g.correct), "ci_lo": lo, "ci_hi": hi}
        )
    t = pd.DataFrame(out)
    t["informative"] = t.ci_lo > 0.5
    return t
