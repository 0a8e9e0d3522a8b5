"""The papers' numbers, the comparison tables and their verdicts, the premises each claim rests on, and the
generated READMEs.

Notebooks call the table functions here (so every comparison gets the same interval, MDE and verdict word,
lib.stats.verdict); `make readme` and notebook 30 read back only the CSVs the notebooks wrote, never
re-running an experiment: a comparison table is recomputed from its notebook's runs CSV (per-question
correctness of every run) with the current lib.stats, so the READMEs state the interval lib.stats
implements. A missing CSV gives a row that says which notebook has not run, never a number.

A claim's verdict stands only where its premises hold (`PREMISES`): paper A needs students that learn,
a teacher better than the student but imperfect, a signal that separates the teacher's right from wrong
outputs, and student signals that separate the student's right from wrong answers (the warmed student for
two-stage, notebook 12; the un-warmed one for one-stage, notebook 11); paper B an attribution teacher above
chance on the prompt it is attributed with, and students that learn. The numbers come from notebook 06's
premise table where it ran, else from notebooks 10, 12, 23 and 00; the learning test from the main tables'
shuffled-label controls (notebook 05's runs where a table ran none). A premise that fails, or whose number
no committed CSV carries, makes the verdict "not tested: <the premise, with its number>", the interval
still shown.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .common import ROOT, results_dir
from .config import PRESETS
from .provenance import read_csv

PAPER_A_AVG = 20.79  # Zhou & Ai 2024: average relative improvement of the two-stage framework over plain FT
PAPER_B_GT = (
    68.0  # Ballout et al. 2024: share of extracted tokens containing the ground truth (multiple choice)
)
# Hsieh et al. 2023, T5-Base, accuracy %: printed beside paper B's table for scale only
PAPER_DSS_T5_BASE = {
    "standard fine-tuning": {"esnli": 88.38, "anli": 43.58, "commonsense_qa": 62.19, "svamp": 62.63},
    "DSS (PaLM rationales)": {"esnli": 89.51, "anli": 49.58, "commonsense_qa": 63.29, "svamp": 65.50},
}
TITLES = {
    "A": "Paper A: one-stage and two-stage TA-in-the-loop vs plain fine-tuning",
    "B": "Paper B: influential-token students vs fine-tuning and Distilling Step-by-Step",
    "GT": "Paper B: do the teacher's top-k influential words contain the ground truth?",
    "ENC": "Beyond paper B: encoder student with a tagging head vs the same encoder fine-tuned",
    "WEAK": "Beyond both papers: a weak teacher's tokens weighted / filtered by the TA vs uniform",
}


# ---------------------------------------------------------------- tables the notebooks build from their runs


def save_runs(runs: pd.DataFrame, path: Path) -> None:
    """A notebook's runs, one row per run, with per-question correctness as a 0/1 string: every table can be
    recomputed from the CSV alone."""
    runs.assign(correct=runs.correct.map(stats.encode_correct)).to_csv(path, index=False)


def comparison(runs: pd.DataFrame, baseline: str, paper: dict | None = None) -> pd.DataFrame:
    """Every method of `runs` against `baseline` (lib.stats.compare_table: crossed-components t interval,
    MDE, verdict); `paper`: {(dataset, method): relative %} where the paper gives a number."""
    return stats.compare_table(runs, baseline, paper=paper)


def accuracies(runs: pd.DataFrame, keys=("dataset", "method")) -> pd.DataFrame:
    """Accuracy of every (keys) cell with its crossed-components t interval (lib.stats.accuracy_interval;
    one seed: over questions), for the figures and the ablations; acc_std is the spread over seeds."""
    rows = []
    for k, g in runs.groupby(list(keys), sort=False):
        x = np.stack([stats.as_correct(c) for c in g.sort_values("seed").correct])
        iv = stats.accuracy_interval(x)
        acc = g.test_acc.astype(float)
        rows.append(
            {
                **dict(zip(keys, k if isinstance(k, tuple) else (k,))),
                "seeds": len(g),
                "n_test": x.shape[1],
                "acc_mean": iv.point,
                "acc_lo": iv.lo,
                "acc_hi": iv.hi,
                "acc_std": acc.std(ddof=1) if len(acc) > 1 else float("nan"),
                "interval": iv.kind,
            }
        )
    return pd.DataFrame(rows)


def against_control(runs: pd.DataFrame, control: str = "shuffled") -> pd.DataFrame:
    """`runs` with each run's `trained` judged against its table's shuffled-label control: the run's best dev
    accuracy beats that of the control run on the same dataset and seed (the control trains on the same
    questions with answers permuted, so beating it is learning more than the format). The control's own runs,
    and tables or seeds without a control, keep the flag the run recorded (beats its pretrained dev
    accuracy)."""
    if control not in set(runs.method) or "best_dev" not in runs:
        return runs
    ctrl = runs[runs.method == control].set_index(["dataset", "seed"]).best_dev
    theirs = ctrl.reindex(pd.MultiIndex.from_frame(runs[["dataset", "seed"]])).to_numpy(float)
    keep = (runs.method == control).to_numpy() | np.isnan(theirs)
    return runs.assign(trained=np.where(keep, runs.trained, runs.best_dev.to_numpy(float) > theirs))


def table_a_main(runs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 12: one-stage and two-stage against plain fine-tuning; the paper's +20.79 % on the two-stage
    average over datasets. A run is trained where it beats its shuffled-label control on dev."""
    return comparison(against_control(runs), "plain", paper={("average", "two_stage"): PAPER_A_AVG})


