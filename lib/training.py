"""Fine-tune a student on demonstrations: weights, the predict:/explain: multi-task format, dev selection.

Both papers train the same way here (Distilling Step-by-Step convention, our reading for paper A too):
one input, two tasks, `predict: <question>` -> answer and `explain: <question>` -> rationale, loss
α·L_answer + (1−α)·L_explain. The rationale is an output, so no teacher is needed at test time, and the
answer is read from the `predict:` task: options by log-likelihood, numbers by short greedy decoding.
(`student_format="cot"` trains rationale-then-answer in one target instead, as paper A does; it needs
chain-of-thought generation to evaluate and is ~10x slower on CPU.)

Training is device-agnostic (CUDA + bf16 autocast when present) and goes through `accelerate`, so the same
code runs under `accelerate launch` on several GPUs; on CPU it is seeded and deterministic. The model is
selected on the dev split after every epoch (never on test); only the selected model is scored on test.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .common import cached_json, check_choice, seed_everything
from .data import Example
from .prompts import demonstration, is_correct, parse_answer

FORMATS = ("multitask", "cot", "answer_only")


@dataclass
class Part:
    prompt: str
    target: str
    weight: float = 1.0


@dataclass
class TrainItem:
    """One training example; its parts (e.g. predict + explain) always share a batch."""
    id: str
    parts: list[Part] = field(default_factory=list)


def predict_prompt(e: Example, hint: str | None = None) -> str:
    q = e.question + (f"\nHint: {hint}" if hint else "")
    return f"predict: {q}\nAnswer:"


def explain_prompt(e: Example, hint: str | None = None) -> str:
    return f"explain: {e.question}\nExplanation:"


def cot_student_prompt(e: Example) -> str:
    return f"Question: {e.question}\nAnswer:"


def make_items(examples: list[Example], answers: list[str], rationales: list[str | None], *, fmt: str = "multitask",
               alpha: float = 0.5, weights: list[float] | None = None, hints: list[str] | None = None) -> list[TrainItem]:
    """Training items from (possibly teacher-written) answers and rationales.

    multitask: weight 2α on predict and 2(1−α) on explain, so that the batch mean of w·nll equals
    α·mean(L_answer) + (1−α)·mean(L_explain) exactly; a missing rationale leaves only the predict part.
    `weights` (per example, mean 1) multiply both parts: paper A's TA-confidence weighting."""
    check_choice("student format", fmt, FORMATS)
    items = []
    for i, (e, a, r) in enumerate(zip(examples, answers, rationales)):
        w = 1.0 if weights is None else float(weights[i])
        if w <= 0:
            continue  # filtered out
        hint = hints[i] if hints else None
        if fmt == "cot":
            parts = [Part(cot_student_prompt(e), " " + demonstration(r, a), w)]
        elif fmt == "answer_only" or not r:
            parts = [Part(predict_prompt(e, hint), " " + a, w * (2 * alpha if fmt == "multitask" and r else 1.0))]
        else:
            parts = [Part(predict_prompt(e, hint), " " + a, 2 * alpha * w),
                     Part(explain_prompt(e), " " + r.strip(), 2 * (1 - alpha) * w)]
        items.append(TrainItem(e.id, parts))
    return items


# ---------------------------------------------------------------- evaluation of a trained student

@torch.no_grad()
def predict(lm, examples: list[Example], fmt: str = "multitask", hints: list[str] | None = None, batch_size: int = 16,
            max_new_tokens: int = 16) -> list[str | None]:
    """The student's answers: options by mean token log-likelihood after the predict prompt; numbers by
    greedy decoding (chain-of-thought generation for the `cot` format)."""
    was_training = lm.model.training
    lm.model.eval()
    preds: list[str | None] = [None] * len(examples)
    prompt = (lambda e, i: cot_student_prompt(e)) if fmt == "cot" else (lambda e, i: predict_prompt(e, hints[i] if hints else None))
    opt_idx = [i for i, e in enumerate(examples) if e.choices]
    if opt_idx:
        # for cot the option is scored as the final answer right after the prompt
        conts = [[" " + (demonstration("", c) if fmt == "cot" else c) for c in examples[i].choices] for i in opt_idx]
        lps = lm.score_options([prompt(examples[i], i) for i in opt_idx], conts, batch_size=batch_size * 4)
        for i, cs, per in zip(opt_idx, conts, lps):
            c = cs[int(np.argmax([float(lp.mean()) for lp in per]))]  # first maximum, as before
            preds[i] = parse_answer(c, examples[i]) if fmt == "cot" else c.strip()
    gen_idx = [i for i, e in enumerate(examples) if not e.choices]
    if gen_idx:
        outs = lm.generate([prompt(examples[i], i) for i in gen_idx], batch_size=batch_size,
                           max_new_tokens=128 if fmt == "cot" else max_new_tokens, stop=("\n",))
        for i, o in zip(gen_idx, outs):
            preds[i] = parse_answer(o, examples[i])
    lm.model.train(was_training)
    return preds


