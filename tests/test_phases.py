import json
import time

import numpy as np
import pandas as pd
import pytest

from lib import phases
from lib.models import load_model


@pytest.fixture
def record(tmp_path, monkeypatch):
    path = tmp_path / "phases.jsonl"
    monkeypatch.setenv(phases.ENV, str(path))

    def read():
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    return read


def test_an_inner_phase_is_taken_out_of_the_outer_one_and_gets_its_own_tokens(record):
    with phases.phase("train", 10):
        phases.count(5)
        time.sleep(0.05)
        with phases.phase("score", 10):
            phases.count(7)
            time.sleep(0.1)
        assert not record()  # written when the outermost phase closes
    inner, outer = record()
    assert (inner["phase"], inner["tokens"], outer["phase"], outer["tokens"]) == ("score", 7, "train", 5)
    assert 0.1 <= inner["seconds"] < 0.14 and 0.05 <= outer["seconds"] < 0.09
    phases.count(3)  # outside every phase: nowhere
    assert len(record()) == 2


def test_nothing_is_written_without_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(phases.ENV, raising=False)
    with phases.phase("score", 1):
        phases.count(1)
    assert not list(tmp_path.iterdir())


def test_scoring_and_generation_count_every_position_they_compute(record):
    lm = load_model("tiny-llama")
    prompts, conts = ["a b c", "a b c d e f"], ["x", "y z"]
    width = max(len(lm.prompt_ids(p) + lm.encode(c)) for p, c in zip(prompts, conts))
    lm.score(prompts, conts, batch_size=8)
    gen = lm.generate(prompts, max_new_tokens=4, batch_size=8, stop=())
    (s, g) = record()
    assert s["phase"] == "score" and s["tokens"] == 2 * width  # one padded pass of both rows
    p_width = max(len(lm.prompt_ids(p)) for p in prompts)
    assert len(gen) == 2  # greedy, no row ends early on this model: 4 decoding steps of 2 rows
    assert g["phase"] == "generate" and g["tokens"] == 2 * p_width + 2 * 4
    emb = lm.model.get_input_embeddings().weight.numel()
    assert s["params"] == g["params"] == sum(p.numel() for p in lm.model.parameters()) - emb


def test_summary_estimates_gflop_from_tokens_and_compares_with_the_peak(tmp_path):
    recs = [
        {
            "phase": "train",
            "precision": "fp32",
            "params": 10**6,
            "tokens": 1000,
            "seconds": 2.0,
            "threads": 1,
        },
        {
            "phase": "train",
            "precision": "fp32",
            "params": 10**6,
            "tokens": 3000,
            "seconds": 2.0,
            "threads": 1,
        },
        {"phase": "score", "precision": "bf16", "params": 10**6, "tokens": 500, "seconds": 1.0, "threads": 2},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    t = phases.summary(path, {("fp32", 1): 6e9}).set_index("phase")
    assert t.loc["train", "calls"] == 2 and t.loc["train", "gflop"] == pytest.approx(6 * 1e6 * 4000 / 1e9)
    assert t.loc["train", "gflop_s"] == pytest.approx(6.0) and t.loc[
        "train", "share_of_peak"
    ] == pytest.approx(1)
    assert t.loc["score", "gflop"] == pytest.approx(2 * 1e6 * 500 / 1e9) and np.isnan(
        t.loc["score", "peak_gflop_s"]
    )


def test_a_notebooks_rows_are_replaced_by_its_next_cold_run(tmp_path):
    rec = tmp_path / "r.jsonl"
    rec.write_text(
        json.dumps(
            {"phase": "score", "precision": "fp32", "params": 1, "tokens": 4} | {"seconds": 1.0, "threads": 1}
        )
        + "\n"
    )
    phases.record_notebook(tmp_path, "10_a.ipynb", rec, {}, "h1", cold=True)
    phases.record_notebook(tmp_path, "20_b.ipynb", rec, {}, "h1", cold=True)
    phases.record_notebook(
        tmp_path, "10_a.ipynb", tmp_path / "none.jsonl", {}, "h1", cold=True
    )  # nothing ran
    phases.record_notebook(tmp_path, "10_a.ipynb", rec, {}, "h9", cold=False)  # warm: its uncached steps ran
    t = pd.read_csv(tmp_path / phases.TABLE)
    assert list(t.notebook) == ["10_a.ipynb", "20_b.ipynb"] and set(t.config_hash) == {"h1"}
    phases.record_notebook(tmp_path, "10_a.ipynb", rec, {}, "h2", cold=True)
    t = pd.read_csv(tmp_path / phases.TABLE)
    assert list(t.notebook) == ["10_a.ipynb", "20_b.ipynb"] and list(t.config_hash) == ["h2", "h1"]


def test_ray_workers_record_into_the_notebooks_file(monkeypatch, tmp_path):
    import ray

    from lib import runner

    seen = {}
    monkeypatch.setenv(phases.ENV, str(tmp_path / "p.jsonl"))
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    runner.ray_init(1)
    assert seen["runtime_env"]["env_vars"][phases.ENV] == str(tmp_path / "p.jsonl")


def test_a_peak_is_the_best_of_its_passes(monkeypatch):
    # the first pass ran beside other load on the machine: the second, undisturbed one counts
    seen = iter([1e9, 5e9] * 4)
    monkeypatch.setattr(phases, "matmul_peak", lambda dtype, repeats: next(seen))
    monkeypatch.setattr("lib.common.bf16_hardware", lambda: False)
    assert phases.measure_peaks(threads=(1, 2)) == {("fp32", 1): 5e9, ("fp32", 2): 5e9}
