import math

import numpy as np
import pytest
import torch

from lib import common
from lib import signals as S
from lib.data import Example
from lib.prompts import cot_prompt, parse_answer

MC = Example("m", "commonsense_qa", "mc", "Which is a fruit?", "apple", ["saw", "apple", "red"], 1)
YN = Example("y", "strategyqa", "yesno", "Is 9 larger than 4?", "yes", ["yes", "no"], 0)
NUM = Example("n", "gsm8k", "numeric", "Tom has 3 and gets 4. How many?", "7")


@pytest.fixture
def scache(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "cache_dir", lambda: tmp_path)  # cached_json writes here
    return tmp_path


def count_generate(monkeypatch, lm):
    calls = []
    orig = lm.model.generate

    def wrapped(*a, **k):
        # sequences sampled in this call (prompts x num_return_sequences; with prefill sharing the K copies of
        # each prompt are already in input_ids and num_return_sequences is 1)
        calls.append({"seqs": k["input_ids"].shape[0] * k["num_return_sequences"], "sample": k["do_sample"]})
        return orig(*a, **k)

    monkeypatch.setattr(lm.model, "generate", wrapped)
    return calls


@pytest.mark.parametrize(
    "answers,want",
    [
        (["a", "a", "b", None, None], ("a", 0.4)),
        ([None, None, "b", None, None], ("b", 0.2)),  # unparseable samples never form a majority together
        (
            ["b", "a", "a", "b", None],
            ("b", 0.4),
        ),  # a tie goes to the answer sampled first; the share is the same
        ([None, None, None], (None, 0.0)),
        (["7", "7", "7"], ("7", 1.0)),
    ],
)
def test_majority_vote_rules(answers, want):
    assert S.majority_vote(answers) == want


def test_self_consistency_share_on_constructed_samples(monkeypatch, tiny_causal):
    samples = {
        cot_prompt(MC): [
            "So the answer is apple.",
            "It is red. So the answer is red.",
            "apple it is. So the answer is apple.",
            "no idea",
            "So the answer is (b).",
        ],
        cot_prompt(YN): [
            "So the answer is yes.",
            "So the answer is no.",
            "garbage",
            "So the answer is no.",
            "???",
        ],
        cot_prompt(NUM): [
            "3 + 4 = 7. So the answer is 7.",
            "So the answer is 8.",
            "nothing",
            "So the answer is 7.0.",
            "So the answer is 9.",
        ],
    }
    monkeypatch.setattr(tiny_causal, "generate", lambda prompts, **k: [samples[p] for p in prompts])
    r = S.self_consistency(
        tiny_causal, [MC, YN, NUM], K=5, temperature=0.7, max_new_tokens=8, seed=0, n_shots=4, cache=False
    )
    # by hand: MC apple x3 ("(b)" is option b = apple); YN no x2; NUM 7 x2 ("7.0" is 7)
    assert r["sc"] == [0.6, 0.4, 0.4] and r["majority"] == ["apple", "no", "7"]
    assert r["output"] == [
        "So the answer is apple.",
        "So the answer is no.",
        "3 + 4 = 7. So the answer is 7.",
    ]


def test_unparsed_samples_answered_by_option_likelihood_equal_a_hand_computation(monkeypatch, tiny_causal):
    """answer_by="options": a sample with no readable answer gets the student's likeliest option after the
    sample and "So the answer is"; parsed samples and questions without options keep their parse."""
    samples = {
        cot_prompt(MC): ["So the answer is apple.", "no idea", "hmm"],
        cot_prompt(NUM): ["nothing", "So the answer is 7.", "???"],
    }
    monkeypatch.setattr(tiny_causal, "generate", lambda prompts, **k: [samples[p] for p in prompts])
    kw = dict(K=3, temperature=0.7, max_new_tokens=8, seed=0, n_shots=4, cache=False)
    plain = S.self_consistency(tiny_causal, [MC, NUM], **kw)
    r = S.self_consistency(tiny_causal, [MC, NUM], answer_by="options", **kw)

    def by_hand(sample):
        ctx = f"{cot_prompt(MC)} {sample}\nSo the answer is"
        lps = [float(tiny_causal.score([ctx], [" " + c])[0].mean()) for c in MC.choices]
        return MC.choices[int(np.argmax(lps))]

    assert plain["answers"][0] == ["apple", None, None]
    assert r["answers"][0] == ["apple", by_hand("no idea"), by_hand("hmm")]
    assert r["answers"][1] == plain["answers"][1] == [None, "7", None]  # no options: nothing to score
    assert r["sc"][0] == S.majority_vote(r["answers"][0])[1]