def accuracy(lm, examples: list[Example], **kw) -> tuple[float, list[bool]]:
    preds = predict(lm, examples, **kw)
    correct = [is_correct(p, e) for p, e in zip(preds, examples)]
    return float(np.mean(correct)) if correct else float("nan"), correct


# ---------------------------------------------------------------- the training loop

def length_groups(lm, parts: list[Part]) -> list[list[int]]:
    """Indices of `parts` in at most two groups of similar token length: the split (or none) that minimises
    the padded tokens, sum over groups of size x longest. A second forward pass costs little next to padding
    a batch of 20-token answers to a 300-token GSM8K solution."""
    n_tok = [len(lm._prompt_ids(p.prompt)) + len(lm._ids(p.target, special=False)) + 1 for p in parts]
    order = sorted(range(len(parts)), key=lambda j: n_tok[j])
    L = [n_tok[j] for j in order]
    n = len(L)
    best_j = min(range(n), key=lambda j: j * (L[j - 1] if j else 0) + (n - j) * L[-1])
    return [order[:best_j], order[best_j:]] if best_j else [order]


def train(lm, items: list[TrainItem], *, epochs: float = 2, lr: float = 5e-5, batch_size: int = 8, seed: int = 0,
          dev: list[Example] | None = None, fmt: str = "multitask", eval_batch_size: int = 16,
          weight_decay: float = 0.0, warmup_frac: float = 0.1, progress: bool = True,
          dev_hints: list[str] | None = None, start_dev_acc: float | None = None) -> dict:
    """Fine-tune `lm` in place on `items`; select the epoch with the best dev accuracy (epoch 0 = before
    training counts too, so training can never make the returned student worse on dev).

    `start_dev_acc`: the dev accuracy of `lm` as passed in, when the caller already knows it (the pretrained
    student's is the same in every run and cached, see `start_dev_accuracy`; a warmed student's comes from its
    warm-up); it skips one dev evaluation per call, a fifth to a third of a short offline run.

    Returns the history: loss per step, dev accuracy per epoch, the selected epoch, seconds."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    seed_everything(seed)
    acc = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no", cpu=not torch.cuda.is_available())
    n_steps_epoch = math.ceil(len(items) / batch_size)
    total = max(1, int(round(epochs * n_steps_epoch)))
    # fused AdamW: one kernel over all parameters (on this CPU 0.14 s instead of 0.5 s per step of a 135M model)
    opt = torch.optim.AdamW(lm.model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    warm = max(1, int(warmup_frac * total))
    # linear warm-up, then linear decay to 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    # batches of item indices; accelerate shards them across processes under `accelerate launch`
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(list(range(len(items))), batch_size=batch_size, shuffle=True, generator=g,
                                         collate_fn=lambda idx: idx)
    model, opt, loader, sched = acc.prepare(lm.model, opt, loader, sched)
    lm.model = model
    hist = {"loss": [], "dev_acc": [], "epoch_of_dev": [], "steps": total}
    best_state, best_acc, best_epoch = None, -1.0, 0
    if dev:
        a = start_dev_acc if start_dev_acc is not None else accuracy(lm, dev, fmt=fmt, batch_size=eval_batch_size, hints=dev_hints)[0]
        hist["dev_acc"].append(a); hist["epoch_of_dev"].append(0.0)
        best_acc, best_state = a, copy.deepcopy(acc.unwrap_model(model).state_dict())
    t0, step = time.time(), 0
    bar = tqdm(total=total, disable=not progress, desc=f"train {lm.name}", leave=False)
    model.train()
    while step < total:
        for idx in loader:
            parts = [p for i in idx for p in items[i].parts]
            loss = 0.0
            # short predict: parts and long explain: parts in one tensor would pad every row to the longest
            # rationale; length groups give the same loss (a weighted sum of per-group means) for less compute
            # (one group under multi-process DDP, which expects one forward per backward)
            for group in (length_groups(lm, parts) if acc.num_processes == 1 else [list(range(len(parts)))]):
                with acc.autocast():
                    g = [parts[j] for j in group]
                    loss = loss + lm.loss([p.prompt for p in g], [p.target for p in g],
                                          weights=torch.tensor([p.weight for p in g])) * (len(g) / len(parts))
            acc.backward(loss)
            acc.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad()
            hist["loss"].append(float(loss.detach())); step += 1; bar.update(1)
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}")
            end_of_epoch = step % n_steps_epoch == 0 or step == total
            if dev and end_of_epoch:
                a, _ = accuracy(lm, dev, fmt=fmt, batch_size=eval_batch_size, hints=dev_hints)
                hist["dev_acc"].append(a); hist["epoch_of_dev"].append(step / n_steps_epoch)
                if a > best_acc:
                    best_acc, best_epoch = a, step / n_steps_epoch
                    best_state = copy.deepcopy(acc.unwrap_model(model).state_dict())
                model.train()
            if step >= total:
                break
    bar.close()
    lm.model = acc.unwrap_model(model)
    if best_state is not None:
        lm.model.load_state_dict(best_state)
    lm.model.eval()
    # kept_start: dev selection returned the weights `lm` came in with (without dev nothing is selected or kept)
    hist.update(best_epoch=best_epoch, best_dev_acc=best_acc, kept_start=bool(dev) and best_epoch == 0,
                seconds=time.time() - t0)
    return hist


def start_dev_accuracy(lm, student: str, dev: list[Example], *, fmt: str = "multitask", hints: list[str] | None = None,
                       batch_size: int = 16) -> float:
    """Dev accuracy of the freshly loaded pretrained `student` (`lm`, not yet trained): identical in every run
    on the same dev split, so computed once and cached instead of at the start of every training run."""
    key = {"student": student, "fmt": fmt, "dev": [e.id for e in dev], "hints": hints}
    return cached_json("start_dev", key, lambda: accuracy(lm, dev, fmt=fmt, batch_size=batch_size, hints=hints)[0])


def score_test(lm, student: str, test: list[Example], *, pretrained: bool, fmt: str = "multitask",
               hints: list[str] | None = None, batch_size: int = 16) -> tuple[float, list[bool]]:
    """Test accuracy and per-question correctness of `lm`. When `lm` holds the pretrained `student`'s weights
    (`pretrained`: dev selection kept them, about a third of the short offline runs) the score is the same in
    every run, so it is computed once per (student, test split, format, hints) and cached."""
    if not pretrained:
        return accuracy(lm, test, fmt=fmt, hints=hints, batch_size=batch_size)
    key = {"student": student, "fmt": fmt, "test": [e.id for e in test], "hints": hints, "batch_size": batch_size}
    r = cached_json("start_test", key, lambda: dict(zip(("acc", "correct"), accuracy(lm, test, fmt=fmt, hints=hints,
                                                                                      batch_size=batch_size))))
    return r["acc"], r["correct"]


def finetune_and_test(student: str, items: list[TrainItem], dev: list[Example], test: list[Example], *, key: dict,
                      fmt: str = "multitask", test_hints: list[str] | None = None, dev_hints: list[str] | None = None,
                      **train_kw) -> dict:
    """Fresh student -> train with dev selection -> test accuracy; the result (not the weights) is cached
    under `key` (+ the training parameters), so a rerun or a resumed run recomputes nothing."""
    from .models import load_model

    full_key = {**key, "student": student, "fmt": fmt, "train": {k: v for k, v in train_kw.items() if k != "progress"},
                "items": [[i.id, [(p.prompt, p.target, round(p.weight, 6)) for p in i.parts]] for i in items],
                "dev": [e.id for e in dev], "test": [e.id for e in test], "test_hints": test_hints, "dev_hints": dev_hints}

    def compute():
        lm = load_model(student)
        lm.name = student
        start = start_dev_accuracy(lm, student, dev, fmt=fmt, hints=dev_hints,
                                   batch_size=train_kw.get("eval_batch_size", 16)) if dev else None
        hist = train(lm, items, dev=dev, fmt=fmt, dev_hints=dev_hints, start_dev_acc=start, **train_kw)
        zero_dev = hist["dev_acc"][0] if dev else float("nan")  # epoch 0 = the untrained student
        acc_test, correct = score_test(lm, student, test, pretrained=hist["kept_start"], fmt=fmt, hints=test_hints)
        return {"test_acc": acc_test, "correct": correct, "zero_shot_dev": zero_dev, "best_dev": hist["best_dev_acc"],
                "best_epoch": hist["best_epoch"], "dev_curve": hist["dev_acc"], "loss_first": hist["loss"][:3],
                "loss_last": hist["loss"][-3:], "seconds": hist["seconds"], "n_items": len(items)}

    return cached_json("finetune", full_key, compute)
