import gzip
import json

import pytest

from lib import data
from lib.common import BB, ReproError
from lib.fixtures import write_synthetic_assets

from .conftest import needs_assets


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic_assets(tmp_path_factory.mktemp("assets"), n=40)


@pytest.mark.parametrize("name", sorted(data.LOADERS))
def test_loaders_read_package_formats(synth, name):
    exs = data.LOADERS[name](synth)
    assert len(exs) == 40
    assert len({e.id for e in exs}) == 40
    for e in exs:
        assert e.kind in data.KINDS and e.dataset == name and e.answer
        if e.choices:
            assert e.choices[e.label] == e.answer
    if name == "gsm8k":
        assert "<<" not in exs[0].rationale and exs[0].answer.lstrip("-").isdigit()
    if name == "strategyqa":
        assert {e.answer for e in exs} <= {"yes", "no"} and not exs[0].rationale.lower().startswith(
            ("yes", "no")
        )
    if name == "boolq":
        assert {e.answer for e in exs} == {"yes", "no"} and exs[0].question.endswith("?")
    if name == "sciq":  # the support passage is the gold explanation; the answer is not always last
        assert exs[0].rationale and len({e.label for e in exs}) > 1


def test_bigbench_tasks_load_from_the_folder_the_setting_names(synth, tmp_path, monkeypatch):
    """StrategyQA and MathQA come from no served package: DISTILL_BIGBENCH names BIG-bench's benchmark_tasks
    folder (here a copy of the synthetic files in the real task.json format); unset, one line says how."""
    empty = tmp_path / "no-assets"
    empty.mkdir()
    monkeypatch.delenv("DISTILL_BIGBENCH", raising=False)
    with pytest.raises(ReproError, match="DISTILL_BIGBENCH"):
        data.LOADERS["strategyqa"](empty)
    monkeypatch.setenv("DISTILL_BIGBENCH", str(synth / BB))
    for name in sorted(data.BIGBENCH):
        exs = data.LOADERS[name](empty)
        assert len(exs) == 40 and exs[0].rationale
    monkeypatch.setenv("DISTILL_BIGBENCH", str(tmp_path / "nowhere"))
    with pytest.raises(ReproError, match="data file missing"):
        data.LOADERS["mathqa"](empty)


def test_arc_challenge_dedups_request_file(synth):
    # the request file repeats each doc once per option: 20 arrow + 20 unique docs, not 20 + 80
    assert len(data.LOADERS["arc_challenge"](synth)) == 40


def test_split_is_deterministic_disjoint_and_order_free(synth):
    exs = data.LOADERS["commonsense_qa"](synth)
    a = data.split_examples(exs, seed=0)
    b = data.split_examples(list(reversed(exs)), seed=0)
    assert {k: [e.id for e in v] for k, v in a.items()} == {k: [e.id for e in v] for k, v in b.items()}
    ids = [e.id for v in a.values() for e in v]
    assert len(ids) == len(set(ids)) == len(exs)
    assert len(a["test"]) == 10 and len(a["dev"]) == 6
    c = data.split_examples(exs, seed=1)
    assert [e.id for e in c["test"]] != [e.id for e in a["test"]]


def test_caps_take_prefixes(synth, monkeypatch):
    monkeypatch.setattr(data, "asset_root", lambda preset: synth)
    full = data.load_splits("boolq", "offline")
    capped = data.load_splits("boolq", "offline", caps={"pool": 5})
    assert [e.id for e in capped["pool"]] == [e.id for e in full["pool"][:5]]


def test_numeric_test_cap_applies_to_generated_answers_only(synth, monkeypatch):
    monkeypatch.setattr(data, "asset_root", lambda preset: synth)
    caps = {"pool": 5, "test": 6, "test_numeric": 3, "dev_numeric": 2}
    gsm = data.load_splits("gsm8k", "offline", caps=caps)
    csqa = data.load_splits("commonsense_qa", "offline", caps=caps)
    assert [e.id for e in gsm["test"]] == [e.id for e in data.load_splits("gsm8k", "offline")["test"][:3]]
    assert len(csqa["test"]) == 6 and len(gsm["pool"]) == len(csqa["pool"]) == 5
    assert len(gsm["dev"]) == 2 and len(csqa["dev"]) == len(
        data.load_splits("commonsense_qa", "offline")["dev"]
    )
    assert caps == {
        "pool": 5,
        "test": 6,
        "test_numeric": 3,
        "dev_numeric": 2,
    }  # the preset's dict is not consumed
    with pytest.raises(ReproError, match="unknown split cap 'tset'"):
        data.load_splits("gsm8k", "offline", caps={"tset": 3})


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ReproError, match="unknown dataset 'cqa'; valid: arc_challenge"):
        data.load_dataset("cqa", "smoke")


