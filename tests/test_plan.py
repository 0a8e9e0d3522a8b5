"""lib.plan: the paper preset's dry run at a reduced grid on the meta device, its FLOPs against hand formulas,
and planted errors (a sequence past a model's positions, a wrong hidden size) failing it."""

import copy
import json
import shutil

import pytest
import torch

from lib import plan as P
from lib.common import ReproError
from lib.config import get_preset

LLAMA, T5, MINILM = (
    "meta-llama/Llama-2-7b-chat-hf",
    "google/flan-t5-xl",
    "sentence-transformers/all-MiniLM-L6-v2",
)


def small_paper() -> dict:
    """The paper preset with one dataset, one seed and one setting per grid: the paper's models, batch sizes
    and sequence lengths, fewer runs."""
    cfg = copy.deepcopy(get_preset("paper"))
    d = ["commonsense_qa"]
    cfg["data"]["datasets"] = d
    cfg["teachers"].update(datasets=d, lm_datasets=d)
    cfg["signals"].update(datasets=d, lm_datasets=d, student_datasets=d, ta_spans=["full"])
    cfg["a"].update(
        datasets=d, seeds=[0], methods=["plain", "two_stage"], ablation_seeds=[0], ablation_groups=["use"]
    )
    cfg["b"].update(datasets=d, seeds=[0], ablation_seeds=[0], methods=["tokens"])
    return cfg


@pytest.fixture(scope="module")
def paper():
    # paper A's and paper B's main tables run the heavy paths: self-consistency sampling (decoding with a KV
    # cache), TA scoring, option scoring, the student's training step, attribution
    pl = P.plan("paper", cfg=small_paper(), only=["12", "21"], progress=False)
    pl.cpu = 100e9
    return pl


def test_the_reduced_paper_grid_runs_every_hot_path_at_full_scale(paper):
    kinds = {line.path.kind for line in paper.lines}
    assert {"generate", "score", "train", "attribute"} <= kinds
    assert not paper.problems
    for nb in ("12_A_main_table", "21_B_main_table"):
        assert paper.flops(paper.notebook(nb)) > 0
    # the TA is read-only (bf16 on a GPU), the trained student carries gradients and AdamW state
    peaks = paper.peaks()
    assert peaks[LLAMA, "bf16"][0] > paper.weights(LLAMA, "bf16") == 2 * P.n_params(LLAMA)
    train = next(line.path for line in paper.lines if line.path.kind == "train")
    assert paper.costs[train].peak > 3 * 4 * P.n_params("t5-base")  # fp32 gradients and two AdamW states
    assert "| **all** |" in P.report(paper)
    # a call takes at least its ops' host time: the bounded GPU-hours are never below the FLOP-only ones
    assert paper.h100_bound_hours() >= paper.h100_hours(paper.flops()) > 0


def test_a_decoder_forward_costs_two_flops_per_parameter_and_token():
    m = P.build(LLAMA, torch.bfloat16)
    cfg = m.config
    B, S, T = 4, 300, 1
    cost = P.path_score(m, "causal", B, S - T, T)
    d, V, layers = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
    body = P.n_params(LLAMA) - 2 * V * d  # no embedding lookup; the output projection only at T positions
    # 2 N per token, attention's two S x S products per layer, the vocabulary projection where a target is
    hand = 2 * body * B * S + 4 * B * S * S * d * layers + 2 * B * T * V * d
    assert cost.flops == pytest.approx(hand, rel=0.01)


def test_decoding_from_first_and_last_step_equals_every_step():
    m = P.build("smollm2-135m-instruct", torch.float32)
    B, Pn, N = 2, 20, 4
    planned = P.path_generate(m, "causal", B, Pn, N).flops
    with torch.no_grad():
        total, out = P.measure(lambda: m(input_ids=P._ids(B, Pn), use_cache=True, logits_to_keep=1))
        cache = out.past_key_values
        for _ in range(N - 1):
            step, cache = P._step(m, "causal", B, cache)
            total.flops += step.flops
    assert planned == pytest.approx(total.flops, rel=1e-9)


