"""Notebook 05: which plain fine-tuning recipe makes each offline student learn each dataset.

Two steps, so that test never chooses and the expensive control runs only where it decides something:

1. screen: every recipe (training-set size x learning rate x schedule) on gold labels with one seed;
   the recipe with the best dev accuracy of a trained epoch goes on, per student and dataset;
2. confirm: that recipe on every seed, with gold labels and with the shuffled-label control (the gold
   answers permuted across questions). A student that learns the task beats the control on test; one that
   learns only the answer format does not.

A third step checks bf16 training (where the hardware has bf16 units): the chosen LM recipe on every
seed again with bf16 autocast around the forward pass and loss, its dev accuracy per epoch and its test
accuracy against the fp32 runs (its speed is `make bench`'s bf16_train_step row). bf16 training is only
worth turning on (the preset's `bf16_training`) where it learns as fp32 does.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import data, training
from . import encoder as E
from .config import EncoderRun, Train, run_preset
from .runner import run_grid

KEEP = (
    "test_acc",
    "correct",
    "trained",
    "steps",
    "zero_shot_dev",
    "best_dev",
    "best_epoch",
    "dev_curve",
    "seconds",
)


@dataclass(frozen=True)
class Recipe:
    student: str  # lm | encoder
    n: int  # training-set size (pool questions)
    lr: float
    schedule: str  # the encoder trains at a constant rate (lib.encoder)

    @property
    def name(self) -> str:
        return f"n={self.n} lr={self.lr:g} {self.schedule}"


def recipes(P, student: str) -> list[Recipe]:
    """The screen's grid for one student, from notebook parameters `P` (config section "recipe")."""
    if student == "encoder":
        return [Recipe("encoder", n, lr, "constant") for n in P.n_train for lr in P.encoder_lrs]
    return [Recipe("lm", n, lr, s) for n in P.n_train for lr in P.lrs for s in P.schedules]


def trains_on(student: str, dataset: str, example) -> bool:
    """The cross-encoder scores (question, option) pairs: every dataset with options but the math ones."""
    return student == "lm" or (bool(example.choices) and dataset not in data.MATH)


def run(
    P, cells: list[tuple[str, Recipe, str, int]], runner: str = "local", bf16: bool = False, store=None
) -> pd.DataFrame:
    """One row per (dataset, recipe, labels, seed) cell: the fine-tuned student's dev and test results;
    `bf16`: training's forward pass and loss under bf16 autocast. Each run is cached
    (lib.training.finetune_and_test, lib.encoder.train_and_test), so the confirm step reuses the screen's
    gold-label run of the first seed. `store`: a lib.runner.RunStore that keeps each run as it finishes."""
    splits = {
        d: data.load_splits(d, P.preset, caps={"pool": max(P.n_train), **P.recipe_caps})
        for d in dict.fromkeys(c[0] for c in cells)
    }
    lm_calls, enc_calls, meta = [], [], []
    for d, r, labels, seed in cells:
        s = splits[d]
        pool = s["pool"][: r.n]
        answers = [e.answer for e in pool] if labels == "gold" else training.shuffled_answers(pool, seed)
        meta.append({"student": r.student, "dataset": d, "recipe": r.name, "labels": labels, "seed": seed})
        cfg = Train(
            epochs=P.recipe_epochs,
            lr=r.lr,
            batch_size=P.recipe_batch_size,
            schedule=r.schedule if r.student == "lm" else "constant",
            eval_batch_size=P.data.batch_size,
            bf16=bf16,
            warmup_frac=0.1 if r.student == "lm" else 0.0,
        )
        if r.student == "lm":
            items = training.make_items(pool, answers, [None] * len(pool), fmt="answer_only")
            call = dict(student=P.models.student, items=items, dev=s["dev"], test=s["test"])
            call.update(seed=seed, cfg=cfg, precision=P.precision, fmt="answer_only")
            lm_calls.append((len(meta) - 1, call))
        else:
            er = EncoderRun(encoder=P.models.encoder, precision=P.precision, max_len=P.max_len, train=cfg)
            call = dict(cfg=er, train=training.relabel(pool, answers), dev=s["dev"])
            key = {"recipe": r.name, "dataset": d, "labels": labels, "preset": run_preset(P.preset)}
            call.update(test=s["test"], words=None, lam=0.0, seed=seed, key=key)
            enc_calls.append((len(meta) - 1, call))
    results: dict[int, dict] = {}
    for fn, calls in ((training.finetune_and_test, lm_calls), (E.train_and_test, enc_calls)):
        if calls:
            out = run_grid(fn, [c for _, c in calls], runner=runner, desc=f"05 {fn.__module__}", store=store)
            results.update({i: r for (i, _), r in zip(calls, out)})
    return pd.DataFrame([{**m, **{k: results[i].get(k) for k in KEEP}} for i, m in enumerate(meta)])


