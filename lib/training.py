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
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import phases
from .common import cached_json, check_choice, seed_everything
from .config import Train
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


def explain_prompt(e: Example) -> str:
    return f"explain: {e.question}\nExplanation:"


def cot_student_prompt(e: Example) -> str:
    return f"Question: {e.question}\nAnswer:"


def make_items(
    examples: list[Example],
    answers: list[str],
    rationales: list[str | None],
    *,
    fmt: str = "multitask",
    alpha: float = 0.5,
    weights: list[float] | None = None,
    hints: list[str] | None = None,
) -> list[TrainItem]:
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
            parts = [
                Part(predict_prompt(e, hint), " " + a, w * (2 * alpha if fmt == "multitask" and r else 1.0))
            ]
        else:
            parts = [
                Part(predict_prompt(e, hint), " " + a, 2 * alpha * w),
                Part(explain_prompt(e), " " + r.strip(), 2 * (1 - alpha) * w),
            ]
        items.append(TrainItem(e.id, parts))
    return items


def shuffled_answers(examples: list[Example], seed: int) -> list[str]:
    """The shuffled-label control: gold answers permuted across questions. An option question gets the option
    at the position of its partner's gold option, so its target is still one of its own options; a numeric
    question gets its partner's number. A student that learns as much from these as from the gold answers
    learns the answer format, not the task."""
    perm = np.random.default_rng(seed).permutation(len(examples))
    out = []
    for e, j in zip(examples, perm):
        o = examples[int(j)]
        out.append(e.choices[(o.label or 0) % len(e.choices)] if e.choices else o.answer)
    return out


def relabel(examples: list[Example], answers: list[str]) -> list[Example]:
    """Copies of `examples` whose gold answer (and option label) is `answers`: a student that reads its target
    from the example itself (the encoder) trains on the shuffled-label control this way."""
    from dataclasses import replace

    return [
        replace(e, answer=a, label=e.choices.index(a) if e.choices else None)
        for e, a in zip(examples, answers)
    ]


# ---------------------------------------------------------------- evaluation of a trained student


@torch.no_grad()
def predict(
    lm,
    examples: list[Example],
    fmt: str = "multitask",
    hints: list[str] | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 16,
) -> list[str | None]:
    """The student's answers: options by mean token log-likelihood after the predict prompt; numbers by
    greedy decoding (chain-of-thought generation for the `cot` format)."""
    was_training = lm.model.training
    lm.model.eval()
    preds: list[str | None] = [None] * len(examples)
    prompt = (
        (lambda e, i: cot_student_prompt(e))
        if fmt == "cot"
        else (lambda e, i: predict_prompt(e, hints[i] if hints else None))
    )
    opt_idx = [i for i, e in enumerate(examples) if e.choices]
    if opt_idx:
        # for cot the option is scored as the final answer right after the prompt
        conts = [
            [" " + (demonstration("", c) if fmt == "cot" else c) for c in examples[i].choices]
            for i in opt_idx
        ]
        lps = lm.score_options([prompt(examples[i], i) for i in opt_idx], conts, batch_size=batch_size * 4)
        for i, cs, per in zip(opt_idx, conts, lps):
            c = cs[int(np.argmax([float(lp.mean()) for lp in per]))]  # ties: the first option
            preds[i] = parse_answer(c, examples[i]) if fmt == "cot" else c.strip()
    gen_idx = [i for i, e in enumerate(examples) if not e.choices]
    if gen_idx:
        outs = lm.generate(
            [prompt(examples[i], i) for i in gen_idx],
            batch_size=batch_size,
            max_new_tokens=128 if fmt == "cot" else max_new_tokens,
            stop=("\n",),
        )
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
    n_tok = [lm.n_tokens(p.prompt, p.target, eos=True) for p in parts]
    order = sorted(range(len(parts)), key=lambda j: n_tok[j])
    L = [n_tok[j] for j in order]
    n = len(L)
    best_j = min(range(n), key=lambda j: j * (L[j - 1] if j else 0) + (n - j) * L[-1])
    return [order[:best_j], order[best_j:]] if best_j else [order]