def table_b_main(runs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 21: every method against fine-tuning, then, where DSS ran, the influential-token students
    against Distilling Step-by-Step (the paper: tokens beat both, with no single number to test). A run is
    trained where it beats its shuffled-label control on dev."""
    runs = against_control(runs)
    tables = [comparison(runs, "ft")]
    if "dss" in set(runs.method):
        tables.append(comparison(runs[runs.method != "ft"], "dss"))
    return pd.concat(tables, ignore_index=True)


def ground_truth_row(g: dict, *, mask=None) -> dict:
    """Shares (with Clopper–Pearson intervals) of the lists of lib.attribution.ground_truth, restricted to
    `mask`; the verdict of the share against the paper's 68 %, and whether it lies above the k-random-words
    control (its interval wholly above the control's): a share the control reaches says nothing about the
    teacher, whatever its verdict."""
    idx = np.ones(len(g["hit"]), bool) if mask is None else np.asarray(mask, bool)
    out = {"n": int(idx.sum())}
    for name in ("hit", "hit_target", "random", "random_option"):
        v = np.asarray(g[name], bool)[idx]
        lo, hi = stats.clopper_pearson(int(v.sum()), len(v))
        out.update({f"{name}": v.mean() if len(v) else np.nan, f"{name}_lo": lo, f"{name}_hi": hi})
    out["mde_pts"] = 100 * stats.mde_proportion(PAPER_B_GT / 100, max(1, out["n"]))
    out["verdict"] = (
        stats.verdict(100 * out["hit_lo"], 100 * out["hit_hi"], paper=PAPER_B_GT)
        if out["n"]
        else stats.UNDEFINED
    )
    out["above_random"] = bool(out["n"]) and out["hit_lo"] > out["random_hi"]
    return out


def comparison_within(runs: pd.DataFrame, keys: list[str], arm: str, baseline: str) -> pd.DataFrame:
    """`comparison` with each combination of `keys` as its own cell (no average over cells) and column `arm`
    as the method: one row per cell and arm against `baseline`, with the `keys` columns restored."""
    cells = runs.assign(dataset=runs[keys].astype(str).agg("|".join, axis=1), method=runs[arm])
    t = comparison(cells, baseline)
    t = t[t.dataset != "average"].copy()
    t[keys] = t.dataset.str.split("|", expand=True)
    return t


def recipe_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 05: per (student, dataset, recipe), the gold-label students' dev accuracy against their
    pretrained one (beat_pretrained: share of seeds whose dev-selected student beats it) and their test
    accuracy against the shuffled-label control's (crossed-components t interval, MDE, verdict)."""
    t = comparison_within(runs, ["student", "dataset", "recipe"], "labels", "shuffled")
    gold = runs[runs.labels == "gold"].groupby(["student", "dataset", "recipe"], sort=False)
    dev = gold.agg(pretrained_dev=("zero_shot_dev", "mean"), best_dev=("best_dev", "mean")).reset_index()
    dev["beat_pretrained"] = gold.apply(lambda g: float((g.best_dev > g.zero_shot_dev).mean())).values
    cols = [
        "student",
        "dataset",
        "recipe",
        "seeds",
        "pretrained_dev",
        "best_dev",
        "beat_pretrained",
        "acc_mean",
        "base_acc",
        "diff_pts",
        "diff_lo",
        "diff_hi",
        "mde_pts",
        "mde_rel_%",
        "interval",
        "verdict",
    ]
    return t.drop(columns=["method"]).merge(dev, on=["student", "dataset", "recipe"])[cols]


def chosen_recipes(table: pd.DataFrame, min_beat: float = 0.9) -> pd.DataFrame:
    """Per student and dataset, the recipe with the best mean dev accuracy among those that learn the task
    (beat the pretrained dev accuracy in >= `min_beat` of seeds, and beat shuffled labels on test: the
    interval of the accuracy difference above 0, as `students_learn` asks); a dataset where none does is one
    the student does not learn."""
    rows = []
    for (st, d), g in table.groupby(["student", "dataset"], sort=False):
        ok = g[(g.beat_pretrained >= min_beat) & (g.diff_lo > 0)]
        best = ok.loc[ok.best_dev.idxmax()] if len(ok) else None
        rows.append(
            {
                "student": st,
                "dataset": d,
                "recipe": "-" if best is None else best.recipe,
                "best_dev": np.nan if best is None else best.best_dev,
                "verdict": "learns" if best is not None else "the student does not learn it",
            }
        )
    return pd.DataFrame(rows)


def precision_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 05's bf16 training check: per (dataset, recipe), gold-label students trained in bf16 against
    fp32-trained ones on the same seeds and questions (crossed-components t interval, MDE, verdict), the mean
    dev accuracy after each epoch under both (`ep0`: the pretrained student), and under each precision the
    gold-label students against the shuffled-label control (`knowledge_<precision>`: difference in points,
    its interval and verdict). Speed is `make bench`'s bf16_train_step row: the runs' own seconds come from
    whatever else shared the CPU when each was computed."""
    gold = runs[runs.labels == "gold"]
    t = comparison_within(gold, ["dataset", "recipe"], "training", "fp32")
    rows = []
    k = comparison_within(runs, ["dataset", "recipe", "training"], "labels", "shuffled")
    for (d, r), g in k.groupby(["dataset", "recipe"], sort=False):
        row = {"dataset": d, "recipe": r}
        for x in g.itertuples():
            row |= {
                f"knowledge_{x.training}_pts": x.diff_pts,
                f"knowledge_{x.training}_lo": x.diff_lo,
                f"knowledge_{x.training}_hi": x.diff_hi,
                f"knowledge_{x.training}": x.verdict,
            }
        rows.append(row)
    know = pd.DataFrame(rows)
    rows = []
    for (d, r), g in gold.groupby(["dataset", "recipe"], sort=False):
        row = {"dataset": d, "recipe": r}
        for prec, gp in g.groupby("training"):
            curve = np.mean([list(c) for c in gp.dev_curve], axis=0)
            row.update({f"dev_{prec}_ep{i}": v for i, v in enumerate(curve)})
        rows.append(row)
    cols = ["dataset", "recipe", "seeds", "base_acc", "acc_mean", "diff_pts", "diff_lo", "diff_hi", "mde_pts"]
    t = t[cols + ["interval", "verdict"]].rename(columns={"base_acc": "test_fp32", "acc_mean": "test_bf16"})
    t = t.merge(pd.DataFrame(rows), on=["dataset", "recipe"])
    return t.merge(know, on=["dataset", "recipe"])


def ablation_table(runs: pd.DataFrame, keys=("group", "setting", "method")) -> pd.DataFrame:
    """One row per ablation setting: accuracy with its crossed-components t interval (one seed: over
    questions only)."""
    return accuracies(runs, keys)


def note(table: pd.DataFrame) -> str:
    """The line printed under every comparison table: interval kind and minimum detectable effect."""
    return stats.table_note(table)


# ---------------------------------------------------------------- reading the CSVs back


def _read(preset: str, name: str, **kw) -> pd.DataFrame | None:
    """results/<preset>/<name> (None if missing), read through lib.provenance so that a render records what
    it was computed from."""
    return read_csv(results_dir(preset) / name, **kw)


def _runs(preset: str, name: str) -> pd.DataFrame | None:
    """A runs CSV, correctness kept as its '0'/'1' string (a number would lose the leading zeros)."""
    return _read(preset, name, dtype={"correct": str})


def _pct(x, lo=None, hi=None) -> str:
    if x is None or pd.isna(x):
        return "-"
    s = f"{x:+.1f} %"
    if lo is not None and not pd.isna(lo):
        s += f" [{lo:+.1f}, {hi:+.1f}]"
    return s


def _missing(nb: str) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "-", "ours": f"notebook {nb} not run", "verdict": "-"}])


# comparison CSV -> (its notebook's runs CSV, how the notebook builds the table from those runs)
TABLE_RUNS = {
    "12_A_main_table.csv": ("12_A_runs.csv", lambda r: table_a_main(r)),
    "21_B_main_table.csv": ("21_B_runs.csv", lambda r: table_b_main(r)),
    "24_B_encoder_table.csv": ("24_B_encoder_runs.csv", lambda r: comparison(r, "encoder_ft")),
    "25_B_weak_teacher_table.csv": ("25_B_weak_teacher_runs.csv", lambda r: comparison(r, "tokens_teacher")),
}


def comparison_table(preset: str, csv: str) -> pd.DataFrame | None:
    """A notebook's comparison table, recomputed from its runs CSV with the current lib.stats, so every
    README states the interval lib.stats implements; the table CSV itself where no runs CSV is committed."""
    runs_csv, build = TABLE_RUNS.get(csv, (None, None))
    runs = _runs(preset, runs_csv) if runs_csv else None
    return build(runs) if runs is not None else _read(preset, csv)


def table_vs(preset: str, csv: str, nb: str) -> pd.DataFrame:
    """A comparison table as a readable one: accuracy, relative change [interval], MDE, verdict."""
    t = comparison_table(preset, csv)
    if t is None:
        return _missing(nb)
    return pd.DataFrame(
        [
            {
                "dataset": r.dataset,
                "method": r.method,
                "vs": r.baseline,
                "seeds": int(r.seeds),
                "trained seeds": int(r.trained_seeds),
                "accuracy": f"{r.acc_mean:.3f} vs {r.base_acc:.3f}",
                "relative [95 % CI]": _pct(r["rel_%"], r.rel_lo, r.rel_hi),
                "MDE": f"{r['mde_rel_%']:.0f} %",
                "paper": "-" if pd.isna(r["paper_%"]) else f"+{r['paper_%']:g} %",
                "verdict": r.verdict,
            }
            for _, r in t.iterrows()
        ]
    )


def _share(r, c: str) -> str:
    return f"{100 * r[c]:.0f} % [{100 * r[c + '_lo']:.0f}, {100 * r[c + '_hi']:.0f}]"


def table_gt(preset: str) -> pd.DataFrame:
    """Notebook 23's shares with their Clopper–Pearson intervals, beside its controls; the verdict on the
    claim is the headline's (it needs paired differences against the controls)."""
    t = _read(preset, "23_ground_truth.csv")
    if t is None:
        return _missing("23")
    main = t[t.block == "main"]
    return pd.DataFrame(
        [
            {
                "dataset": r.dataset,
                "teacher": r.subset,
                "n": int(r.n),
                "top-k contain gold": _share(r, "hit"),
                "k random words": _share(r, "random"),
                "k option words": _share(r, "random_option"),
                "wrong option attributed": _share(r, "wrong_target_hit")
                if "wrong_target_hit_lo" in r
                else "-",
                "teacher right": f"{100 * r.teacher_acc:.0f} %" if "teacher_acc" in r else "-",
                "MDE vs 68 %": f"{r.mde_pts:.0f} pts",
            }
            for _, r in main.iterrows()
        ]
    )


# table name -> the notebook CSV it reads (results/<preset>/)
TABLE_CSVS = {
    "A": "12_A_main_table.csv",
    "B": "21_B_main_table.csv",
    "ENC": "24_B_encoder_table.csv",
    "WEAK": "25_B_weak_teacher_table.csv",
}


def tables(preset: str) -> dict[str, pd.DataFrame]:
    """Every readable table of a preset, in the order of TITLES."""
    return {
        name: table_gt(preset) if name == "GT" else table_vs(preset, TABLE_CSVS[name], TABLE_CSVS[name][:2])
        for name in TITLES
    }


def write_markdown(preset: str) -> dict[str, Path]:
    out = {}
    for name, t in tables(preset).items():
        p = results_dir(preset) / f"30_table_{name}.md"
        p.write_text(t.to_markdown(index=False) + "\n")
        out[name] = p
    return out


# ---------------------------------------------------------------- premises: what a verdict rests on


STATES = {True: "yes", False: "no", None: "not measured"}  # a premise's `holds`, as tables print it


@dataclass(frozen=True)
class Premise:
    """One condition a claim's test needs. `holds`: None where no committed CSV carries its number;
    `number`: the number it rests on, or why it is not measured."""

    says: str
    negated: str
    holds: bool | None
    number: str

    def cell(self) -> str:
        state = STATES[self.holds]
        return f"{self.says}: {state} ({self.number})"

    def why_not(self) -> str:
        return (
            f"{self.negated} ({self.number})"
            if self.holds is False
            else f"{self.says}: not measured ({self.number})"
        )


def _combine(says: str, negated: str, parts: list[tuple[bool | None, str]]) -> Premise:
    """One premise over several datasets: it fails where any dataset fails, is not measured where any is
    not (and none fails), holds where all hold."""
    states = [h for h, _ in parts]
    holds = False if False in states else (None if None in states or not parts else True)
    return Premise(says, negated, holds, "; ".join(n for _, n in parts) or "no dataset")


def _pc(x: float, unit: str = " %") -> str:
    return f"{100 * x:.0f}{unit}"


def _config(preset: str) -> dict | None:
    """The preset's configuration (None for a folder named after no preset, as in tests)."""
    return PRESETS.get(preset)


def _learns(preset: str, d: str, student: str) -> tuple[bool | None, str]:
    runs, chosen = _runs(preset, "05_recipe_runs.csv"), _read(preset, "05_recipe_chosen.csv")
    if runs is None or chosen is None:
        return None, "notebook 05 not run"
    c = chosen[(chosen.student == student) & (chosen.dataset == d)]
    r = runs[(runs.student == student) & (runs.dataset == d)]
    if c.empty or r.empty:
        return None, f"notebook 05 did not train the {student} student on {d}"
    if c.recipe.iloc[0] != "-":  # the chosen recipe; where none learns, the best of those confirmed
        r = r[r.recipe == c.recipe.iloc[0]]
    t = comparison_within(r, ["recipe"], "labels", "shuffled")
    row = t.loc[t.diff_lo.idxmax()]
    # notebook 05's own verdict (report.chosen_recipes): the control beaten and the pretrained dev accuracy
    gold = r[(r.labels == "gold") & (r.recipe == row.recipe)]
    beat = float((gold.best_dev > gold.zero_shot_dev).mean()) if "best_dev" in r else 1.0
    below = f", above their pretrained dev accuracy in {beat:.0%} of seeds" if beat < 0.9 else ""
    return bool(c.verdict.iloc[0] == "learns"), (
        f"{d}: gold - shuffled labels {row.diff_pts:+.1f} pts [{row.diff_lo:+.1f}, {row.diff_hi:+.1f}], "
        f"{int(row.seeds)} seeds{below} (05)"
    )


def students_learn(preset: str, datasets, student: str = "lm") -> Premise:
    """Notebook 05's chosen recipe: gold-label students beat the shuffled-label control on test (the
    interval of the difference above 0, recomputed from 05_recipe_runs.csv)."""
    parts = [_learns(preset, d, student) for d in datasets]
    return _combine("students learn", "students not shown to learn", parts)


def bf16_training_learns(preset: str) -> tuple[bool | None, str]:
    """The rule that turns bf16 training on (the `run` section's bf16_training): on some dataset notebook
    05's bf16 check ran (the student learns it in fp32), bf16-trained gold-label students score as
    fp32-trained ones do on the same seeds (the interval of bf16 - fp32 test accuracy holds 0) and beat the
    shuffled-label control (the interval of gold - shuffled above 0). Recomputed from 05_bf16_runs.csv; None
    where the check did not run."""
    runs = _runs(preset, "05_bf16_runs.csv")
    if runs is None:
        return None, f"notebook 05's bf16 check did not run at {preset}"
    same = comparison_within(runs[runs.labels == "gold"], ["dataset", "recipe"], "training", "fp32")
    know = comparison_within(runs[runs.training == "bf16"], ["dataset", "recipe"], "labels", "shuffled")
    rows = same.merge(know, on=["dataset", "recipe"], suffixes=("", "_k"))
    holds = (rows.diff_lo <= 0) & (rows.diff_hi >= 0) & (rows.diff_lo_k > 0)
    return bool(holds.any()), "; ".join(
        f"{r.dataset}: bf16 - fp32 training {r.diff_pts:+.1f} pts [{r.diff_lo:+.1f}, {r.diff_hi:+.1f}], "
        f"bf16 gold - shuffled labels {r.diff_pts_k:+.1f} pts [{r.diff_lo_k:+.1f}, {r.diff_hi_k:+.1f}], "
        f"{int(r.seeds)} seeds (05)"
        for r in rows.itertuples()
    )


def _beats_control(preset: str, csv: str, d: str, arm: str, student: str) -> tuple[bool | None, str]:
    runs = _runs(preset, csv)
    if runs is None or not {arm, "shuffled"} <= set(runs[runs.dataset == d].method):
        return _learns(preset, d, student)
    r = runs[(runs.dataset == d) & runs.method.isin([arm, "shuffled"])]
    row = comparison(r, "shuffled").iloc[0]
    return bool(row.diff_lo > 0), (
        f"{d}: {arm} - shuffled control {row.diff_pts:+.1f} pts [{row.diff_lo:+.1f}, {row.diff_hi:+.1f}], "
        f"{int(row.seeds)} seeds ({csv[:2]})"
    )


def students_learn_from(csv: str, arm: str, student: str = "lm"):
    """The premise that a main table's students learn: its baseline students (`arm`, trained on the same
    questions as every method) beat their shuffled-label control (method `shuffled`: the same questions,
    answers permuted) on test, the difference interval above 0. Where the table ran no control, notebook 05's
    gold-vs-shuffled test of the same `student` (lm | encoder) stands in."""

    def premise(preset: str, datasets) -> Premise:
        parts = [_beats_control(preset, csv, d, arm, student) for d in datasets]
        return _combine("students learn", "students not shown to learn", parts)

    return premise


def _notebook06(preset: str, datasets) -> pd.DataFrame | None:
    """Notebook 06's premise rows (06_premises.csv) for every one of `datasets`; None where it has not run
    or lacks one of them."""
    t = _read(preset, "06_premises.csv")
    rows = None if t is None else t[t.dataset.isin(list(datasets))]
    return rows if rows is not None and set(rows.dataset) == set(datasets) else None


def _between(preset: str, d: str, spec: str) -> tuple[bool | None, str]:
    acc, runs = _read(preset, "10_teacher_accuracy.csv"), _read(preset, "12_A_runs.csv")
    row = None if acc is None else acc[(acc.teacher == spec) & (acc.dataset == d)]
    r06 = _notebook06(preset, [d])
    if row is not None and not row.empty and runs is not None and "zero_shot_dev" in runs:
        # the demonstrations the students learn from: notebook 10's teacher as paper A asks it
        r = row.iloc[0]
        teacher, src = (r.acc, r.ci_lo, r.ci_hi, r.n), "10, 12"
        pre = float(runs[runs.dataset == d].zero_shot_dev.mean())
    elif r06 is not None:  # the options scored on pool and dev questions, the rule notebook 06 fixes
        r, c = r06.iloc[0], "teacher_options_pool"
        teacher, pre, src = (r[c], r[c + "_lo"], r[c + "_hi"], r[c + "_n"]), r.student_pretrained_dev, "06"
    else:
        return None, f"neither 10_teacher_accuracy.csv (with 12_A_runs.csv) nor 06_premises.csv has {d}"
    acc, lo, hi, n = teacher
    return bool(lo > pre and hi < 1), (
        f"{d}: teacher {_pc(acc)} [{_pc(lo, '')}, {_pc(hi, '')}] of {int(n)} pool questions; "
        f"student pretrained {_pc(pre)} ({src})"
    )


def teacher_between(preset: str, datasets) -> Premise:
    """Paper A's teacher is better than the student and imperfect: its pool accuracy interval lies above
    the student's pretrained dev accuracy and below 1. From notebook 10's accuracy of the demonstrations
    paper A buys (10_teacher_accuracy.csv) beside the pretrained dev accuracy the runs record
    (12_A_runs.csv), else notebook 06's options-scored accuracy (06_premises.csv)."""
    cfg = _config(preset)
    spec = cfg["a"]["teacher"] if cfg else "?"
    parts = [_between(preset, d, spec) for d in datasets]
    says = "teacher above the student, below perfect"
    return _combine(says, "teacher not shown above the student and below perfect", parts)


def _teacher_label(spec: str) -> str | None:
    """How notebook 11 names a teacher's outputs."""
    kind, _, arg = spec.partition(":")
    if kind == "lm":
        return "LM teacher"
    if kind == "simulated":
        rate, _, mode = arg.partition(":")
        return f"simulated teacher (eps={float(rate):g}, {mode or 'random'})"
    return None


def _auroc11(preset: str, d: str, signal: str, of: str | None, cfg: dict, missing: str, label: str):
    """A premise part from notebook 11's AUROC of `signal` on `of`'s outputs (the preset's TA and span) on
    dataset `d`: whether its interval lies above 0.5, and the number; (None, `missing`) without its row."""
    auc = _read(preset, "11_signal_auroc.csv")
    ta, span = cfg["models"]["ta"], cfg["a"]["ta_span"]
    row = None
    if auc is not None:
        keep = auc.signal.str.startswith(signal) & (auc.of == of) & (auc.ta == ta) & (auc.span == span)
        row = auc[keep & (auc.dataset == d)]
    if row is None or row.empty:
        return None, missing
    r = row.iloc[0]
    return bool(r.ci_lo > 0.5), (
        f"{d}: {label} AUROC {r.auroc:.2f} [{r.ci_lo:.2f}, {r.ci_hi:.2f}], {int(r.n)} "
        f"{'teacher outputs' if of != 'student' else 'answers'} (11)"
    )


def _separates(preset: str, d: str, cfg: dict) -> tuple[bool | None, str]:
    of = _teacher_label(cfg["a"]["teacher"])
    missing = f"11_signal_auroc.csv has no AUROC of the TA's confidence in {of or 'this teacher'} on {d}"
    label = f"TA confidence ({cfg['models']['ta']}, {cfg['a']['ta_span']})"
    return _auroc11(preset, d, "TA confidence", of, cfg, missing, label)


def signal_separates(preset: str, datasets) -> Premise:
    """The TA's confidence (the preset's TA and span) separates paper A's teacher's right from wrong
    outputs: its AUROC interval (11_signal_auroc.csv) lies above 0.5."""
    cfg = _config(preset)
    parts = [_separates(preset, d, cfg) if cfg else (None, f"no preset {preset}") for d in datasets]
    says = "a signal separates the teacher's right from wrong outputs"
    return _combine(says, "no signal shown to separate the teacher's right from wrong outputs", parts)


WEAK_CSV = "25_B_weak_teacher_signals.csv"  # per pool question: the weak teacher right, the TA's confidence


def weak_auroc(rows: pd.DataFrame) -> pd.DataFrame:
    """AUROC of the TA's confidence in the weak teacher's answers (WEAK_CSV) against whether each is
    right, per dataset, with a percentile bootstrap interval over the pool questions (WARM_BOOT resamples,
    seed 0)."""
    from .signals import auroc_table

    rows = rows.assign(signal="TA confidence", score=rows.ta_conf)
    return auroc_table(rows, n_boot=WARM_BOOT, seed=0, keys=("signal", "dataset"))


def _weak_separates(preset: str, d: str) -> tuple[bool | None, str]:
    rows = _read(preset, WEAK_CSV)
    rows = None if rows is None else rows[rows.dataset == d]
    if rows is None or rows.empty:
        return None, f"{WEAK_CSV} has no weak teacher's answers on {d} (25)"
    if rows.correct.all() or not rows.correct.any():
        return None, f"{d}: the weak teacher is right on all or none of {len(rows)} pool questions (25)"
    r = weak_auroc(rows).iloc[0]
    return bool(r.ci_lo > 0.5), (
        # three decimals: a bound just above 0.5 must not print as 0.50
        f"{d}: TA confidence in the weak teacher's answers AUROC {r.auroc:.3f} "
        f"[{r.ci_lo:.3f}, {r.ci_hi:.3f}], {int(r.n)} pool questions, teacher right on {int(r.n_correct)} (25)"
    )


def weak_signal_separates(preset: str, datasets) -> Premise:
    """The TA's confidence separates the weak teacher's right answers from its wrong ones on the pool it
    teaches from (notebook 25's own teacher and TA): the AUROC interval (`weak_auroc`) above 0.5."""
    parts = [_weak_separates(preset, d) for d in datasets]
    says = "the TA's confidence separates the weak teacher's right from wrong answers"
    return _combine(
        says, "the TA's confidence not shown to separate the weak teacher's right from wrong", parts
    )


WARM_CSV = "12_A_warm_signals.csv"  # per question two-stage chose among: the warmed student's signals, right
WARM_BOOT = 2000  # bootstrap resamples of the questions for the warmed student's AUROC interval (seed 0)


def warm_auroc(rows: pd.DataFrame) -> pd.DataFrame:
    """AUROC of each warmed-student signal (WARM_CSV's rows) per dataset, with a percentile bootstrap
    interval over questions: a question scored under several seeds is one unit, its rows resampled together
    (lib.signals.auroc_ci with groups), WARM_BOOT resamples, seed 0."""
    from .signals import auroc_table

    return auroc_table(rows, n_boot=WARM_BOOT, seed=0, keys=("signal", "dataset"), group="id")


def _warm_separates(preset: str, d: str) -> tuple[bool | None, str]:
    rows = _read(preset, WARM_CSV)
    rows = None if rows is None else rows[(rows.dataset == d) & (rows.signal == "1 - need")]
    if rows is None or rows.empty:
        return None, f"{WARM_CSV} has no two-stage run with student signals on {d} (12)"
    r = warm_auroc(rows).iloc[0]
    return bool(r.ci_lo > 0.5), (
        # three decimals: a bound just above 0.5 must not print as 0.50
        f"{d}: warmed student's 1 - need AUROC {r.auroc:.3f} [{r.ci_lo:.3f}, {r.ci_hi:.3f}], "
        f"{int(r.n)} answers to {rows.id.nunique()} questions over {rows.seed.nunique()} seeds (12)"
    )


def warm_signal_separates(preset: str, datasets) -> Premise:
    """Two-stage buys where the warmed student's need is highest: its signals (1 - need over those the run
    used) separate the warmed student's right from wrong answers on the questions it chooses among, the
    AUROC interval (`warm_auroc`) above 0.5."""
    parts = [_warm_separates(preset, d) for d in datasets]
    says = "the warmed student's signals separate its right from wrong answers"
    return _combine(says, "the warmed student's signals not shown to separate its right from wrong", parts)


def _cold_separates(preset: str, d: str, cfg: dict) -> tuple[bool | None, str]:
    missing = f"11_signal_auroc.csv has no AUROC of the un-warmed student's 1 - need on {d}"
    return _auroc11(preset, d, "1 - need", "student", cfg, missing, "un-warmed student's 1 - need")


def student_signal_separates(preset: str, datasets) -> Premise:
    """One-stage buys where the un-warmed student's need is highest: 1 - need separates its right from wrong
    answers, the AUROC interval of notebook 11 (11_signal_auroc.csv) above 0.5."""
    cfg = _config(preset)
    parts = [_cold_separates(preset, d, cfg) if cfg else (None, f"no preset {preset}") for d in datasets]
    says = "the student's signals separate its right from wrong answers"
    return _combine(says, "the student's signals not shown to separate its right from wrong", parts)


def _attribution_counts(preset: str, d: str) -> tuple[list | None, str]:
    """[(right, n, chance)] per dataset of `d` ('all': notebook 23's datasets) for the attribution teacher
    on its attribution prompt, and the notebooks they come from: notebook 06 where it ran, else notebook
    23's teacher accuracy with 00_zero_shot.csv's chance level; (None, why) where neither has them."""
    gt = _read(preset, "23_ground_truth.csv")
    main = None if gt is None else gt[(gt.block == "main") & (gt.subset == "all")]
    names = [d] if d != "all" else (None if main is None else list(main.dataset[main.dataset != "all"]))
    r06 = _notebook06(preset, names) if names else None
    if r06 is not None:
        c = "teacher_attribution_prompt_pool"
        n = r06[c + "_n"].astype(int)
        return list(zip((r06[c] * n).round().astype(int), n, r06.chance)), "06"
    rows = None if main is None else main[main.dataset.isin(names or [])]
    zs = _read(preset, "00_zero_shot.csv")
    chance = {} if zs is None else zs.groupby("dataset").chance.first().to_dict()
    if rows is None or rows.empty or "teacher_acc" not in rows or not set(rows.dataset) <= set(chance):
        return None, f"no attribution-prompt accuracy with a chance level on {d} (06, or 23 with 00)"
    n = rows.n.astype(int)
    return list(zip((rows.teacher_acc * n).round().astype(int), n, rows.dataset.map(chance))), "23, 00"


def _above_chance(preset: str, d: str) -> tuple[bool | None, str]:
    counts, src = _attribution_counts(preset, d)
    if counts is None:
        return None, src
    k, n = sum(c[0] for c in counts), sum(c[1] for c in counts)
    chance = sum(c[1] * c[2] for c in counts) / n  # the datasets' chance levels, weighted by questions
    lo, hi = stats.clopper_pearson(k, n)
    return bool(lo > chance), (
        f"{d}: right on {k}/{n} = {_pc(k / n)} [{_pc(lo, '')}, {_pc(hi, '')}] of the questions it "
        f"attributes, chance {_pc(chance)} ({src})"
    )


def attribution_above_chance(preset: str, datasets) -> Premise:
    """Paper B's attribution teacher is above chance on the prompt it is attributed with: the Clopper–Pearson
    interval of its accuracy there lies above the chance accuracy of the options. From notebook 06
    (06_premises.csv) where it ran, else notebook 23's teacher_acc x n with 00_zero_shot.csv's chance."""
    parts = [_above_chance(preset, d) for d in datasets]
    says = "attribution teacher above chance on its prompt"
    return _combine(says, "attribution teacher not shown above chance on its prompt", parts)


GT_QUESTIONS = "23_ground_truth_questions.csv"  # per question: hit and each control's hit, 0/1
GT_CONTROLS = {
    "random": "k random words",
    "random_option": "k random option words",
    "wrong_target_hit": "a wrong option attributed",
}


def paired_hits(preset: str, datasets=()) -> Premise:
    """The 68 % claim's test needs, per question, whether the top-k words and each control contain the gold
    answer (paired differences against the controls), saved by notebook 23 as GT_QUESTIONS."""
    q = _read(preset, GT_QUESTIONS)
    says = "per-question hits for paired differences vs the controls"
    if q is None or not {"hit", *GT_CONTROLS} <= set(q.columns):
        why = (
            "23_ground_truth.csv keeps shares only; the per-question hits that paired differences against "
            "the controls need are not saved"
        )
        return Premise(says, says, None, why)
    return Premise(says, says, True, f"{len(q)} questions ({GT_QUESTIONS})")


PREMISES = {
    "students": students_learn,
    "students_a": students_learn_from("12_A_runs.csv", "plain"),
    "students_b": students_learn_from("21_B_runs.csv", "ft"),
    "encoder_students": students_learn_from("24_B_encoder_runs.csv", "encoder_ft", "encoder"),
    "teacher": teacher_between,
    "signal": signal_separates,
    "warm_signal": warm_signal_separates,
    "cold_signal": student_signal_separates,
    "weak_signal": weak_signal_separates,
    "attribution": attribution_above_chance,
    "hits": paired_hits,
}


PREMISE_CELLS = {  # notebook 06's columns: what each measures
    "student_pretrained_dev": "student, pretrained (dev)",
    "teacher_options_pool": "teacher, options scored (pool)",
    "teacher_attribution_prompt_pool": "teacher on its attribution prompt (pool)",
    "teacher_lettered_pool": "teacher, lettered options (pool)",
}


def premise_table(preset: str) -> pd.DataFrame | None:
    """Notebook 06's table as shares with Clopper–Pearson intervals and its rule's two verdicts per dataset
    (lib/premises.py); None where it has not run."""
    t = _read(preset, "06_premises.csv")
    if t is None:
        return None
    out = t[["dataset"]].assign(chance=[_pc(c) for c in t.chance])
    for c, label in PREMISE_CELLS.items():
        out[label] = [_share(r, c) for _, r in t.iterrows()]
    yes = lambda v: "yes" if v else "no"  # noqa: E731
    out["A: teacher above the student, below 1"] = t.teacher_beats_student.map(yes)
    out["B: attribution teacher above chance"] = t.attribution_above_chance.map(yes)
    return out


def _cot_teacher(preset: str, d: str, spec: str) -> tuple[bool | None, str]:
    acc = _read(preset, "10_teacher_accuracy.csv")
    if acc is None:
        return None, "notebook 10 not run"
    row = acc[(acc.teacher == spec) & (acc.dataset == d)]
    if row.empty:
        return None, f"notebook 10 does not ask {spec} about {d} at {preset}"
    r = row.iloc[0]
    return bool(r.ci_lo > r.chance), (
        f"{d}: {_pc(r.acc)} [{_pc(r.ci_lo, '')}, {_pc(r.ci_hi, '')}] of {int(r.n)} pool questions, chance "
        f"{_pc(r.chance)} (10)"
    )


def premise_evidence(preset: str) -> pd.DataFrame | None:
    """Per candidate dataset of notebook 06, the premises other notebooks measure where they run there: the
    LM student learns it (05), the LM teacher's chain of thought beats chance (10), the TA's confidence sees
    the LM teacher's errors and a simulated teacher's (notebook 11's error rate and mode), and the un-warmed
    student's 1 - need sees its own (11). Each cell: yes / no (the interval) or not measured (why); None
    where notebook 06 has not run."""
    t, cfg = _read(preset, "06_premises.csv"), _config(preset)
    if t is None or cfg is None:
        return None
    spec, sig = cfg["a"]["teacher"], cfg["signals"]
    sim = _teacher_label(f"simulated:{sig['sim_error_rate']}:{sig['sim_mode']}")
    measures = {
        "students learn (05)": lambda d: _learns(preset, d, "lm"),
        "LM teacher's chain of thought above chance (10)": lambda d: _cot_teacher(preset, d, spec),
        "TA confidence separates the teacher's right from wrong (11)": lambda d: _separates(preset, d, cfg),
        f"TA confidence separates a {sim}'s right from wrong (11)": lambda d: _auroc11(
            preset, d, "TA confidence", sim, cfg, f"11_signal_auroc.csv has no AUROC on {d}", "TA confidence"
        ),
        "un-warmed student's 1 - need separates its right from wrong (11)": lambda d: _cold_separates(
            preset, d, cfg
        ),
    }

    def cell(d: str, part: tuple[bool | None, str]) -> str:
        holds, text = part
        text = text.removeprefix(f"{d}: ")
        return f"{STATES[holds]} ({text})"

    return pd.DataFrame(
        [{"dataset": d} | {name: cell(d, f(d)) for name, f in measures.items()} for d in t.dataset]
    )


def premise_line(preset: str) -> str:
    """One sentence from notebook 06: on which candidate datasets each paper's premise holds."""
    t = _read(preset, "06_premises.csv")
    if t is None:
        return ""
    n = int(t.teacher_options_pool_n.min())
    on = lambda col: ", ".join(t.dataset[t[col].astype(bool)]) or "no dataset"  # noqa: E731
    learns = {d: _learns(preset, d, "lm")[0] for d in t.dataset}
    tried = [d for d, h in learns.items() if h is not None]
    students = (
        f"; the LM student learns it (notebook 05: gold beats shuffled labels on test) on "
        f"{', '.join(d for d in tried if learns[d]) or 'no dataset'} of the {len(tried)} it trained on"
        if tried
        else ""
    )
    return (
        f"Premise table (notebook 06, `{preset}`, {n} pool and dev questions per cell, rule in "
        f"`lib/premises.py`): the teacher lies above the student and below 1 (paper A) on "
        f"{on('teacher_beats_student')}; the attribution teacher lies above chance on its attribution prompt "
        f"(paper B) on {on('attribution_above_chance')}{students}; of {len(t)} candidate datasets."
    )


def premised_verdict(premises: list[Premise], verdict: str) -> str:
    """The interval's verdict where every premise holds; else 'not tested: ' and each premise that does not
    hold, with its number."""
    bad = [p for p in premises if p.holds is not True]
    return verdict if not bad else f"{stats.NOT_TESTED}: " + "; ".join(p.why_not() for p in bad)


# ---------------------------------------------------------------- the headline: one row per claim

A_PREMISES, B_PREMISES = ("students_a", "teacher", "signal"), ("attribution", "students_b")
A_TWO_STAGE, A_ONE_STAGE = (*A_PREMISES, "warm_signal"), (*A_PREMISES, "cold_signal")
CLAIMS = [  # (claim, csv, dataset, method, baseline, paper text, premises)
    (
        "A: two-stage TA-in-the-loop vs plain fine-tuning (mean relative gain over datasets)",
        "12_A_main_table.csv",
        "average",
        "two_stage",
        "plain",
        f"+{PAPER_A_AVG} %",
        A_TWO_STAGE,
    ),
    (
        "A: one-stage vs plain fine-tuning",
        "12_A_main_table.csv",
        "average",
        "one_stage",
        "plain",
        "-",
        A_ONE_STAGE,
    ),
    (
        "B: influential tokens vs fine-tuning",
        "21_B_main_table.csv",
        "average",
        "tokens",
        "ft",
        "better",
        B_PREMISES,
    ),
    (
        "B: influential tokens vs Distilling Step-by-Step",
        "21_B_main_table.csv",
        "average",
        "tokens",
        "dss",
        "better",
        B_PREMISES,
    ),
    (
        "beyond B: encoder + tagging head vs encoder fine-tuned",
        "24_B_encoder_table.csv",
        "average",
        "encoder_tokens",
        "encoder_ft",
        "-",
        ("attribution", "encoder_students"),
    ),
    (
        "beyond A+B: weak teacher's tokens weighted by the TA vs uniform",
        "25_B_weak_teacher_table.csv",
        "average",
        "tokens_ta_weight",
        "tokens_teacher",
        "-",
        ("attribution", "weak_signal", "students"),
    ),
    (
        "beyond A+B: weak teacher's tokens filtered by the TA vs uniform",
        "25_B_weak_teacher_table.csv",
        "average",
        "tokens_ta_filter",
        "tokens_teacher",
        "-",
        ("attribution", "weak_signal", "students"),
    ),
]
GT_CLAIM = "B: the teacher's top-5 words contain the ground truth (multiple choice, all datasets)"
NOT_RUN = {"ours": "not run", "MDE": "-", "premises": "-", "verdict": "-"}


def _claim_cells(preset: str, csv: str, dataset: str, method: str, baseline: str, keys) -> dict:
    t = comparison_table(preset, csv)
    if t is None:
        return NOT_RUN
    pick = t[(t.method == method) & (t.baseline == baseline)]
    r = pick[pick.dataset == dataset]
    if r.empty:
        return NOT_RUN
    r = r.iloc[0]
    datasets = list(pick.dataset[pick.dataset != "average"])
    premises = [PREMISES[k](preset, datasets) for k in keys]
    return {
        "ours": _pct(r["rel_%"], r.rel_lo, r.rel_hi),
        "MDE": f"{r['mde_rel_%']:.0f} %",
        "premises": "; ".join(p.cell() for p in premises),
        "verdict": premised_verdict(premises, r.verdict),
    }


def _gt_verdict(preset: str) -> str:
    """Top-k words against the least favourable control (the smallest paired difference): the verdict word
    of that difference's interval (t over questions, lib.stats.paired_interval) and its numbers."""
    q = _read(preset, GT_QUESTIONS)
    hit = q.hit.astype(float).to_numpy()[None]
    ivs = {c: stats.paired_interval(hit, q[c].astype(float).to_numpy()[None], "diff") for c in GT_CONTROLS}
    c, iv = min(ivs.items(), key=lambda kv: kv[1].point)
    return (
        f"{stats.verdict(iv.lo, iv.hi)} vs {GT_CONTROLS[c]}: {iv.point:+.0f} pts "
        f"[{iv.lo:+.0f}, {iv.hi:+.0f}], paired over {len(q)} questions"
    )


def _gt_cells(preset: str) -> dict:
    t = _read(preset, "23_ground_truth.csv")
    r = None if t is None else t[(t.block == "main") & (t.dataset == "all") & (t.subset == "all")]
    if r is None or r.empty:
        return NOT_RUN
    r = r.iloc[0]
    controls = f"k random words {100 * r.random:.0f} %, k option words {100 * r.random_option:.0f} %"
    if "wrong_target_hit" in r:
        controls += f", wrong option attributed {100 * r.wrong_target_hit:.0f} %"
    premises = [attribution_above_chance(preset, ["all"]), paired_hits(preset)]
    bad = any(p.holds is not True for p in premises)
    return {
        "ours": f"{_share(r, 'hit')}; controls: {controls}",
        "MDE": f"{r.mde_pts:.0f} pts",
        "premises": "; ".join(p.cell() for p in premises),
        "verdict": premised_verdict(premises, "") if bad else _gt_verdict(preset),
    }


def headline(presets: list[str]) -> pd.DataFrame:
    """claim | paper | per preset: ours [95 % interval], MDE, the premises with their numbers, verdict.
    Relative changes in % of the baseline's accuracy (crossed-components t interval, recomputed from the
    runs CSVs); the ground-truth share in % of questions (Clopper–Pearson interval, MDE around 68 %). A
    verdict is the interval's only where every premise of the claim holds (`premised_verdict`)."""
    rows = []
    for claim, csv, d, m, b, paper, keys in CLAIMS:
        rows.append({"claim": claim, "paper": paper})
        for p in presets:
            rows[-1].update({f"{k} ({p})": v for k, v in _claim_cells(p, csv, d, m, b, keys).items()})
    gt = {"claim": GT_CLAIM, "paper": f"{PAPER_B_GT:.0f} %"}
    for p in presets:
        gt.update({f"{k} ({p})": v for k, v in _gt_cells(p).items()})
    rows.insert(4, gt)
    return pd.DataFrame(rows)


INTERVAL_NOTE = (
    "intervals: 95 %, recomputed from each notebook's runs CSV, the crossed-components t interval over seeds "
    "and test questions (the seed means' variance with S - 1 df and the question variance every seed shares "
    "with Q - 1 df, each scaled by its own t quantile, in quadrature; relative changes by the delta method; "
    "a mean over datasets pools the datasets' terms with Welch–Satterthwaite df; `lib/stats.py`, coverage by "
    "simulation in `results/coverage.md`), Clopper–Pearson for the share; MDE: (t_0.975,df + t_0.8,df) x SE "
    "at the interval's effective df, the effect 80 % power would detect at two-sided 5 % (the share: normal "
    "approximation around 68 %); premises: what each verdict rests on, with its number and the notebooks it "
    'comes from; a verdict is the interval\'s only where every premise holds, else "not tested" with each '
    "premise that does not."
)
GT_NOTE = (
    "Shares with Clopper–Pearson intervals, per dataset and split by whether the teacher's own answer is "
    "right; `teacher right`: its accuracy on the prompt it is attributed with. A verdict on the 68 % claim "
    "rests on paired differences against the controls (per-question hits), and on the teacher being above "
    "chance: the headline row."
)


def rendered_presets() -> list[str]:
    """The presets whose results are committed, the fullest first (the headline reads them in this order);
    a preset none of whose claim tables is rendered yet gets no column."""
    order = ["offline_full", "offline"]
    claim_csvs = {c[1] for c in CLAIMS} | {"23_ground_truth.csv"}
    has = lambda p: any((ROOT / "results" / p / csv).exists() for csv in claim_csvs)  # noqa: E731
    return [p for p in order if has(p)] or ["offline"]


# ---------------------------------------------------------------- generated READMEs


def rendered_times(preset: str) -> dict[str, tuple[float | None, float | None, float]]:
    """notebook -> (cold s, warm s, peak MB) from results/<preset>/run_log.csv, for the notebooks whose
    rendered copy is in results/<preset>/ now (a notebook run once and since removed counts no more)."""
    log = results_dir(preset) / "run_log.csv"
    if not log.exists():
        return {}
    from .provenance import cold_warm

    rendered = {p.name for p in results_dir(preset).glob("*.ipynb")}
    return {nb: v for nb, v in cold_warm(log).items() if nb in rendered}


def run_info(preset: str, times: dict | None = None) -> str:
    where = f"{platform.machine()}, {platform.processor() or 'cpu'}, {__import__('os').cpu_count()} cores"
    times = rendered_times(preset) if times is None else times
    if not times:
        return f"machine: {where}"
    timed = {nb: c for nb, (c, _, _) in times.items() if c is not None}
    untimed = sorted(Path(nb).stem for nb in times if nb not in timed)
    total = f"{sum(timed.values()) / 60:.1f} min"
    if untimed:
        total += f" for {len(timed)} of them ({', '.join(untimed)}: no cold run logged)"
    return (
        f"machine: {where}; cold run of the {len(times)} rendered notebooks: {total} (per notebook: "
        "`run_log.csv`)"
    )


def run_sources(preset: str) -> pd.DataFrame | None:
    """How many of the preset's runs (results/<preset>/runs/) each machine kind computed, at which precision;
    None where no run was stored."""
    from .runner import RunStore

    src = RunStore(results_dir(preset) / "runs").sources()
    if not src:
        return None
    rows = [{"machine": m, "precision": p, "runs": n} for (m, p), n in sorted(src.items())]
    return pd.DataFrame(rows)


def results_readme(preset: str) -> str:
    """results/<preset>/README.md: every table of the preset, each with its interval note, and the times."""
    times = rendered_times(preset)
    parts = [
        f"# Results at the `{preset}` preset",
        "",
        f"Generated by `make readme PRESET={preset}` from the CSVs in this folder; "
        f"{run_info(preset, times)}.",
        "",
    ]
    parts += [
        "## Claims: interval, premises, verdict",
        "",
        f"Intervals and premises as in the README headline: {INTERVAL_NOTE}",
        "",
        headline([preset]).to_markdown(index=False),
        "",
    ]
    prem = premise_table(preset)
    if prem is not None:
        parts += [
            "## Premises per candidate dataset (notebook 06: pool and dev questions only)",
            "",
            premise_line(preset),
            "",
            prem.to_markdown(index=False),
            "",
            "The same datasets' premises that other notebooks measure where they run there (not measured: "
            "the notebook does not run on that dataset at this preset):",
            "",
            premise_evidence(preset).to_markdown(index=False),
            "",
        ]
    for name, t in tables(preset).items():
        parts += [f"## {TITLES[name]}", "", t.to_markdown(index=False), ""]
        raw = comparison_table(preset, TABLE_CSVS[name]) if name in TABLE_CSVS else None
        if raw is not None and "interval" in raw:
            parts += [note(raw), ""]
        if name == "GT" and _read(preset, "23_ground_truth.csv") is not None:
            parts += [GT_NOTE, ""]
    sources = run_sources(preset)
    if sources is not None:
        parts += [
            "## Where the runs were computed (`runs/`)",
            "",
            "Every run of the tables above, as written when it finished (`make reproduce CONTINUE=1` reads "
            "them instead of running them again):",
            "",
            sources.to_markdown(index=False),
            "",
        ]
    if times:
        rows = [
            {
                "notebook": nb,
                "cold (min)": "?" if c is None else f"{c / 60:.1f}",
                "warm (min)": "?" if w is None else f"{w / 60:.1f}",
            }
            for nb, (c, w, _) in times.items()
        ]
        parts += [
            "## Time per rendered notebook (`run_log.csv`)",
            "",
            pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True),
            "",
        ]
    parts += phase_section(preset)
    return "\n".join(parts)


def phase_table(t: pd.DataFrame) -> pd.DataFrame:
    """phases.csv as the results README shows it: per notebook and phase, process-seconds, tokens, the
    estimated GFLOP/s and its share of the measured GEMM peak at that precision and thread count."""
    return pd.DataFrame(
        {
            "notebook": t.notebook.str.replace(".ipynb", "", regex=False),
            "phase": t.phase,
            "precision, threads": t.precision + ", " + t.threads.astype(str),
            "calls": t.calls,
            "process s": t.seconds.round(0).astype(int),
            "tokens (k)": (t.tokens / 1e3).round(1),
            "GFLOP/s": t.gflop_s.round(1),
            "peak GFLOP/s": t.peak_gflop_s.round(0),
            "% of peak": (100 * t.share_of_peak).round(0),
        }
    )


def phase_section(preset: str) -> list[str]:
    from .phases import TABLE

    raw = _read(preset, TABLE)
    if raw is None or raw.empty:
        return []
    per = raw.groupby("phase").agg(seconds=("seconds", "sum"), gflop=("gflop", "sum"))
    total = per.seconds.sum()
    share = ", ".join(
        f"{p} {100 * r.seconds / total:.0f} %" for p, r in per.sort_values("seconds")[::-1].iterrows()
    )
    return [
        "## Where the time goes (`phases.csv`)",
        "",
        f"Per notebook, its last cold run ({', '.join(sorted(set(raw.machine)))}). "
        "Process seconds add up the processes that ran side by side (two single-thread Ray workers, or the "
        "notebook's own process on every core); the rest of a notebook's wall time is loading, tokenising "
        f"and waiting. Of {total / 60:.0f} process-minutes in these phases: {share}. GFLOP are estimated "
        "from the tokens each pass computes (pads included): 2 N per token forward, 6 N per training token, "
        "4 N per attribution pass, N the parameters outside embedding tables (lib/phases.py); the peak is "
        "the fastest GEMM measured on this machine at that precision and thread count when the run began.",
        "",
        phase_table(raw).to_markdown(index=False),
        "",
    ]


def update_readme(readme: Path = ROOT / "README.md") -> None:
    """Replace the text between <!-- results:HEADLINE --> and <!-- /results:HEADLINE --> with the headline."""
    presets = rendered_presets()
    # a premise table may be rendered before its preset's claim tables (notebook 06 alone, at 300 questions)
    tables06 = [p for p in ("offline_full", "offline") if (results_dir(p) / "06_premises.csv").exists()]
    body = (
        "Generated by `make readme` from "
        + ", ".join(f"`results/{p}/`" for p in dict.fromkeys(presets + tables06))
        + f"; {INTERVAL_NOTE}\n\n"
        + headline(presets).to_markdown(index=False)
        + "".join(f"\n\n{line}" for line in map(premise_line, tables06) if line)
    )
    text = readme.read_text()
    pat = re.compile(r"(<!-- results:HEADLINE -->)\n(?:.*?\n)?(<!-- /results:HEADLINE -->)", re.S)
    readme.write_text(pat.sub(lambda m: m.group(1) + "\n" + body + "\n" + m.group(2), text))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="write the tables of a preset and the generated READMEs")
    ap.add_argument("--preset", default="offline")
    ap.add_argument(
        "--readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update the README headline (default: for the presets the headline reads)",
    )
    args = ap.parse_args(argv)
    for p in write_markdown(args.preset).values():
        print(f"wrote {p}")
    (results_dir(args.preset) / "README.md").write_text(results_readme(args.preset) + "\n")
    print(f"wrote {results_dir(args.preset) / 'README.md'}")
    if args.readme or (args.readme is None and args.preset in rendered_presets()):
        update_readme()
        print("updated the README headline")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------- notebook 23: the 68 % analysis