def screen_cells(P) -> list[tuple[str, Recipe, str, int]]:
    """Step 1: every recipe of every student on every dataset it trains on, gold labels, the first seed."""
    first = {
        d: data.load_splits(d, P.preset, caps={"pool": 1, "dev": 1, "test": 1})["pool"][0] for d in P.datasets
    }
    return [
        (d, r, "gold", P.recipe_seeds[0])
        for d in P.datasets
        for st in P.students
        if trains_on(st, d, first[d])
        for r in recipes(P, st)
    ]


def screen_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Step 1's table: per (student, dataset, recipe) the pretrained and the best trained dev accuracy and
    its epoch; `picked` marks the recipe with the best dev accuracy per student and dataset (the first on
    ties)."""
    t = runs[["student", "dataset", "recipe", "zero_shot_dev", "best_dev", "best_epoch", "steps"]].copy()
    t = t.rename(columns={"zero_shot_dev": "pretrained_dev"}).reset_index(drop=True)
    best = t.groupby(["student", "dataset"], sort=False).best_dev.idxmax()
    t["picked"] = t.index.isin(best.values)
    return t


def screen(P, runner: str = "local", store=None) -> pd.DataFrame:
    """Step 1 run: screen_table of the screen's cells. Where every student and dataset has a single recipe
    the screen has nothing to choose, so the confirm step's runs join its grid (both Ray workers stay busy
    instead of one running the screen alone); the confirm step then reads them from the cache."""
    cells = screen_cells(P)
    nothing_to_choose = len(cells) == len({(c[0], c[1].student) for c in cells})
    extra = [c for c in _confirm([(d, r) for d, r, _, _ in cells], P.recipe_seeds) if c not in cells]
    runs = run(P, cells + (extra if nothing_to_choose else []), runner=runner, store=store)
    return screen_table(runs.iloc[: len(cells)])


def _confirm(picked: list[tuple[str, Recipe]], seeds) -> list[tuple[str, Recipe, str, int]]:
    return [(d, r, labels, seed) for d, r in picked for seed in seeds for labels in ("gold", "shuffled")]


def confirm_cells(P, screen: pd.DataFrame) -> list[tuple[str, Recipe, str, int]]:
    """Step 2: the picked recipe per student and dataset, on every seed, gold and shuffled labels."""
    by_name = {(r.student, r.name): r for st in P.students for r in recipes(P, st)}
    picked = screen[screen.picked]
    return _confirm(
        [(row.dataset, by_name[(row.student, row.recipe)]) for row in picked.itertuples()], P.recipe_seeds
    )


def precision_cells(P, chosen: pd.DataFrame) -> list[tuple[str, Recipe, str, int]]:
    """Step 3: the chosen recipe of the LM student on every dataset it learns, gold and shuffled labels,
    every seed: bf16 training must learn as fp32 does, and still learn more than the answer format."""
    by_name = {r.name: r for r in recipes(P, "lm")}
    learns = chosen[(chosen.student == "lm") & (chosen.verdict == "learns")]
    return [
        (row.dataset, by_name[row.recipe], labels, seed)
        for row in learns.itertuples()
        for labels in ("gold", "shuffled")
        for seed in P.recipe_seeds
    ]


def precision_check(P, chosen: pd.DataFrame, store=None) -> pd.DataFrame | None:
    """Step 3's runs: each cell trained in fp32 and with bf16 training (column `training`); None where the
    run's precision is fp32 (no bf16 units, or the preset's choice), the check is off (`bf16_check`) or no
    dataset is learned."""
    cells = precision_cells(P, chosen)
    if P.precision != "bf16" or not getattr(P, "bf16_check", True) or not cells:
        return None
    out = [run(P, cells, bf16=b, store=store).assign(training="bf16" if b else "fp32") for b in (False, True)]
    return pd.concat(out, ignore_index=True)