def test_missing_assets_say_make_setup(tmp_path):
    with pytest.raises(ReproError, match="make setup"):
        data.LOADERS["gsm8k"](tmp_path)


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write(json.dumps({"doc": {}}) + "\n{not json\n")
    with pytest.raises(ReproError, match=r"x.jsonl.gz, line 2"):
        data.read_jsonl_gz(p)


def test_malformed_record_names_file_and_record(synth, tmp_path):
    p = tmp_path / "task.json"
    p.write_text(
        json.dumps(
            {"examples": [{"input": "q?", "target_scores": {"Yes": 1, "No": 0}}, {"input": "no scores"}]}
        )
    )
    with pytest.raises(ReproError, match="record 2"):
        data._mapped(data.read_bigbench(p), lambda r, n: data.map_bigbench_yesno(r, n), p)


def test_hub_format_goes_through_the_same_mappers(tmp_path):
    """The paper preset's loaders, on small local files in the hub datasets' format."""
    rows = {
        "commonsense_qa": {
            "id": "q1",
            "question": "Where?",
            "question_concept": "x",
            "choices": {"label": list("ABCDE"), "text": ["a", "b", "c", "d", "e"]},
            "answerKey": "C",
        },
        "gsm8k": {"question": "1+1?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"},
        "strategyqa": {
            "qid": "s1",
            "term": "t",
            "description": "d",
            "question": "Is it?",
            "answer": False,
            "facts": ["A.", "B."],
        },
        "svamp": {
            "ID": "v1",
            "Body": "Tom has 3.",
            "Question": "How many?",
            "Equation": "( 1.0 + 2.0 )",
            "Answer": 3.0,
            "Type": "Addition",
        },
        "esnli": {
            "premise": "A man sleeps.",
            "hypothesis": "A man is awake.",
            "label": 2,
            "explanation_1": "Sleeping is not awake.",
        },
    }
    expect = {"commonsense_qa": "c", "gsm8k": "2", "strategyqa": "no", "svamp": "3", "esnli": "contradiction"}
    for name, row in rows.items():
        split = data.HUB[name][2]
        p = tmp_path / f"{name}.jsonl"
        p.write_text(json.dumps(row) + "\n")
        (e,) = data.load_hub(name, data_files={split: str(p)})
        assert e.answer == expect[name] and e.dataset == name


def test_paper_pools_come_from_the_hub_train_split(tmp_path):
    """The pool is the train split; dev and test share out the evaluation split; no id is in both."""
    row = lambda i: {"question": f"q{i}", "answer": f"{i} apples. #### {i}"}  # GSM8K's hub format
    files = {}
    for split, n in (("train", 20), ("test", 16)):
        p = tmp_path / f"{split}.jsonl"
        p.write_text("".join(json.dumps(row(i)) + "\n" for i in range(n)))
        files[split] = str(p)
    s = data.hub_splits("gsm8k", data_files=files)
    assert len(s["pool"]) == 20 and len(s["dev"]) + len(s["test"]) == 16 and len(s["dev"]) == 6
    assert all(e.id.startswith("train-") for e in s["pool"])
    assert not {e.id for e in s["pool"]} & {e.id for e in s["dev"] + s["test"]}
    assert {e.question for e in s["pool"]} == {f"q{i}" for i in range(20)}


@needs_assets
@pytest.mark.parametrize("name", sorted(set(data.LOADERS) - data.BIGBENCH))
def test_real_files_have_documented_sizes(name):
    exs = data.load_dataset(name, "offline")
    assert len(exs) == data.EXPECTED_SIZES[name]
    assert len({e.id for e in exs}) == len(exs)
    if name == "gsm8k":
        assert all(e.rationale and e.answer.lstrip("-").replace(".", "").isdigit() for e in exs)
    if name == "sciq":
        assert sum(e.rationale is not None for e in exs) > 0.85 * len(exs)
