"""Paper-style improvement tables from the CSVs the notebooks wrote (never re-runs an experiment), and the
README's results section generated from them (`make readme`, or notebook 30).

Every row: ours (mean, interval, seeds) beside the paper's published figure and a one-word verdict
(lib.evaluation.verdict: 'replicates' / 'direction only' / 'does not'); a missing CSV gives a row that says
which notebook has not been run, never a number.
"""
from __future__ import annotations

import argparse
import platform
import re
import sys
from pathlib import Path

import pandas as pd

from .common import ROOT, bench_name, results_dir
from .evaluation import compare_methods

PAPER_A_AVG = 20.79  # Zhou & Ai 2024: average relative improvement of the two-stage framework over plain FT
PAPER_B_GT = 68.0  # Ballout et al. 2024: share of extracted tokens containing the ground truth (multiple choice)
# Hsieh et al. 2023, T5-Base, accuracy %: printed beside paper B's table for scale only
PAPER_DSS_T5_BASE = {
    "standard fine-tuning": {"esnli": 88.38, "anli": 43.58, "commonsense_qa": 62.19, "svamp": 62.63},
    "DSS (PaLM rationales)": {"esnli": 89.51, "anli": 49.58, "commonsense_qa": 63.29, "svamp": 65.50},
}


def verdict(point: float, lo: float, hi: float) -> str:
    """One word on a claimed gain: 'replicates' when our interval excludes zero on the positive side,
    'direction only' when the point estimate is positive but the interval includes zero, else 'does not'."""
    if pd.isna(point):
        return "undefined"
    if lo > 0:
        return "replicates"
    return "direction only" if point > 0 else "does not"


def comparison(runs: pd.DataFrame, baseline: str, paper: dict | None = None) -> pd.DataFrame:
    """Every method of `runs` against `baseline` (lib.evaluation.compare_methods), with the paper's number
    where it gives one (`paper`: {(dataset, method): %}) and a verdict on every non-baseline row."""
    table = compare_methods(runs, baseline=baseline)
    paper = paper or {}
    table["paper_%"] = [paper.get((d, m), float("nan")) for d, m in zip(table.dataset, table.method)]
    table["verdict"] = [verdict(a, lo, hi) if m != baseline else "" for a, lo, hi, m in
                        zip(table["rel_impr_%"], table.rel_lo, table.rel_hi, table.method)]
    return table