SCHEDULES = ("linear", "constant", "cosine")
FINETUNE_VERSION = 3  # bump when a fine-tuning run's definition changes: cached runs are then recomputed


def lr_factor(step: int, total: int, warm: int, schedule: str) -> float:
    """Learning-rate multiplier at optimizer step `step` (0-based): linear warm-up over `warm` steps, then
    linear decay to 0, constant, or a cosine to 0."""
    if step < warm:
        return (step + 1) / warm
    frac = (step - warm) / max(1, total - warm)
    if schedule == "linear":
        return max(0.0, 1 - frac)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return 1.0


def fit(
    model: torch.nn.Module,
    n_items: int,
    batch_loss,
    dev_score=None,
    *,
    epochs: float,
    lr: float,
    batch_size: int,
    seed: int,
    schedule: str,
    start_score: float | None = None,
    warmup_frac: float = 0.1,
    weight_decay: float = 0.0,
    on_prepared=None,
    bf16: bool = False,
    progress: bool = True,
    desc: str = "train",
) -> dict:
    """The one training loop with dev selection (LM and encoder students alike).

    Trains `model` in place on batches of item indices: `batch_loss(idx)` returns the loss of one batch
    (the model it reads is the one passed to `on_prepared`, the accelerate-prepared module). After every
    epoch `dev_score()` scores the model and the weights of the best trained epoch are restored at the end:
    the result is always a trained model. Epoch 0 (the weights passed in, scored `start_score` when the
    caller already knows it) is scored beside, never chosen; `beat_start` records whether the chosen epoch
    beats it on dev. Without `dev_score` the last weights are kept.

    Steps per epoch come from the prepared loader (under `accelerate launch` each process sees its shard),
    and the schedule steps once per optimizer step of this process. Autocast covers the forward pass and
    the loss only, never backward, clipping or the optimizer step.

    Returns the history: loss per step, dev score per epoch (epoch 0 first), best epoch, beat_start,
    seconds."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    check_choice("schedule", schedule, SCHEDULES)
    seed_everything(seed)
    # the model stays where it was loaded (lib.models.device: $DISTILL_DEVICE, else the GPU if any)
    cuda = next(model.parameters()).device.type == "cuda"
    acc = Accelerator(mixed_precision="bf16" if cuda else "no", cpu=not cuda)
    # fused AdamW: one kernel over all parameters (several times faster per step than the loop version)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        list(range(n_items)), batch_size=batch_size, shuffle=True, generator=g, collate_fn=lambda idx: idx
    )
    model, opt, loader = acc.prepare(model, opt, loader)
    if on_prepared:
        on_prepared(model)
    n_steps_epoch = max(1, len(loader))
    total = max(1, int(round(epochs * n_steps_epoch)))
    warm = max(1, int(warmup_frac * total))
    # not prepared: a prepared scheduler would step once per process and per call
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warm, schedule))
    hist = {"loss": [], "dev_acc": [], "epoch_of_dev": [], "steps": total, "lr": []}
    best_state, best, best_epoch, start = None, -1.0, 0.0, None
    if dev_score is not None:
        start = start_score if start_score is not None else dev_score()
        hist["dev_acc"].append(start)
        hist["epoch_of_dev"].append(0.0)
    t0, step = time.time(), 0
    bar = tqdm(total=total, disable=not progress, desc=desc, leave=False)
    model.train()
    n_params = phases.matmul_params(model)
    while step < total:
        for idx in loader:
            # bf16: autocast around the forward pass and the loss only, master weights and optimizer state in
            # fp32; backward, clipping and the optimizer step run outside it
            with phases.phase("train", n_params, "bf16" if bf16 else "fp32"):
                with acc.autocast(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and not cuda):
                    loss = batch_loss(idx)
                acc.backward(loss)
                acc.clip_grad_norm_(model.parameters(), 1.0)
                hist["lr"].append(sched.get_last_lr()[0])
                opt.step()
                sched.step()
                opt.zero_grad()
            hist["loss"].append(float(loss.detach()))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}")
            if dev_score is not None and (step % n_steps_epoch == 0 or step == total):
                a = dev_score()
                hist["dev_acc"].append(a)
                hist["epoch_of_dev"].append(step / n_steps_epoch)
                if a > best:
                    best, best_epoch = a, step / n_steps_epoch
                    best_state = copy.deepcopy(acc.unwrap_model(model).state_dict())
                model.train()
            if step >= total:
                break
    bar.close()
    model = acc.unwrap_model(model, keep_fp32_wrapper=False)  # no autocast wrapper left on the returned model
    if on_prepared:
        on_prepared(model)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    # beat_start: the chosen trained epoch scores above the weights the model came in with (True without dev)
    hist.update(
        best_epoch=best_epoch,
        best_dev_acc=best if dev_score is not None else float("nan"),
        beat_start=dev_score is None or best > start,
        seconds=time.time() - t0,
    )
    return hist


def lm_student(lm, items: list[TrainItem], *, fmt: str = "multitask", hints=None, batch_size: int = 16):
    """An LM student as train_and_test needs it: its module, the loss of a batch of items (predict: and
    explain: parts in length groups) and its accuracy on examples (`hints`: one per example scored, for the
    hint method; dev and test get theirs through `score`'s own argument)."""
    import torch.distributed as dist

    # DDP expects one forward per backward, so several processes train without length groups
    one_process = not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)

    def on_prepared(m):  # lm.loss and the dev scoring read the prepared module during training
        lm.model = m

    def batch_loss(idx):
        parts = [p for i in idx for p in items[i].parts]
        # short predict: parts and long explain: parts in one tensor would pad every row to the longest
        # rationale; length groups give the same loss (a weighted sum of per-group means) for less compute
        groups = length_groups(lm, parts) if one_process else [list(range(len(parts)))]
        loss = 0.0
        for group in groups:
            g = [parts[j] for j in group]
            w = torch.tensor([p.weight for p in g])
            loss = loss + lm.loss([p.prompt for p in g], [p.target for p in g], weights=w) * (
                len(g) / len(parts)
            )
        return loss

    def score(examples, hints=None):
        # scored on the bare module: a DDP wrapper has no `generate`, and scoring needs no gradient sync
        wrapped = lm.model
        lm.model = getattr(wrapped, "module", wrapped)
        try:
            return accuracy(lm, examples, fmt=fmt, batch_size=batch_size, hints=hints)
        finally:
            lm.model = wrapped

    return Student(lm.model, len(items), batch_loss, score, on_prepared, getattr(lm, "name", "student"))