def test_options_answers_reuse_the_parse_samples(monkeypatch, tiny_causal, scache):
    """answer_by="options" after "parse": one generation; the samples and parsed answers are the same."""
    calls = []
    fixed = {
        cot_prompt(MC): ["So the answer is apple.", "no idea"],
        cot_prompt(NUM): ["nothing", "So the answer is 7."],
    }

    def gen(prompts, **k):
        calls.append(len(prompts))
        return [fixed[p] for p in prompts]

    monkeypatch.setattr(tiny_causal, "generate", gen)
    kw = dict(K=2, temperature=0.7, max_new_tokens=8, seed=0, n_shots=4)
    plain = S.self_consistency(tiny_causal, [MC, NUM], **kw)
    r = S.self_consistency(tiny_causal, [MC, NUM], answer_by="options", **kw)
    assert calls == [2]
    assert r["samples"] == plain["samples"]
    assert r["answers"][0][0] == "apple" and r["answers"][0][1] in MC.choices
    assert r["answers"][1] == plain["answers"][1] == [None, "7"]


def test_self_consistency_one_generate_call_per_batch_with_k_samples(monkeypatch, tiny_lm, scache):
    exs = [MC, YN, NUM, MC, YN]
    calls = count_generate(monkeypatch, tiny_lm)
    r = S.self_consistency(
        tiny_lm, exs, K=3, temperature=0.7, max_new_tokens=6, batch_size=2, seed=0, n_shots=0
    )
    assert calls == [{"seqs": 6, "sample": True}] * 2 + [{"seqs": 3, "sample": True}]
    assert all(len(s) == 3 for s in r["samples"])
    for e, s, sc, maj in zip(
        exs, r["samples"], r["sc"], r["majority"]
    ):  # the share is that of the parsed samples
        assert (maj, sc) == S.majority_vote([parse_answer(x, e) for x in s])
    # cached: same call asks nothing; another seed or changed weights recompute
    assert (
        S.self_consistency(
            tiny_lm, exs, K=3, temperature=0.7, max_new_tokens=6, batch_size=2, seed=0, n_shots=0
        )
        == r
        and len(calls) == 3
    )
    S.self_consistency(tiny_lm, exs, K=3, temperature=0.7, max_new_tokens=6, batch_size=2, seed=1, n_shots=0)
    assert len(calls) == 6
    p = next(tiny_lm.model.parameters())
    with torch.no_grad():
        p[0, 0] += 1e-3
    try:
        S.self_consistency(
            tiny_lm, exs, K=3, temperature=0.7, max_new_tokens=6, batch_size=2, seed=0, n_shots=0
        )
    finally:
        with torch.no_grad():
            p[0, 0] -= 1e-3
    assert len(calls) == 9


def hand_logprobs(lm, prompt, cont):
    """Plain per-sequence forward, no padding, explicit positions."""
    p, c = lm.prompt_ids(prompt), lm.encode(cont)
    with torch.no_grad():
        if lm.arch == "causal":
            logits = lm.model(input_ids=torch.tensor([p + c])).logits[0]
            return [torch.log_softmax(logits[len(p) + j - 1], -1)[t].item() for j, t in enumerate(c)]
        dec = [lm.model.config.decoder_start_token_id] + c[:-1]
        logits = lm.model(input_ids=torch.tensor([p]), decoder_input_ids=torch.tensor([dec])).logits[0]
        return [torch.log_softmax(logits[j], -1)[t].item() for j, t in enumerate(c)]


OUTS = [
    "So the answer is apple.",
    "9 is larger than 4. So the answer is yes.",
    "3 + 4 = 7 apples in total. So the answer is 7.",
]


