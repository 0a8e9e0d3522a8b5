import pytest
import torch

from lib import attribution as A
from lib.data import Example
from lib.prompts import question_text

EX = [
    Example("q1", "t", "mc", "Which of these is a color?", "red", ["red", "dog", "saw"], 0),
    Example(
        "q2",
        "t",
        "mc",
        "It costs 3,000 dollars, isn't it? Which pre-owned  item would a careful buyer choose?",
        "old green tractor",
        ["old green tractor", "cat", "apple", "wrench"],
        0,
    ),
    Example("q3", "t", "mc", "Where do you keep apples?", "kitchen", ["kitchen", "school"], 0),
]
PROMPTS = [A.build_prompt(e)[0] for e in EX]
CONTS = [A.continuation(e, e.label) for e in EX]


def hand_saliency(lm, prompt, cont):
    """d(sum of answer log-probs)/d(input embeddings) of one unpadded sequence, L2 norm per token, written
    out with torch.autograd.grad (no captum, no batching, no logits_to_keep)."""
    p, c = lm.prompt_ids(prompt), lm.encode(cont)
    emb = lm.model.get_input_embeddings()
    if lm.arch == "causal":
        x = emb(torch.tensor([p + c])).detach().requires_grad_()
        logp = torch.log_softmax(lm.model(inputs_embeds=x).logits[0], -1)
        y = sum(logp[len(p) + j - 1, t] for j, t in enumerate(c))
    else:
        x = emb(torch.tensor([p])).detach().requires_grad_()
        dec = torch.tensor([[lm.model.config.decoder_start_token_id] + c[:-1]])
        logp = torch.log_softmax(lm.model(inputs_embeds=x, decoder_input_ids=dec).logits[0], -1)
        y = sum(logp[j, t] for j, t in enumerate(c))
    (g,) = torch.autograd.grad(y, x)
    return g[0, : len(p)].norm(dim=-1)


def test_prompt_text_form_is_the_project_prompt_with_options():
    for e, p in zip(EX, PROMPTS):
        assert p == f"Question: {question_text(e, with_options=True)}\nAnswer:"
    p, _ = A.build_prompt(EX[0], "letter")
    assert p == "Question: Which of these is a color? Options: (A) red, (B) dog, (C) saw\nAnswer:"
    assert A.continuation(EX[0], 1, "letter") == " B" and A.continuation(EX[0], 1) == " dog"


def test_saliency_equals_hand_autograd_gradient(tiny_lm):
    got = A.attribute_batch(tiny_lm, PROMPTS, CONTS, "saliency")  # batched, padded, through captum
    for g, p, c in zip(got, PROMPTS, CONTS):
        want = hand_saliency(tiny_lm, p, c)
        want[torch.tensor(g["special"])] = 0  # special tokens (BOS / EOS) are not attributed
        assert want.abs().max() > 0
        torch.testing.assert_close(torch.tensor(g["token_scores"]), want, atol=1e-5, rtol=1e-4)


def test_target_is_the_project_score(tiny_lm):
    got = A.target_logprobs(tiny_lm, PROMPTS, CONTS)
    want = [float(s.sum()) for s in tiny_lm.score(PROMPTS, CONTS)]
    assert got == pytest.approx(want, abs=1e-5)