def test_a_shared_few_shot_prefix_is_prefilled_once_per_pass_and_decoding_is_unchanged():
    m = P.build("smollm2-135m-instruct", torch.float32)
    B, Pn, N, C = 8, 120, 4, 100
    plain = P.path_generate(m, "causal", B, Pn, N)
    common = P.path_generate(m, "causal", B, Pn, N, C=C)
    with torch.no_grad():
        head, out = P.measure(lambda: m(input_ids=P._ids(1, C), use_cache=True, logits_to_keep=1))
        cache = out.past_key_values
        cache.batch_repeat_interleave(B)
        rest, out = P.measure(
            lambda: m(input_ids=P._ids(B, Pn - C), past_key_values=cache, use_cache=True, logits_to_keep=1)
        )
        whole, _ = P.measure(lambda: m(input_ids=P._ids(B, Pn), use_cache=True, logits_to_keep=1))
    decode = plain.flops - whole.flops  # the same cache length at every step on both paths
    assert common.flops == pytest.approx(head.flops + rest.flops + decode, rel=1e-9)
    assert common.flops < plain.flops - (B - 1) * 0.9 * head.flops


def test_the_plan_runs_a_few_shot_prefix_once_per_pass_only_where_lm_generate_does():
    pl = P.Planner("offline", get_preset("offline"))
    pl.generate("greedy, few-shot", "gemma-3-270m", "teacher", 64, 16, 300, 48, prefix=200)
    pl.generate("sampled", "gemma-3-270m", "teacher", 64, 16, 300, 48, K=4, prefix=200)
    pl.generate("short prefix", "gemma-3-270m", "teacher", 64, 16, 300, 48, prefix=P.SHARED_PREFIX_MIN - 1)
    shapes = [line.path.shape for line in pl.lines]
    assert shapes == [(64, 300, 48, 1, 200), (16, 300, 48, 4, 0), (16, 300, 48, 1, 0)]


def test_a_training_step_costs_three_forwards():
    m = P.build("t5-base", torch.float32)
    fwd = P.path_score(m, "seq2seq", 8, 40, 5).flops
    step = P.path_train(m, "seq2seq", ((8, 40, 5),)).flops
    assert step == pytest.approx(3 * fwd, rel=0.02)


def test_a_sequence_past_the_positions_fails_the_dry_run():
    # an encoder max_len of 1024: all-MiniLM-L6-v2 has 512 positions
    with pytest.raises(ReproError, match="positions"):
        P.run_path(P.Path("encoder_train", MINILM, "fp32", (32, 3, 1024)))
    # a rotary model computes any position, so on meta only the explicit check stops 9001 tokens of SmolLM2
    with pytest.raises(ReproError, match="needs 9001 positions, the model has 8192"):
        P.run_path(P.Path("score", "smollm2-135m-instruct", "fp32", (1, 9000, 1)))
    # the same error from the model itself where the explicit check is off: meta tensors still check shapes
    with pytest.raises(ReproError, match="dry run failed"):
        orig = P.max_positions
        P.max_positions = lambda name: None
        try:
            P.run_path(P.Path("encoder_eval", MINILM, "fp32", (32, 3, 1024)))
        finally:
            P.max_positions = orig


def test_a_wrong_hidden_size_fails_the_dry_run(tmp_path, monkeypatch):
    shutil.copytree(P.CONFIGS, tmp_path / "configs")
    f = tmp_path / "configs" / MINILM.replace("/", "--") / "config.json"
    cfg = json.loads(f.read_text())
    cfg["hidden_size"] = 390  # not a multiple of its 12 attention heads
    f.write_text(json.dumps(cfg))
    monkeypatch.setattr(P, "CONFIGS", tmp_path / "configs")
    monkeypatch.setattr(P, "_BUILT", {})
    monkeypatch.setattr(P, "_CONFIGS", {})
    monkeypatch.setattr(P, "_COSTS", {})
    with pytest.raises(ReproError, match="does not (build|load)"):
        P.run_path(P.Path("encoder_eval", MINILM, "fp32", (32, 3, 64)))


def test_bad_input_is_one_line(capsys):
    assert P.main(["--preset", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("plan: unknown preset 'nope'") and "\n" not in err
    with pytest.raises(ReproError, match="no configuration"):
        P.config_dir("not-a-model")


def test_split_sizes_follow_the_caps():
    pl = P.Planner("paper", get_preset("paper"))
    assert pl.sizes("commonsense_qa", {"pool": None, "dev": 300, "test": None}) == {
        "pool": 9741,
        "dev": 300,
        "test": 1221 - 458,
    }
    pl = P.Planner("offline", get_preset("offline"))
    caps = {"pool": 256, "dev": 100, "test": 300, "dev_numeric": 20, "test_numeric": 50}
    assert pl.sizes("gsm8k", caps) == {"pool": 256, "dev": 20, "test": 50}