def test_ta_confidence_equals_hand_computation(tiny_lm):
    got = S.ta_confidence(tiny_lm, [MC, YN, NUM], OUTS, n_shots=0, span="full", cache=False)
    for g, e, o in zip(got, [MC, YN, NUM], OUTS):
        want = math.exp(np.mean(hand_logprobs(tiny_lm, cot_prompt(e, 0), " " + o)))
        assert 0 < g < 1 and g == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_ta_confidence_of_the_final_answer_equals_hand_computation(tiny_lm):
    """span="answer": only the answer's tokens, given the question and the output's rationale."""
    assert S.split_final_answer(OUTS[2]) == ("3 + 4 = 7 apples in total. So the answer is", "7")
    assert S.split_final_answer("apple") == ("", "apple")
    got = S.ta_confidence(tiny_lm, [MC, YN, NUM], OUTS, n_shots=0, span="answer", cache=False)
    for e, o, g in zip([MC, YN, NUM], OUTS, got):
        pre, ans = S.split_final_answer(o)
        want = math.exp(np.mean(hand_logprobs(tiny_lm, cot_prompt(e, 0) + " " + pre, " " + ans)))
        assert g == pytest.approx(want, rel=1e-4)
    full = S.ta_confidence(tiny_lm, [NUM], OUTS[2:], n_shots=0, span="full", cache=False)
    assert full[0] != pytest.approx(got[2], rel=1e-3)  # the spans measure different things


def test_ta_confidence_is_batch_and_padding_invariant(tiny_lm):
    alone = S.ta_confidence(tiny_lm, [MC], OUTS[:1], n_shots=0, span="full", cache=False)[0]
    longer = [OUTS[0], OUTS[1] * 3, OUTS[2] * 4]
    batched = S.ta_confidence(
        tiny_lm, [MC, YN, NUM], longer, n_shots=0, span="full", batch_size=3, cache=False
    )[0]
    assert batched == pytest.approx(alone, abs=1e-5)


def test_ta_confidence_cache_and_empty_output(monkeypatch, tiny_causal, scache):
    assert (
        S.ta_confidence(tiny_causal, [MC, YN], ["", "So the answer is yes."], n_shots=0, span="full")[0]
        == 0.0
    )
    monkeypatch.setattr(tiny_causal, "score", lambda *a, **k: pytest.fail("cache miss"))
    S.ta_confidence(tiny_causal, [MC, YN], ["", "So the answer is yes."], n_shots=0, span="full")


def test_need_score_and_demo_weights():
    np.testing.assert_allclose(S.need_score([1.0, 0.2, 0.6], [0.5, 0.0, 0.6]), [0.25, 0.9, 0.4])
    w = S.demo_weights([0.2, 0.4, 0.6])
    np.testing.assert_allclose(w, [0.5, 1.0, 1.5])
    np.testing.assert_allclose(S.demo_weights([0.2, 0.4, 0.6], "filter", tau=0.4), [0, 1, 1])
    # a share instead of a threshold: drop the least-trusted third
    np.testing.assert_allclose(S.demo_weights([0.6, 0.2, 0.4], "filter", filter_q=0.3), [1, 0, 1])
    np.testing.assert_allclose(S.demo_weights([0.0, 0.0]), [1, 1])
    with pytest.raises(common.ReproError, match="needs a threshold"):
        S.demo_weights([0.1], "filter")
    with pytest.raises(common.ReproError, match="different lengths"):
        S.need_score([0.1], [0.1, 0.2])


def test_auroc():
    assert S.auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert S.auroc([0.1, 0.2, 0.9], [1, 1, 0]) == 0.0
    assert math.isnan(S.auroc([0.1, 0.2], [1, 1]))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = y + rng.normal(0, 1, 60)
    lo, hi = S.auroc_ci(s, y)
    assert 0.5 < lo < S.auroc(s, y) < hi < 1
    assert all(math.isnan(v) for v in S.auroc_ci([0.1, 0.2], [0, 0]))
    # the vectorised resample AUROC equals sklearn on each resample (ties included)
    s = np.round(s, 1)
    idx = rng.integers(0, 60, size=(20, 60))
    want = [S.auroc(s[i], y[i]) for i in idx]
    counts = np.stack([np.bincount(r, minlength=60) for r in idx]).astype(float)
    np.testing.assert_allclose(S._auroc_resamples(s, y, counts), want, atol=1e-12)


def test_auroc_ci_resamples_questions_not_rows_when_grouped():
    # each question scored under three seeds: three rows, one unit of evidence. Resampling the questions
    # gives exactly the interval of one copy; resampling rows treats copies as independent and is narrower
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = y + rng.normal(0, 1.5, 40)
    one = S.auroc_ci(s, y, seed=3)
    q = np.tile(np.arange(40), 3)
    grouped = S.auroc_ci(s[q], y[q], seed=3, groups=q)
    np.testing.assert_allclose(grouped, one, atol=1e-12)
    rows = S.auroc_ci(s[q], y[q], seed=3)
    assert rows[1] - rows[0] < 0.75 * (one[1] - one[0])