@dataclass
class Student:
    """What training needs of a student, LM or encoder: the module trained in place, the loss of a batch of
    item indices, and its (accuracy, per-question correctness) on a list of examples."""

    module: torch.nn.Module
    n_items: int
    batch_loss: object
    score: object
    on_prepared: object = None
    name: str = "student"


def train(
    student: Student,
    cfg: Train,
    seed: int,
    dev: list[Example] | None = None,
    *,
    dev_hints: list[str] | None = None,
    start_dev_acc: float | None = None,
    progress: bool = True,
) -> dict:
    """Train `student` in place as `cfg` says, with dev selection (see `fit`).

    `start_dev_acc`: the dev accuracy of the student as passed in, when the caller already knows it (the
    pretrained student's is the same in every run and cached, see `start_dev_accuracy`; a warmed student's
    comes from its warm-up); it skips one dev evaluation per call."""
    dev_score = (lambda: student.score(dev, dev_hints)[0]) if dev else None
    return fit(
        student.module,
        student.n_items,
        student.batch_loss,
        dev_score,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        seed=seed,
        schedule=cfg.schedule,
        start_score=start_dev_acc,
        warmup_frac=cfg.warmup_frac,
        on_prepared=student.on_prepared,
        bf16=cfg.bf16,
        progress=progress,
        desc=f"train {student.name}",
    )


