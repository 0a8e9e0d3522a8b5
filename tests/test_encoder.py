import pytest
import torch

from lib import encoder as E
from lib.common import CACHE_STATS, ReproError
from lib.config import EncoderRun, Train
from lib.data import Example


def ex(i, q, choices, label):
    return Example(
        id=f"t{i}", dataset="t", kind="mc", question=q, choices=choices, label=label, answer=choices[label]
    )


EXS = [
    ex(0, "Where do you keep milk cold?", ["fridge", "oven", "car"], 0),
    ex(1, "What do bees make from nectar, usually?", ["honey", "wax paper", "steel"], 0),
    ex(
        2,
        "A long question with many words about the colour of the clear daytime sky above us",
        ["green", "blue", "red"],
        1,
    ),
]
WORDS = [["cold", "fridge"], ["nectar,", "Honey"], ["sky", "blue"]]
TRAIN = Train(
    epochs=1, lr=5e-5, batch_size=2, schedule="constant", eval_batch_size=16, bf16=False, warmup_frac=0.0
)
RUN = EncoderRun(encoder="tiny-bert", precision="fp32", max_len=64, train=TRAIN)


@pytest.fixture(scope="module")
def tiny():
    from lib.models import load_encoder

    enc, tok = load_encoder("tiny-bert")
    torch.manual_seed(0)
    return E.CrossEncoder(enc), tok


def test_tags_mark_the_teacher_words_in_question_and_option_and_ignore_specials(tiny):
    _, tok = tiny
    ids, attn, tags, spans = E.encode(tok, EXS, WORDS)
    assert spans == [(0, 3), (3, 6), (6, 9)]
    for row in range(ids.shape[0]):
        enc = tok.convert_ids_to_tokens(ids[row][attn[row] == 1].tolist())
        assert len(enc) == int(attn[row].sum())
    # example 1, option "honey": word-level tags after normalisation ("nectar," and "Honey" match)
    row = 3
    n = int(attn[row].sum())
    tagged = (
        tok.decode([int(t) for t, y in zip(ids[row][:n], tags[row][:n]) if y == 1]).replace(" ", "").lower()
    )
    assert "nectar" in tagged and "honey" in tagged and "bees" not in tagged
    assert (tags[attn == 0] == -100).all()  # padding is never a target


def test_padding_never_changes_an_option_score(tiny):
    model, tok = tiny
    model.eval()
    with torch.no_grad():
        alone = [model(*E.encode(tok, [e])[:2])[0] for e in EXS]
        ids, attn, _, spans = E.encode(tok, EXS)
        together = model(ids, attn)[0]
    for (a, b), s in zip(spans, alone):
        torch.testing.assert_close(together[a:b], s, atol=1e-5, rtol=1e-5)


def test_a_training_step_lowers_both_losses(tiny):
    model, tok = tiny
    model = E.CrossEncoder(__import__("copy").deepcopy(model.enc))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = E.encode(tok, EXS, WORDS)
    model.train()
    torch.manual_seed(0)
    ce0, bce0 = E.losses(model, batch, [e.label for e in EXS])
    for _ in range(5):
        ce, bce = E.losses(model, batch, [e.label for e in EXS])
        opt.zero_grad()
        (ce + bce).backward()
        opt.step()
    model.eval()
    ce1, bce1 = E.losses(model, batch, [e.label for e in EXS])
    assert ce1 < ce0 and bce1 < bce0


def test_train_and_test_is_cached_and_checks_its_inputs(monkeypatch, tmp_path):
    from lib import common

    monkeypatch.setattr(common, "cache_dir", lambda: tmp_path)  # a cold cache of our own
    kw = dict(words=WORDS, lam=0.5, seed=0, key={"t": 1}, progress=False)
    a = E.train_and_test(RUN, EXS, EXS[:2], EXS, **kw)
    hits = CACHE_STATS["encoder_student:hit"]
    b = E.train_and_test(RUN, EXS, EXS[:2], EXS, **kw)
    assert a == b and CACHE_STATS["encoder_student:hit"] == hits + 1
    assert len(a["correct"]) == 3 and a["best_dev"] >= a["zero_shot_dev"]
    with pytest.raises(ReproError, match="needs the teacher"):
        E.train_and_test(RUN, EXS, EXS, EXS, **{**kw, "words": None})
    with pytest.raises(ReproError, match="lam must be"):
        E.train_and_test(RUN, EXS, EXS, EXS, **{**kw, "lam": -1})


def test_a_shuffled_label_run_on_the_same_questions_is_its_own_cache_entry(monkeypatch, tmp_path):
    # the control trains on the same question ids with permuted answers: a cache keyed on ids alone would
    # hand it the gold run's result
    from lib import common
    from lib.training import relabel

    monkeypatch.setattr(common, "cache_dir", lambda: tmp_path)
    kw = dict(words=None, lam=0.0, seed=0, key={"t": 1}, progress=False)
    shuffled = relabel(EXS, [e.choices[(e.label + 1) % len(e.choices)] for e in EXS])
    E.train_and_test(RUN, EXS, EXS[:2], EXS, **kw)
    misses = CACHE_STATS["encoder_student:miss"]
    E.train_and_test(RUN, shuffled, EXS[:2], EXS, **kw)
    assert CACHE_STATS["encoder_student:miss"] == misses + 1


def test_selected_tag_probs_equal_the_selected_models_and_a_rerun_does_not_retrain(monkeypatch, tmp_path):
    from lib import common

    monkeypatch.setattr(common, "cache_dir", lambda: tmp_path)
    kw = dict(words=WORDS, lam=0.5, seed=0, key={"t": 1})
    _, model, tok = E.train_and_test(RUN, EXS, EXS[:2], EXS, return_model=True, progress=False, **kw)
    want = E.tag_probs(model, tok, EXS[2], max_len=RUN.max_len)
    got = E.selected_tag_probs(RUN, EXS, EXS[:2], EXS, EXS[2], **kw)
    assert [w for w, _ in got] == [w for w, _ in want] and [p for _, p in got] == pytest.approx(
        [p for _, p in want], abs=1e-6
    )
    monkeypatch.setattr(
        E, "train_and_test", lambda *a, **k: pytest.fail("a cached figure retrained the encoder")
    )
    assert E.selected_tag_probs(RUN, EXS, EXS[:2], EXS, EXS[2], **kw) == got