def table_a_main(runs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 12: every method against plain fine-tuning; the paper's +20.79 % on the two-stage average."""
    return comparison(runs, "plain", paper={("average", "two_stage"): PAPER_A_AVG})


def table_b_main(runs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 21: every method against fine-tuning, and against Distilling Step-by-Step."""
    table = comparison(runs, "ft")
    dss = comparison(runs[runs.method != "ft"], "dss")[["dataset", "method", "rel_impr_%", "rel_lo", "rel_hi",
                                                          "verdict"]]
    dss.columns = ["dataset", "method", "vs_dss_%", "vs_dss_lo", "vs_dss_hi", "verdict_vs_dss"]
    table = table.rename(columns={"verdict": "verdict_vs_ft"}).merge(dss, on=["dataset", "method"], how="left")
    table.loc[table.method == "ft", "verdict_vs_dss"] = ""
    return table


def _read(preset: str, name: str) -> pd.DataFrame | None:
    p = results_dir(preset) / name
    return pd.read_csv(p) if p.exists() else None


def _fmt(x, lo=None, hi=None, pct=True) -> str:
    if x is None or pd.isna(x):
        return "-"
    s = f"{x:+.1f} %" if pct else f"{x:.3f}"
    if lo is not None and not pd.isna(lo):
        s += f" [{lo:+.1f}, {hi:+.1f}]" if pct else f" [{lo:.3f}, {hi:.3f}]"
    return s


def table_vs(preset: str, csv: str, notebook: str, baseline: str) -> pd.DataFrame:
    """Every method of a notebook's table against its baseline (paper A's 12, and the beyond-the-paper 24, 25)."""
    t = _read(preset, csv)
    if t is None:
        return pd.DataFrame([{"dataset": "-", "ours": f"notebook {notebook} not run", "verdict": "-"}])
    base = t[t.method == baseline].set_index("dataset").acc_mean
    return pd.DataFrame([{"dataset": r.dataset, "method": r.method, "seeds": int(r.seeds),
                          f"{baseline} acc": _fmt(base.get(r.dataset), pct=False), "method acc": _fmt(r.acc_mean, r.acc_lo, r.acc_hi, pct=False),
                          f"vs {baseline} (95 % CI)": _fmt(r["rel_impr_%"], r.rel_lo, r.rel_hi),
                          "verdict": r.verdict}
                         for _, r in t[t.method != baseline].iterrows()])


def table_a(preset: str) -> pd.DataFrame:
    t = table_vs(preset, "12_A_main_table.csv", "12", "plain")
    paper = ([f"+{PAPER_A_AVG} %" if (d == "average" and m == "two_stage") else "-" for d, m in zip(t.dataset, t.method)]
             if "method" in t else f"+{PAPER_A_AVG} % (average)")
    t.insert(len(t.columns) - 1, "paper", paper)
    return t


def table_b(preset: str) -> pd.DataFrame:
    t = _read(preset, "21_B_main_table.csv")
    if t is None:
        return pd.DataFrame([{"dataset": "-", "ours": "notebook 21 not run", "paper": "beats FT and DSS", "verdict": "-"}])
    rows = []
    for _, r in t[t.method.isin(["tokens", "hint"])].iterrows():
        rows.append({"dataset": r.dataset, "method": r.method, "seeds": int(r.seeds),
                     "accuracy": _fmt(r.acc_mean, r.acc_lo, r.acc_hi, pct=False),
                     "vs FT": _fmt(r["rel_impr_%"], r.rel_lo, r.rel_hi), "verdict vs FT": r.verdict_vs_ft,
                     "vs DSS": _fmt(r["vs_dss_%"], r.vs_dss_lo, r.vs_dss_hi), "verdict vs DSS": r.verdict_vs_dss})
    return pd.DataFrame(rows)


def table_gt(preset: str) -> pd.DataFrame:
    t = _read(preset, "23_ground_truth.csv")
    if t is None:
        return pd.DataFrame([{"dataset": "-", "ours": "notebook 23 not run", "paper": f"{PAPER_B_GT:.0f} %", "verdict": "-"}])
    # the paper's setting as we read it: gold target, option text, template words excluded, k = 5
    sel = (t.target == "gold") & (t.answer_form == "text") & (~t.allow_template.astype(bool)) & (t.k == 5)
    sel &= t.block == "main"
    rows = []
    for _, r in t[sel].iterrows():
        share, lo, hi = 100 * r["share"], 100 * r["ci_lo"], 100 * r["ci_hi"]
        rows.append({"dataset": r["dataset"], "n": int(r["n"]), "top-5 words contain the gold answer": f"{share:.0f} % [{lo:.0f}, {hi:.0f}]",
                     "random 5 words": f"{100 * r['random']:.0f} % [{100 * r['random_lo']:.0f}, {100 * r['random_hi']:.0f}]",
                     "strongest distractor": f"{100 * r['distractor']:.0f} % [{100 * r['distractor_lo']:.0f}, {100 * r['distractor_hi']:.0f}]",
                     "paper": f"{PAPER_B_GT:.0f} %",
                     "verdict": "replicates" if hi >= PAPER_B_GT else "does not",
                     # the share means something only where it beats the controls with non-overlapping intervals
                     "above both controls": "yes" if r["ci_lo"] > max(r["random_hi"], r["distractor_hi"]) else "no"})
    return pd.DataFrame(rows)


def table_ablation(preset: str, csv: str, notebook: str) -> pd.DataFrame:
    """Ablation settings (13, 22): accuracy with its 95 % interval over test questions, and seeds."""
    t = _read(preset, csv)
    if t is None:
        return pd.DataFrame([{"group": "-", "ours": f"notebook {notebook} not run"}])
    cols = {"group": t.group, "setting": t.setting, "method": t.method, "seeds": t.seeds,
            "accuracy [95 % CI]": [_fmt(a, lo, hi, pct=False) for a, lo, hi in zip(t.acc_mean, t.acc_lo, t.acc_hi)]}
    if "w_correct" in t:  # paper A: how the TA weighted right vs wrong teacher demonstrations
        cols["teacher acc bought"] = t.teacher_acc_bought.round(2)
        cols["weight right / wrong"] = [f"{a:.2f} / {b:.2f}" if pd.notna(a) and pd.notna(b) else "-" for a, b in zip(t.w_correct, t.w_wrong)]
    return pd.DataFrame(cols)


TITLES = {
    "A": "Paper A: two-stage TA-in-the-loop vs plain fine-tuning (relative improvement)",
    "B": "Paper B: influential-token students vs fine-tuning and Distilling Step-by-Step",
    "GT": "Paper B: do the top-5 influential words contain the ground truth?",
    "ENC": "Beyond paper B: encoder student with a tagging head vs the same encoder fine-tuned",
    "WEAK": "Beyond both papers: a weak teacher's tokens weighted / filtered by the TA vs uniform",
}


def tables(preset: str) -> dict[str, pd.DataFrame]:
    return {"A": table_a(preset), "B": table_b(preset), "GT": table_gt(preset),
            "ENC": table_vs(preset, "24_B_encoder_table.csv", "24", "encoder_ft"),
            "WEAK": table_vs(preset, "25_B_weak_teacher_table.csv", "25", "tokens_teacher")}


def write_markdown(preset: str) -> dict[str, Path]:
    out = {}
    for name, t in tables(preset).items():
        p = results_dir(preset) / f"30_table_{name}.md"
        p.write_text(t.to_markdown(index=False) + "\n")
        out[name] = p
    return out


def run_info(preset: str) -> str:
    log = results_dir(preset) / "run_log.csv"
    where = f"{platform.machine()}, {platform.processor() or 'cpu'}, {__import__('os').cpu_count()} cores"
    if not log.exists():
        return f"machine: {where}"
    from .reproduce import cold_warm

    m = lambda x: "?" if x is None else f"{x / 60:.1f}"
    cw = cold_warm(log)
    total = lambda i: m(None if any(v[i] is None for v in cw.values()) else sum(v[i] for v in cw.values()))
    return (f"machine: {where}; notebooks in all, cold / warm: {total(0)} / {total(1)} min; per notebook (min; ? = the cold "
            "run was not logged by `make reproduce`): " + ", ".join(f"{nb.split('_')[0]} {m(c)} / {m(w)}" for nb, (c, w, _) in cw.items()))


def update_readme(preset: str = "offline", readme: Path = ROOT / "README.md") -> None:
    """Replace the text between <!-- results:NAME --> and <!-- /results:NAME --> with the current tables."""
    text = readme.read_text()
    cmd = f"`PRESET={preset} make reproduce` (then `make readme`)"
    blocks = {name: f"Produced by {cmd}; {run_info(preset)}.\n\n" + t.to_markdown(index=False)
              for name, t in tables(preset).items()}
    z = _read(preset, "00_zero_shot.csv")
    if z is not None:
        blocks["00"] = (f"Produced by {cmd}; accuracy on the dev split, 95 % bootstrap interval.\n\n" +
                        z.assign(acc=lambda d: [f"{a:.1%} [{l:.1%}, {h:.1%}]" for a, l, h in zip(d.acc, d.ci_lo, d.ci_hi)],
                                 chance=lambda d: d.chance.map("{:.1%}".format), majority=lambda d: d.majority.map(lambda x: "-" if pd.isna(x) else f"{x:.1%}"))
                        [["model", "dataset", "method", "n", "acc", "chance", "majority"]].to_markdown(index=False))
    bench = ROOT / "results" / f"{bench_name(preset)}.md"
    if bench.exists():  # written by `make bench`; its first line is a title
        blocks["BENCH"] = "Produced by `make bench` (`results/bench.md`, `results/bench.csv`).\n\n" + \
            bench.read_text().split("\n", 1)[1].strip().replace("\n## ", "\n#### ")
    for name, csv, nb in (("ABL_A", "13_A_ablations.csv", "13"), ("ABL_B", "22_B_ablations.csv", "22")):
        blocks[name] = f"Produced by {cmd}; {run_info(preset)}.\n\n" + table_ablation(preset, csv, nb).to_markdown(index=False)
    for name, body in blocks.items():
        # tolerant of an empty block: the markers may sit on consecutive lines
        pat = re.compile(rf"(<!-- results:{name} -->)\n(?:.*?\n)?(<!-- /results:{name} -->)", re.S)
        text = pat.sub(lambda m: m.group(1) + "\n" + body + "\n" + m.group(2), text)
    readme.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="write the improvement tables and the README results section")
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                    help="update the README results section (default: only for the offline preset)")
    args = ap.parse_args(argv)
    for name, p in write_markdown(args.preset).items():
        print(f"wrote {p}")
    if args.readme or (args.readme is None and args.preset == "offline"):
        update_readme(args.preset)
        print("updated README.md results section")
    return 0


if __name__ == "__main__":
    sys.exit(main())
