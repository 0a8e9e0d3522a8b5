"""The papers' numbers, the comparison tables and their verdicts, and the generated READMEs.

Notebooks call the table functions here (so every comparison gets the same interval, MDE and verdict word,
lib.stats.verdict); `make readme` and notebook 30 read back only the CSVs the notebooks wrote, never
re-running an experiment. A missing CSV gives a row that says which notebook has not run, never a number.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .common import ROOT, results_dir

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
    """Every method of `runs` against `baseline` (lib.stats.compare_table: two-level paired bootstrap, MDE,
    verdict); `paper`: {(dataset, method): relative %} where the paper gives a number."""
    return stats.compare_table(runs, baseline, paper=paper)


def accuracies(runs: pd.DataFrame, keys=("dataset", "method")) -> pd.DataFrame:
    """Accuracy of every (keys) cell with its two-level bootstrap interval (seeds, then questions), for the
    figures and the ablations; acc_std is the spread over seeds."""
    rows = []
    for k, g in runs.groupby(list(keys), sort=False):
        x = np.stack([stats.as_correct(c) for c in g.sort_values("seed").correct])
        iv = stats.accuracy_bootstrap(x, rng=np.random.default_rng(0))
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


def table_a_main(runs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 12: one-stage and two-stage against plain fine-tuning; the paper's +20.79 % on the two-stage
    average over datasets."""
    return comparison(runs, "plain", paper={("average", "two_stage"): PAPER_A_AVG})