def train_and_test(
    student: Student,
    cfg: Train,
    seed: int,
    dev: list[Example],
    test: list[Example],
    *,
    start_dev_acc: float | None = None,
    dev_hints: list[str] | None = None,
    test_hints: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """The one train-then-test of every student: train with dev selection, then score the selected student
    on test once. The result's fields are defined here, for the LM and the encoder students alike."""
    hist = train(student, cfg, seed, dev, dev_hints=dev_hints, start_dev_acc=start_dev_acc, progress=progress)
    acc, correct = student.score(test, test_hints)
    return {
        "test_acc": acc,
        "correct": [bool(c) for c in correct],
        "zero_shot_dev": hist["dev_acc"][0] if dev else float("nan"),  # epoch 0: the weights passed in
        "best_dev": hist["best_dev_acc"],
        "best_epoch": hist["best_epoch"],
        # trained: the dev-selected (trained) student beats the one passed in on dev
        "trained": bool(hist["beat_start"]),
        "steps": hist["steps"],
        "dev_curve": hist["dev_acc"],
        "loss_first": hist["loss"][:3],
        "loss_last": hist["loss"][-3:],
        "seconds": hist["seconds"],
    }


def start_dev_accuracy(
    lm,
    student: str,
    dev: list[Example],
    *,
    fmt: str = "multitask",
    hints: list[str] | None = None,
    batch_size: int = 16,
) -> float:
    """Dev accuracy of the freshly loaded pretrained `student` (`lm`, not yet trained): identical in every run
    on the same dev split, so computed once and cached instead of at the start of every training run."""
    key = {"student": student, "fmt": fmt, "dev": [e.id for e in dev], "hints": hints}
    key.update({"precision": "bf16"} if lm.bf16 else {})
    return cached_json(
        "start_dev", key, lambda: accuracy(lm, dev, fmt=fmt, batch_size=batch_size, hints=hints)[0]
    )


def finetune_and_test(
    student: str,
    items: list[TrainItem],
    dev: list[Example],
    test: list[Example],
    *,
    seed: int,
    cfg: Train,
    precision: str = "fp32",
    fmt: str = "multitask",
    test_hints: list[str] | None = None,
    dev_hints: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """A fresh LM student -> train_and_test; the result (not the weights) is cached under what determines
    it (student, items, dev and test questions, seed, training config, precision, format, hints) and nothing
    else, so a rerun or a resumed run recomputes nothing, and two notebooks that run the same training (05's
    gold and shuffled-label runs are paper B's ft and shuffled runs) compute it once."""
    from .models import load_model

    full_key = {
        "student": student,
        "fmt": fmt,
        "seed": seed,
        "train": asdict(cfg),
        **({"precision": precision} if precision != "fp32" else {}),
        "items": [[i.id, [(p.prompt, p.target, round(p.weight, 6)) for p in i.parts]] for i in items],
        "dev": [e.id for e in dev],
        "test": [e.id for e in test],
        "test_hints": test_hints,
        "dev_hints": dev_hints,
    }

    def compute():
        lm = load_model(student, precision)
        lm.name = student
        bs = cfg.eval_batch_size
        start = start_dev_accuracy(lm, student, dev, fmt=fmt, hints=dev_hints, batch_size=bs) if dev else None
        s = lm_student(lm, items, fmt=fmt, batch_size=bs)
        r = train_and_test(
            s,
            cfg,
            seed,
            dev,
            test,
            start_dev_acc=start,
            dev_hints=dev_hints,
            test_hints=test_hints,
            progress=progress,
        )
        return {**r, "n_items": len(items)}

    return cached_json("finetune", full_key, compute, version=FINETUNE_VERSION)