def test_teacher_option_scores_are_the_project_scores(tiny_lm, tmp_path, monkeypatch):
    """Mean token log-prob of each option under the attribution prompt, as lm.score gives it (the causal
    path shares the prompt's KV cache between options, so this checks that trick)."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    for form in A.ANSWER_FORMS:
        got = A.teacher_option_scores(tiny_lm, EX, form)
        for e, g in zip(EX, got):
            opts = [A.continuation(e, i, form) for i in range(len(e.choices))]
            want = [float(s.mean()) for s in tiny_lm.score([A.build_prompt(e, form)[0]] * len(opts), opts)]
            assert g == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("method", A.METHODS)
def test_padding_never_changes_a_score(tiny_lm, method):
    # EX[2] is the shortest: in the batch it is padded (and its answer is shorter than EX[1]'s)
    alone = A.attribute_batch(tiny_lm, PROMPTS[2:], CONTS[2:], method, n_steps=8)[0]
    batch = A.attribute_batch(tiny_lm, PROMPTS, CONTS, method, n_steps=8)[2]
    assert len(alone["token_scores"]) == len(batch["token_scores"])
    torch.testing.assert_close(
        torch.tensor(batch["token_scores"]), torch.tensor(alone["token_scores"]), atol=1e-5, rtol=1e-4
    )
    assert A.target_logprobs(tiny_lm, PROMPTS, CONTS)[2] == pytest.approx(
        A.target_logprobs(tiny_lm, PROMPTS[2:], CONTS[2:])[0], abs=1e-5
    )


def _f_zero_baseline(lm, prompt, cont):
    """f(x) - f(baseline) by hand: baseline = zero embeddings on the prompt's non-special tokens."""
    p, c = lm.prompt_ids(prompt), lm.encode(cont)
    spec = A._encode(lm, prompt)[2]
    emb = lm.model.get_input_embeddings()

    def f(zero):
        with torch.no_grad():
            ids = p + c if lm.arch == "causal" else p
            x = emb(torch.tensor([ids]))
            if zero:
                for i, s in enumerate(spec):
                    if not s:
                        x[0, i] = 0
            if lm.arch == "causal":
                logp = torch.log_softmax(lm.model(inputs_embeds=x).logits[0], -1)
                return float(sum(logp[len(p) + j - 1, t] for j, t in enumerate(c)))
            dec = torch.tensor([[lm.model.config.decoder_start_token_id] + c[:-1]])
            logp = torch.log_softmax(lm.model(inputs_embeds=x, decoder_input_ids=dec).logits[0], -1)
            return float(sum(logp[j, t] for j, t in enumerate(c)))

    return f(False) - f(True)


@pytest.mark.parametrize(
    "model,method,steps",
    [
        ("tiny-llama", "integrated_gradients", 256),
        ("tiny-llama", "layer_integrated_gradients", 256),
        ("tiny-t5", "layer_integrated_gradients", 256),
    ],
)
def test_integrated_gradients_completeness(model, method, steps):
    """Sum of attributions = f(x) - f(baseline) up to the path-integral error, which shrinks with n_steps.
    For IG, f(x) - f(zero baseline) is computed by hand, not by captum. (Not run: IG from zero embeddings
    on T5, where f jumps between alpha = 0 and 1e-7 -- RMS norm of a zero vector -- so no number of steps
    integrates it; the notebook reports captum's delta for every IG run for that reason.)"""
    from lib.models import load_model

    lm = load_model(model)
    err = {}
    for n in (2, steps):
        r = A.attribute_batch(lm, PROMPTS[:2], CONTS[:2], method, n_steps=n)[1]
        err[n] = abs(r["delta"])
    total = r["signed_sum"] - r["delta"]  # = f(x) - f(baseline) per captum
    if method == "integrated_gradients":
        diff = _f_zero_baseline(lm, PROMPTS[1], CONTS[1])
        assert total == pytest.approx(diff, abs=1e-3)  # captum's delta means what we think
    assert abs(total) > 0.05  # the test means something only if the baseline changes the output
    assert err[steps] < 0.01 * abs(total) and err[steps] < err[2]


# ---------------------------------------------------------------- subwords -> words


