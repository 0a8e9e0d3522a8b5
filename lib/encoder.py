"""Paper B beyond the paper: influential tokens for a student that does not generate.

An encoder (all-MiniLM-L6-v2 offline) as a multiple-choice cross-encoder: each (question, option) pair is
encoded, mean-pooled and scored by a linear head; the example's loss is the cross-entropy over its options.
The auxiliary *tagging head* reads every token and learns to mark the teacher's influential words (binary
cross-entropy, weight `lam`): the same distillation signal as the `explain:` task of a generating student,
and, like it, no teacher at test time. lam = 0 is plain fine-tuning of the same encoder, the baseline.

Tags are word-level: a token is positive when the (normalised) word it belongs to, in the question or in
the option, is one of the teacher's top-k words for that example. Special tokens and padding are ignored.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from . import phases
from .attribution import norm_word
from .common import ReproError, cached_json, stable_hash
from .config import EncoderRun
from .data import Example
from .training import Student
from .training import train_and_test as train_then_test

VERSION = 3  # bump when a run's definition changes: cached runs are then recomputed


class CrossEncoder(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        h = encoder.config.hidden_size
        self.enc, self.score, self.tag = encoder, torch.nn.Linear(h, 1), torch.nn.Linear(h, 1)

    def forward(self, input_ids, attention_mask, **kw):
        # batches are built on the CPU; the model may sit on a GPU
        dev = self.score.weight.device
        input_ids, attention_mask = input_ids.to(dev), attention_mask.to(dev)
        hs = self.enc(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hs.dtype)
        # mean pooling, as the sentence-transformers model was trained
        pooled = (hs * m).sum(1) / m.sum(1).clamp(min=1)
        return self.score(pooled).squeeze(-1), self.tag(hs).squeeze(-1)


def encode(tok, examples: list[Example], words: list[list[str]] | None = None, max_len: int = 64):
    """Flat (question, option) pairs of all examples -> tensors, tags (-100 = ignored) and per-example
    spans."""
    ids, tags, spans = [], [], []
    for n, e in enumerate(examples):
        if not e.choices:
            raise ReproError(
                f"example {e.id} ({e.kind}) has no answer options: the cross-encoder scores options"
            )
        infl = {norm_word(w) for w in words[n]} - {""} if words else set()
        q = e.question.split()
        start = len(ids)
        for c in e.choices:
            o = c.split()
            enc = tok(q, o, is_split_into_words=True, truncation="only_first", max_length=max_len)
            t = []
            for s, w in zip(enc.sequence_ids(), enc.word_ids()):
                t.append(
                    -100 if s is None or w is None else float(norm_word((q if s == 0 else o)[w]) in infl)
                )
            ids.append(enc["input_ids"])
            tags.append(t)
        spans.append((start, len(ids)))
    L = max(len(x) for x in ids)
    pad = tok.pad_token_id or 0
    input_ids = torch.tensor([x + [pad] * (L - len(x)) for x in ids])
    attn = torch.tensor([[1] * len(x) + [0] * (L - len(x)) for x in ids])
    tag_t = torch.tensor([t + [-100.0] * (L - len(t)) for t in tags])
    phases.count(input_ids.numel())
    return input_ids, attn, tag_t, spans


def losses(model, batch, labels: list[int]):
    """(answer cross-entropy over each example's options, tagging BCE over the tagged tokens)."""
    input_ids, attn, tags, spans = batch
    scores, tag_logits = model(input_ids, attn)
    ce = torch.stack(
        [
            torch.nn.functional.cross_entropy(
                scores[a:b].unsqueeze(0), torch.tensor([y], device=scores.device)
            )
            for (a, b), y in zip(spans, labels)
        ]
    ).mean()
    tags = tags.to(tag_logits.device)
    m = tags != -100
    bce = (
        torch.nn.functional.binary_cross_entropy_with_logits(tag_logits[m], tags[m])
        if m.any()
        else tag_logits.sum() * 0
    )
    return ce, bce


@torch.no_grad()
def predict(
    model, tok, examples: list[Example], batch_size: int = 32, max_len: int = 64, bf16: bool = False
) -> list[int]:
    """The index of the option each example's pairs score highest; `bf16`: under bf16 autocast."""
    was_training = model.training
    model.eval()
    out = []
    dev_type = model.score.weight.device.type
    n_params = phases.matmul_params(model)
    for s in range(0, len(examples), batch_size):
        with phases.phase("score", n_params, "bf16" if bf16 else "fp32"):
            input_ids, attn, _, spans = encode(tok, examples[s : s + batch_size], max_len=max_len)
            with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
                scores, _ = model(input_ids, attn)
        out += [int(scores[a:b].argmax()) for a, b in spans]
    model.train(was_training)
    return out


@torch.no_grad()
def tag_probs(model, tok, e: Example, max_len: int = 64) -> list[tuple[str, float]]:
    """The trained tagging head's probability per question word (max over its tokens), gold-option pair."""
    model.eval()
    enc = tok(
        e.question.split(),
        e.answer.split(),
        is_split_into_words=True,
        truncation="only_first",
        max_length=max_len,
    )
    _, logits = model(
        torch.tensor([enc["input_ids"]]), torch.ones(1, len(enc["input_ids"]), dtype=torch.long)
    )
    p = torch.sigmoid(logits[0])
    words = e.question.split()
    best = [0.0] * len(words)
    for i, (s, w) in enumerate(zip(enc.sequence_ids(), enc.word_ids())):
        if s == 0 and w is not None:
            best[w] = max(best[w], float(p[i]))
    return list(zip(words, best))


def accuracy(model, tok, examples, **kw) -> tuple[float, list[bool]]:
    pred = predict(model, tok, examples, **kw)
    correct = [p == e.label for p, e in zip(pred, examples)]
    return float(np.mean(correct)), correct


def _run_key(train, dev, test, *, words, lam: float, seed: int, key: dict, cfg: EncoderRun) -> dict:
    """Everything that determines one train_and_test run (its cache key; progress / return_model do not)."""
    return {
        **key,
        "cfg": asdict(cfg),
        "lam": lam,
        "seed": seed,
        "train": [e.id for e in train],
        # the labels it learns: a shuffled-label control trains on the same questions (training.relabel)
        "labels": stable_hash([e.label for e in train], 16),
        "dev": [e.id for e in dev],
        "test": [e.id for e in test],
        "words": stable_hash(words, 16) if words else None,
    }


def train_and_test(
    cfg: EncoderRun,
    train: list[Example],
    dev: list[Example],
    test: list[Example],
    *,
    words: list[list[str]] | None,
    lam: float,
    seed: int,
    key: dict,
    progress: bool = True,
    return_model: bool = False,
):
    """Fresh encoder + heads -> lib.training.train_and_test (dev selection, epoch 0 included) -> test
    accuracy; cached under `key` and every input. `return_model=True` also returns the selected model (not
    cached)."""
    from .models import load_encoder

    if lam < 0:
        raise ReproError(f"lam must be >= 0, got {lam}")
    if lam > 0 and not words:
        raise ReproError("lam > 0 needs the teacher's influential words to tag")
    full_key = _run_key(train, dev, test, words=words, lam=lam, seed=seed, key=key, cfg=cfg)
    state = {}

    def compute():
        enc, tok = load_encoder(cfg.encoder)
        # seed after loading: building a missing (smoke) encoder draws random numbers, loading a built one
        # does not, so seeding first would tie the heads' initialisation to whether the encoder exists yet
        torch.manual_seed(seed)
        model = CrossEncoder(enc).to(next(enc.parameters()).device)  # heads where the encoder is
        parts = {"ce": [], "bce": []}

        def batch_loss(idx):
            batch = encode(
                tok, [train[i] for i in idx], [words[i] for i in idx] if words else None, cfg.max_len
            )
            ce, bce = losses(model, batch, [train[i].label for i in idx])
            parts["ce"].append(float(ce.detach()))
            parts["bce"].append(float(bce.detach()))
            return ce + lam * bce

        def score(examples, hints=None):
            return accuracy(model, tok, examples, max_len=cfg.max_len, bf16=cfg.precision == "bf16")

        student = Student(model, len(train), batch_loss, score, name=f"{cfg.encoder} lam={lam}")
        r = train_then_test(student, cfg.train, seed, dev, test, progress=progress)
        state["model"], state["tok"] = model, tok
        return {
            **r,
            "ce_first": parts["ce"][:3],
            "ce_last": parts["ce"][-3:],
            "bce_first": parts["bce"][:3],
            "bce_last": parts["bce"][-3:],
        }

    r = cached_json("encoder_student", full_key, compute, version=VERSION)
    if return_model:
        if "model" not in state:  # cached result: retrain to inspect (deterministic, same result)
            r = compute()
        return r, state["model"], state["tok"]
    return r


def selected_tag_probs(
    cfg: EncoderRun, train, dev, test, question: Example, **run_kw
) -> list[tuple[str, float]]:
    """tag_probs of the dev-selected model of train_and_test(cfg, ..., **run_kw) on one question, cached under
    that run's key: a warm notebook render draws the figure without retraining the encoder."""

    def compute():
        _, model, tok = train_and_test(cfg, train, dev, test, **{**run_kw, "return_model": True})
        return [[w, float(p)] for w, p in tag_probs(model, tok, question, max_len=cfg.max_len)]

    kw = {k: v for k, v in run_kw.items() if k not in ("progress", "return_model")}
    full_key = {**_run_key(train, dev, test, cfg=cfg, **kw), "question": question.id}
    return [(w, p) for w, p in cached_json("encoder_tag_probs", full_key, compute, VERSION)]