def _cat(gs: list[dict]) -> dict:
    return {key: sum((g[key] for g in gs), []) for key in gs[0]}


def ground_truth_study(lm, pools: dict, P, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Notebook 23's tables from notebook parameters `P` (sections "b", "attribution"): `main` (per dataset
    and over all, by whether the teacher's own answer is right: the top-k share and its three controls),
    `questions` (one row per question: the teacher right or not, and each of the four hits, for paired
    differences), `variants` (gold vs own answer, lettered options, template words, every k and match rule)
    and `failing` (questions whose top-k words miss the gold answer)."""
    from . import attribution as A

    def attribute(exs, target, form="text"):
        return A.influential_words(
            lm, exs, method=P.gt_method, k=max(P.gt_ks + [P.k]), target=target, answer_form=form,
            batch_size=P.attr_batch_size, progress=True,
        )  # fmt: skip

    recs, heads, wrongs = {}, {}, {}
    for d, exs in pools.items():
        recs[d] = attribute(exs, "predicted")
        heads[d] = A.ground_truth(recs[d], exs, k=P.k, seed=seed)
        wrongs[d] = A.ground_truth(attribute(exs, "random_wrong"), exs, k=P.k, seed=seed)
    main, questions = [], []
    for d in list(pools) + ["all"]:
        g = _cat(list(heads.values())) if d == "all" else heads[d]
        w = _cat(list(wrongs.values())) if d == "all" else wrongs[d]
        right = np.asarray(g["target_is_gold"])
        for subset, mask in (("all", None), ("teacher right", right), ("teacher wrong", ~right)):
            r, cw = ground_truth_row(g, mask=mask), ground_truth_row(w, mask=mask)
            main.append(
                {"dataset": d, "subset": subset, "k": P.k, **r, "teacher_acc": right.mean()}
                | {"wrong_target_hit": cw["hit"], "wrong_target_hit_lo": cw["hit_lo"]}
                | {"wrong_target_hit_hi": cw["hit_hi"], "wrong_target_names_it": cw["hit_target"]}
            )
    for d, exs in pools.items():
        g, w = heads[d], wrongs[d]
        questions += [
            {"dataset": d, "id": e.id, "teacher_right": g["target_is_gold"][i], "hit": g["hit"][i]}
            | {"random": g["random"][i], "random_option": g["random_option"][i]}
            | {"wrong_target_hit": w["hit"][i]}
            for i, e in enumerate(exs)
        ]
    return {
        "main": pd.DataFrame(main),
        "questions": pd.DataFrame(questions),
        "variants": _gt_variants(lm, pools, P, recs, attribute, seed),
        "failing": _gt_failing(pools, P, recs, heads),
    }


def _gt_variants(lm, pools, P, recs, attribute, seed) -> pd.DataFrame:
    from . import attribution as A

    rows = []
    for d, exs in pools.items():
        variants = [("gold", "text", False), ("predicted", "text", False)]
        if d in P.variant_datasets:
            variants += [("predicted", "letter", False), ("predicted", "text", True)]
        for target, form, allow in variants:
            sub = exs[: P.n_variant] if (form, allow) != ("text", False) else exs
            rs = recs[d] if (target, form) == ("predicted", "text") else attribute(sub, target, form)
            rs = rs[: len(sub)]
            for match in A.MATCH_RULES:
                for k in P.gt_ks:
                    g = A.ground_truth(rs, sub, k=k, match=match, allow_template=allow, seed=seed)
                    rows.append(
                        {"dataset": d, "target": target, "match": match, "answer_form": form}
                        | {"allow_template": allow, "k": k, **ground_truth_row(g)}
                    )
    return pd.DataFrame(rows)


def _gt_failing(pools, P, recs, heads) -> pd.DataFrame:
    from . import attribution as A

    rows = []
    for d, exs in pools.items():
        for i in [i for i, h in enumerate(heads[d]["hit"]) if not h][: P.n_failing]:
            e, r = exs[i], recs[d][i]
            rows.append(
                {"dataset": d, "id": e.id, "question": e.question[:110], "gold": e.answer}
                | {"teacher answer": r["target_option"]}
                | {"top_words": ", ".join(w["word"] for w in A.select_words(r, P.k))}
            )
    return pd.DataFrame(rows)