def table_b_main(runs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 21: every method against fine-tuning, then, where DSS ran, the influential-token students
    against Distilling Step-by-Step (the paper: tokens beat both, with no single number to test)."""
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
    accuracy against the shuffled-label control's (two-level paired bootstrap, MDE, verdict)."""
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
    (beat the pretrained dev accuracy in >= `min_beat` of seeds, and gain over shuffled labels on test); a
    dataset where none does is one the student does not learn."""
    rows = []
    for (st, d), g in table.groupby(["student", "dataset"], sort=False):
        ok = g[(g.beat_pretrained >= min_beat) & (g.verdict == stats.GAIN)]
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
    fp32-trained ones on the same seeds and questions (two-level paired bootstrap, MDE, verdict), the mean
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
    """One row per ablation setting: accuracy with its two-level bootstrap interval (one seed: questions
    only)."""
    return accuracies(runs, keys)


def note(table: pd.DataFrame) -> str:
    """The line printed under every comparison table: interval kind and minimum detectable effect."""
    return stats.table_note(table)


# ---------------------------------------------------------------- reading the CSVs back


def _read(preset: str, name: str) -> pd.DataFrame | None:
    p = results_dir(preset) / name
    return pd.read_csv(p, keep_default_na=True) if p.exists() else None


def _pct(x, lo=None, hi=None) -> str:
    if x is None or pd.isna(x):
        return "-"
    s = f"{x:+.1f} %"
    if lo is not None and not pd.isna(lo):
        s += f" [{lo:+.1f}, {hi:+.1f}]"
    return s


def _missing(nb: str) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "-", "ours": f"notebook {nb} not run", "verdict": "-"}])


def table_vs(preset: str, csv: str, nb: str) -> pd.DataFrame:
    """A comparison CSV as a readable table: accuracy, relative change [interval], MDE, verdict."""
    t = _read(preset, csv)
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


def table_gt(preset: str) -> pd.DataFrame:
    t = _read(preset, "23_ground_truth.csv")
    if t is None:
        return _missing("23")
    main = t[t.block == "main"]
    f = lambda r, c: f"{100 * r[c]:.0f} % [{100 * r[c + '_lo']:.0f}, {100 * r[c + '_hi']:.0f}]"  # noqa: E731
    return pd.DataFrame(
        [
            {
                "dataset": r.dataset,
                "teacher": r.subset,
                "n": int(r.n),
                "top-k contain gold": f(r, "hit"),
                "k random words": f(r, "random"),
                "k option words": f(r, "random_option"),
                "MDE vs 68 %": f"{r.mde_pts:.0f} pts",
                "verdict vs 68 %": r.verdict,
                "above random words": "yes" if r.above_random else "no",
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


# ---------------------------------------------------------------- the headline: one row per claim

CLAIMS = [  # (claim, csv, dataset, method, baseline, paper text)
    (
        "A: two-stage TA-in-the-loop vs plain fine-tuning (mean relative gain over datasets)",
        "12_A_main_table.csv",
        "average",
        "two_stage",
        "plain",
        f"+{PAPER_A_AVG} %",
    ),
    ("A: one-stage vs plain fine-tuning", "12_A_main_table.csv", "average", "one_stage", "plain", "-"),
    ("B: influential tokens vs fine-tuning", "21_B_main_table.csv", "average", "tokens", "ft", "better"),
    (
        "B: influential tokens vs Distilling Step-by-Step",
        "21_B_main_table.csv",
        "average",
        "tokens",
        "dss",
        "better",
    ),
    (
        "beyond B: encoder + tagging head vs encoder fine-tuned",
        "24_B_encoder_table.csv",
        "average",
        "encoder_tokens",
        "encoder_ft",
        "-",
    ),
    (
        "beyond A+B: weak teacher's tokens weighted by the TA vs uniform",
        "25_B_weak_teacher_table.csv",
        "average",
        "tokens_ta_weight",
        "tokens_teacher",
        "-",
    ),
    (
        "beyond A+B: weak teacher's tokens filtered by the TA vs uniform",
        "25_B_weak_teacher_table.csv",
        "average",
        "tokens_ta_filter",
        "tokens_teacher",
        "-",
    ),
]


def _claim_cell(preset: str, csv: str, dataset: str, method: str, baseline: str) -> tuple[str, str, str]:
    t = _read(preset, csv)
    if t is None:
        return "not run", "-", "-"
    r = t[(t.dataset == dataset) & (t.method == method) & (t.baseline == baseline)]
    if r.empty:
        return "not run", "-", "-"
    r = r.iloc[0]
    return _pct(r["rel_%"], r.rel_lo, r.rel_hi), f"{r['mde_rel_%']:.0f} %", r.verdict


def headline(presets: list[str]) -> pd.DataFrame:
    """claim | paper | per preset: ours [95 % interval], MDE, verdict. Relative changes in % of the baseline's
    accuracy; the ground-truth share in % of questions (Clopper–Pearson interval, MDE around 68 %)."""
    rows = []
    for claim, csv, d, m, b, paper in CLAIMS:
        row = {"claim": claim, "paper": paper}
        for p in presets:
            ours, mde_, v = _claim_cell(p, csv, d, m, b)
            row.update({f"ours ({p})": ours, f"MDE ({p})": mde_, f"verdict ({p})": v})
        rows.append(row)
    gt = {
        "claim": "B: the teacher's top-5 words contain the ground truth (multiple choice, all datasets)",
        "paper": f"{PAPER_B_GT:.0f} %",
    }
    for p in presets:
        t = _read(p, "23_ground_truth.csv")
        r = None if t is None else t[(t.block == "main") & (t.dataset == "all") & (t.subset == "all")]
        if r is None or r.empty:
            gt.update({f"ours ({p})": "not run", f"MDE ({p})": "-", f"verdict ({p})": "-"})
            continue
        r = r.iloc[0]
        control = "above" if r.above_random else "not above"
        gt.update(
            {
                f"ours ({p})": f"{100 * r.hit:.0f} % [{100 * r.hit_lo:.0f}, {100 * r.hit_hi:.0f}], {control} "
                f"k random words ({100 * r.random:.0f} %)",
                f"MDE ({p})": f"{r.mde_pts:.0f} pts",
                f"verdict ({p})": r.verdict,
            }
        )
    rows.insert(4, gt)
    return pd.DataFrame(rows)


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
    from .reproduce import cold_warm

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
    for name, t in tables(preset).items():
        parts += [f"## {TITLES[name]}", "", t.to_markdown(index=False), ""]
        raw = _read(preset, TABLE_CSVS[name]) if name in TABLE_CSVS else None
        if raw is not None and "interval" in raw:
            parts += [note(raw), ""]
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
    return "\n".join(parts)


def update_readme(readme: Path = ROOT / "README.md") -> None:
    """Replace the text between <!-- results:HEADLINE --> and <!-- /results:HEADLINE --> with the headline."""
    presets = rendered_presets()
    body = (
        "Generated by `make readme` from "
        + ", ".join(f"`results/{p}/`" for p in presets)
        + "; intervals: 95 %, two-level paired bootstrap over seeds and test questions (Clopper–Pearson for "
        "the share); MDE: the effect 80 % power would detect at two-sided 5 %.\n\n"
        + headline(presets).to_markdown(index=False)
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