def _tokenizers():
    """The project's byte-level BPE ("Ġ") and a SentencePiece-style Metaspace BPE ("▁"), both trained in
    a second on a few sentences, so rare words split into several subwords."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from lib.models import load_model

    corpus = [
        "Which of these is a color? It is red or blue.",
        "Question: Answer: Options: the dog and the cat",
    ] * 20
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>"], show_progress=False)
    )
    sp = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", bos_token="<s>")
    return {"byte-level": load_model("tiny-llama").tok, "metaspace": sp}


@pytest.mark.parametrize("name", ["byte-level", "metaspace"])
def test_subwords_merge_into_whitespace_words(name):
    tok = _tokenizers()[name]
    e = EX[1]
    prompt, segs = A.build_prompt(e)
    enc = tok(prompt, return_offsets_mapping=True, return_special_tokens_mask=True)
    offs, spec = enc["offset_mapping"], [i == tok.bos_token_id for i in enc["input_ids"]]
    # token i scores 2**i: a word's score, read in binary, says exactly which tokens were summed into it
    scores = [2.0**i for i in range(len(offs))]
    words = A.prompt_words(prompt, segs)
    merged = A.tokens_to_words(prompt, offs, spec, scores, words)
    several = 0
    for w, s in zip(words, merged):
        idx = [i for i in range(len(offs)) if int(s) >> i & 1]
        # the tokens summed into a word spell exactly that whitespace word once spaces are dropped
        assert (
            "".join(prompt[a:b] for a, b in (offs[i] for i in idx)).replace(" ", "").replace("▁", "")
            == prompt[w["start"] : w["end"]]
        )
        several += len(idx) > 1
    assert several >= 3  # the test does cover words split into several subwords
    by = {w["norm"]: w for w in words}
    assert (
        by["3,000"]["kind"] == "question"
        and by["dollars"]["word"] == "dollars"
        and by["isn't"]["kind"] == "question"
    )
    assert by["pre-owned"]["kind"] == "question" and by["tractor"]["kind"] == "option"
    assert {w["kind"] for w in words if w["norm"] in ("question", "options", "answer")} == {"template"}


def test_template_words_excluded_unless_allowed():
    e = Example("t", "t", "mc", "What answer would a question about options get?", "yes", ["yes", "no"], 0)
    prompt, segs = A.build_prompt(e, "letter")
    words = A.prompt_words(prompt, segs)
    # every template word and letter scores highest; stop-words next; content words lowest
    for i, w in enumerate(words):
        w["score"] = 100.0 + i if w["kind"] in ("template", "letter") else (50.0 if w["stop"] else 1.0 + i)
    rec = {"all_words": words}
    strict = [w["word"] for w in A.select_words(rec, 5)]
    assert strict == [
        "answer",
        "question",
        "options",
        "get",
        "yes",
    ]  # the question's own "answer" word stays eligible
    loose = [w["word"] for w in A.select_words(rec, 5, allow_template=True)]
    assert loose == ["Question", "Options", "A", "B", "Answer"]  # letters too, although "a" is a stop-word


def test_contains_gold_and_controls():
    e = Example("x", "t", "mc", "q?", "the fruit basket", ["the fruit basket", "fruit market", "car"], 0)
    assert A.contains_gold(["Basket,", "car"], e) and not A.contains_gold(["the", "car"], e)
    assert A.contains_gold(["car"], e, answer="car")
    rec = {
        "id": "x",
        "all_words": [
            {"word": w, "norm": w, "kind": "question", "stop": False, "score": 0.0}
            for w in "alpha beta gamma delta basket".split()
        ],
    }
    draws = [tuple(A.random_words(rec, 2, seed=s)) for s in range(20)]
    assert A.random_words(rec, 2, seed=3) == list(draws[3]) and len(set(draws)) > 3  # seeded, and random


def test_match_rules_controls_and_the_ground_truth_lists_by_hand():
    e = Example(
        "x", "t", "mc", "Where is fruit kept?", "fruit basket", ["fruit basket", "fruit market", "car"], 0
    )
    assert A.contains_gold(["Basket"], e) and not A.contains_gold(["Basket"], e, match="whole_option")
    assert A.contains_gold(["fruit", "basket,"], e, match="whole_option")
    assert all(A.random_wrong_option(e) != 0 for _ in range(3)) and A.random_wrong_option(e) in (1, 2)
    words = [
        ("Where", "question", 0.1),
        ("fruit", "question", 0.9),
        ("kept", "question", 0.8),
        ("fruit", "option", 0.2),
        ("basket", "option", 0.7),
        ("car", "option", 0.3),
    ]
    rec = {
        "id": "x",
        "target_is_gold": False,
        "target_option": "car",
        "all_words": [
            {"word": w, "norm": w.lower(), "kind": k, "stop": False, "score": s} for w, k, s in words
        ],
    }
    g = A.ground_truth([rec], [e], k=2)  # top-2 by score: fruit (0.9), kept (0.8)
    assert g["hit"] == [True] and g["hit_target"] == [False] and g["target_is_gold"] == [False]
    assert A.ground_truth([rec], [e], k=2, match="whole_option")["hit"] == [False]
    assert A.ground_truth([rec], [e], k=3, match="whole_option")["hit"] == [True]  # + basket (0.7)
    option_draws = {w for s in range(30) for w in A.random_words(rec, 2, seed=s, kind="option")}
    assert option_draws == {"fruit", "basket", "car"}  # option words only


def test_influential_words_end_to_end_and_cached(tiny_lm, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    recs = A.influential_words(tiny_lm, EX, method="saliency", k=3, target="gold", progress=False)
    assert [r["id"] for r in recs] == ["q1", "q2", "q3"]
    for r in recs:
        assert (
            1 <= len(r["words"]) <= 3
            and r["target_is_gold"]
            and r["answer"] == EX[int(r["id"][1]) - 1].answer
        )
        picked = [w for w in r["all_words"] if w["word"] in r["words"]]
        assert all(w["kind"] in ("question", "option") and not w["stop"] for w in picked)
        pos = [next(i for i, w in enumerate(r["all_words"]) if w["word"] == x) for x in r["words"]]
        assert pos == sorted(pos)  # input order
    n_files = len(list((tmp_path / "artifacts" / "attribution").glob("*.json")))
    # re-selects, no recompute
    again = A.influential_words(
        tiny_lm, EX, method="saliency", k=5, target="gold", allow_template=True, progress=False
    )
    assert len(list((tmp_path / "artifacts" / "attribution").glob("*.json"))) == n_files == 3
    assert [w["score"] for w in again[1]["all_words"]] == [w["score"] for w in recs[1]["all_words"]]
    pred = A.influential_words(
        tiny_lm, EX, method="saliency", k=5, target="predicted", answer_form="letter", progress=False
    )
    assert all(r["answer"] in "ABCD" for r in pred)
    gt = A.ground_truth(recs, EX, k=3)
    assert all(len(v) == 3 for v in gt.values()) and gt["target_is_gold"] == [True] * 3
    wrong = A.influential_words(tiny_lm, EX, method="saliency", k=5, target="random_wrong", progress=False)
    assert not any(r["target_is_gold"] for r in wrong)
    assert [r["target_option"] for r in wrong] == [e.choices[A.random_wrong_option(e)] for e in EX]


def test_shared_teacher_reads_no_weights_when_every_step_is_cached(tmp_path, monkeypatch):
    """load_shared() loads the weights on first use only: a warm rerun (every attribution and option score a
    cache hit) never reads them, and gives exactly the scores the loaded model computed."""
    from lib import models as M

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(M, "_SHARED", {})
    cold = M.load_shared("tiny-llama")
    assert not cold.loaded
    recs = A.influential_words(cold, EX, method="saliency", k=3, target="gold", progress=False)
    scores = A.teacher_option_scores(cold, EX)
    assert cold.loaded  # a cache miss loaded it
    monkeypatch.setattr(M, "_SHARED", {})
    warm = M.load_shared("tiny-llama")
    again = A.influential_words(warm, EX, method="saliency", k=3, target="gold", progress=False)
    assert A.teacher_option_scores(warm, EX) == scores and not warm.loaded
    assert [r["token_scores"] for r in again] == [r["token_scores"] for r in recs]
    assert M.load_shared("tiny-llama") is warm
