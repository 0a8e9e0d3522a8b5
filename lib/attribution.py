"""Influential tokens as rationales (paper B): which input words the teacher's answer depends on.

The target is the teacher's log-probability of an answer given the prompt (sum over the answer tokens,
teacher-forced): the gold option (default) or the teacher's own prediction, written as the option text
(default) or its letter. captum attributes it to the input embeddings, one padded batch per call:
  saliency                    |d target / d embedding|                 (captum Saliency)
  input_x_gradient            embedding * gradient                     (captum InputXGradient)
  integrated_gradients        path integral from an all-zero embedding (captum IntegratedGradients)
  layer_integrated_gradients  path integral on the embedding layer, from the embeddings of pad tokens
                              (captum LayerIntegratedGradients)
A token's score is the L2 norm of its attribution over the embedding dimension; subword scores are summed
into whitespace words of the prompt; template text ("Question:", "Options:", "Answer:"), option letters,
special tokens, punctuation and stop-words are never picked (template words and letters can be, with
`allow_template=True`); the top-k words are kept in input order.

Multiple-choice prompts list the options (the paper's setting: "datasets whose labels are part of the
input"), so the gold answer's words can be among the extracted words; `ground_truth` measures how often
they are, beside two controls (k random words; the same test for the strongest distractor option).
"""

from __future__ import annotations

import random
import re

import numpy as np
import torch

from . import phases
from .common import LETTERS, ReproError, cached_json, check_choice
from .data import Example

METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "layer_integrated_gradients")
TARGETS = ("gold", "predicted", "random_wrong")  # which option the teacher's output is attributed to
MATCH_RULES = ("content_word", "whole_option")
ANSWER_FORMS = ("text", "letter")
VERSION = 1  # bump when the attribution code changes: cached attributions are then recomputed

# A small English stop-word list (NLTK's, minus contractions), built in so nothing is downloaded.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my
myself no nor not now of off on once only or other our ours ourselves out over own same she should so some
such than that the their theirs them themselves then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your yours
yourself yourselves""".split()
)
_EDGE = re.compile(r"^[^\w]+|[^\w]+$")  # punctuation at either end of a whitespace word


def norm_word(w: str) -> str:
    """'Dollars,' -> 'dollars'; '3,000' stays '3,000'; '(A)' -> 'a'; '?' -> ''."""
    return _EDGE.sub("", w).lower()


# ---------------------------------------------------------------- prompts with known template spans


def build_prompt(e: Example, answer_form: str = "text") -> tuple[str, list[tuple[int, int, str]]]:
    """(prompt, segments): segments are (start, end, kind), kind in template | question | option | letter.

    text form:   "Question: <q> Options: a, b, c\\nAnswer:"  (= prompts.question_text(e, with_options=True))
    letter form: "Question: <q> Options: (A) a, (B) b\\nAnswer:"
    Building the prompt from labelled pieces tells exactly which characters are template, so no regex on
    the text can mistake a question word "Answer" for the template."""
    check_choice("answer_form", answer_form, ANSWER_FORMS)
    if answer_form == "letter" and not e.choices:
        raise ReproError(f"answer_form='letter' needs answer options; example {e.id} ({e.kind}) has none")
    parts = [("Question: ", "template"), (e.question, "question")]
    if e.choices and (e.kind == "mc" or answer_form == "letter"):
        parts.append((" Options: ", "template"))
        for i, c in enumerate(e.choices):
            if i:
                parts.append((", ", "template"))
            if answer_form == "letter":
                parts.append((f"({LETTERS[i]}) ", "letter"))
            parts.append((c, "option"))
    parts.append(("\nAnswer:", "template"))
    segs, pos = [], 0
    for text, kind in parts:
        segs.append((pos, pos + len(text), kind))
        pos += len(text)
    return "".join(t for t, _ in parts), segs


def continuation(e: Example, idx: int, answer_form: str = "text") -> str:
    """What the teacher is scored on: the option text or its letter, after a space (like lm.score)."""
    return " " + (LETTERS[idx] if answer_form == "letter" else e.choices[idx])


def prompt_words(prompt: str, segs) -> list[dict]:
    """Whitespace words of the prompt with their char span and kind
    (template/question/option/letter/punct)."""
    kind_at = np.empty(len(prompt), dtype=object)
    for s, t, k in segs:
        kind_at[s:t] = k
    out = []
    for m in re.finditer(r"\S+", prompt):
        n = norm_word(m.group())
        out.append(
            {
                "word": _EDGE.sub("", m.group()),
                "start": m.start(),
                "end": m.end(),
                "norm": n,
                "kind": kind_at[m.start()] if n else "punct",
                "stop": n in STOP_WORDS and kind_at[m.start()] != "letter",
            }
        )
    return out


def tokens_to_words(prompt: str, offsets, special, token_scores, words: list[dict]) -> list[float]:
    """Sum token scores into the words their characters fall in (via the tokenizer's offsets mapping).

    A token's leading space ("Ġc", "▁It") belongs to no word, so only its non-space characters count;
    a pure-space token ("▁▁") or a special token adds to no word; a rare token covering two words splits
    its score equally between them."""
    owner = np.full(len(prompt) + 1, -1)
    for j, w in enumerate(words):
        owner[w["start"] : w["end"]] = j
    out = [0.0] * len(words)
    for (s, t), sp, sc in zip(offsets, special, token_scores):
        if sp or t <= s:
            continue
        js = [j for j in dict.fromkeys(owner[s:t].tolist()) if j >= 0]
        for j in js:
            out[j] += float(sc) / len(js)
    return out


# ---------------------------------------------------------------- one padded batch, one scalar per example


def _encode(lm, prompt: str):
    """Prompt ids exactly as lm.score builds them, with char offsets and special-token flags."""
    if not getattr(lm.tok, "is_fast", False):
        raise ReproError(
            f"{lm.name}: attribution needs a fast tokenizer (char offsets) to map tokens to words"
        )
    return lm.encode_prompt(prompt, offsets=True)


class _frozen:
    """Parameters need no gradient during attribution: saves the weight-gradient graph, restored after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.flags = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p, f in zip(self.model.parameters(), self.flags):
            p.requires_grad_(f)


def _attribute(lm, b, method: str, n_steps: int, internal_batch_size: int):
    """(attributions (B, L, d), convergence delta (B,) or None) through captum."""
    from captum.attr import InputXGradient, IntegratedGradients, LayerIntegratedGradients, Saliency

    args = b.args()
    if method == "saliency":
        return Saliency(b.forward).attribute(
            b.embeds.clone().requires_grad_(), additional_forward_args=args, abs=True
        ), None
    if method == "input_x_gradient":
        return InputXGradient(b.forward).attribute(
            b.embeds.clone().requires_grad_(), additional_forward_args=args
        ), None
    if method == "integrated_gradients":  # baseline: all-zero embeddings at the attributed positions
        return IntegratedGradients(b.forward).attribute(
            b.embeds.clone(),
            baselines=torch.zeros_like(b.embeds),
            additional_forward_args=args,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    # layer IG: baseline = the same ids with attributed tokens replaced by the pad token; unattributed
    # positions are equal in input and baseline, so the path leaves them alone
    base = b.ids.masked_fill(b.attr, lm.tok.pad_token_id)
    return LayerIntegratedGradients(b.forward_ids, b.emb_layer).attribute(
        b.ids,
        baselines=base,
        additional_forward_args=args,
        n_steps=n_steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )


def attribute_batch(
    lm,
    prompts: list[str],
    conts: list[str],
    method: str = "saliency",
    n_steps: int = 20,
    internal_batch_size: int = 32,
) -> list[dict]:
    """Token-level attributions of one padded batch: per example the prompt's tokens, offsets, special
    flags, L2 token scores (0 on unattributed tokens), the signed sum of all attributions and, for the IG
    methods, captum's convergence delta (sum of attributions - (f(x) - f(baseline))). IG runs n_steps
    copies of the batch, `internal_batch_size` rows per forward pass (memory)."""
    check_choice("method", method, METHODS)
    enc = [_encode(lm, p) for p in prompts]
    b = lm.embedding_batch([e[0] for e in enc], [e[2] for e in enc], conts)
    prec = "bf16" if lm.bf16 else "fp32"
    with _frozen(lm.model), lm.autocast(), phases.phase("attribute", lm.n_params, prec):
        attr, delta = _attribute(lm, b, method, n_steps, max(internal_batch_size, len(prompts)))
    attr = attr.detach().float() * b.attr.unsqueeze(-1)
    tok_scores = attr.norm(dim=-1)
    out = []
    for i, (ids, offs, spec) in enumerate(enc):
        out.append(
            {
                "tokens": [
                    prompts[i][s:t] if not sp else lm.tok.convert_ids_to_tokens(t_id)
                    for t_id, (s, t), sp in zip(ids, offs, spec)
                ],
                "offsets": offs,
                "special": spec,
                "token_scores": tok_scores[i, : len(ids)].tolist(),
                "signed_sum": float(attr[i].sum()),
                "delta": None if delta is None else float(delta[i]),
            }
        )
    return out


@torch.no_grad()
def target_logprobs(lm, prompts: list[str], conts: list[str]) -> list[float]:
    """f(x) of the attribution forward (sum of answer-token log-probs), for checks and the notebooks."""
    enc = [_encode(lm, p) for p in prompts]
    b = lm.embedding_batch([e[0] for e in enc], [e[2] for e in enc], conts)
    with lm.autocast():
        return b.forward(b.embeds, *b.args()).tolist()


# ---------------------------------------------------------------- per-example disk cache, batched compute


class _Miss(Exception):
    pass


def _raise_miss():
    raise _Miss


def _cached_many(
    kind: str, keys: list[dict], compute, batch_size: int, progress: bool, desc: str, cache: bool = True
) -> list:
    """cached_json per item, but the missing items are computed together in batches (sorted by length so
    batches pad little). compute(list of keys) -> list of values. `cache=False`: every item is missing and
    nothing is written."""
    from tqdm.auto import tqdm

    store = cached_json if cache else (lambda kind, key, fn, version: fn())
    vals = {}
    for i, k in enumerate(keys if cache else []):
        try:
            vals[i] = cached_json(kind, k, _raise_miss, VERSION)
        except _Miss:
            pass
    todo = sorted((i for i in range(len(keys)) if i not in vals), key=lambda i: len(str(keys[i])))
    for s in tqdm(range(0, len(todo), batch_size), disable=not progress or not todo, desc=desc, leave=False):
        idx = todo[s : s + batch_size]
        for i, v in zip(idx, compute([keys[i] for i in idx])):
            vals[i] = store(kind, keys[i], lambda v=v: v, VERSION)
    return [vals[i] for i in range(len(keys))]


def teacher_option_scores(
    lm, examples: list[Example], answer_form: str = "text", batch_size: int = 4, progress: bool = False
) -> list[list[float]]:
    """The teacher's score of every option under the attribution prompt (mean token log-prob of the option
    text, or the log-prob of its letter), cached per example; `batch_size` examples per forward pass."""
    keys = []
    for e in examples:
        if not e.choices:
            raise ReproError(f"example {e.id} ({e.kind}) has no answer options to score")
        keys.append(
            {
                "model": lm.name,
                **({"precision": "bf16"} if lm.bf16 else {}),
                "prompt": build_prompt(e, answer_form)[0],
                "options": [continuation(e, i, answer_form) for i in range(len(e.choices))],
            }
        )

    def compute(ks):
        if lm.arch == "causal":
            per = lm.score_options(
                [k["prompt"] for k in ks],
                [k["options"] for k in ks],
                batch_size=sum(len(k["options"]) for k in ks),
            )
            return [[float(lp.sum()) for lp in lps] for lps in per]
        ps, cs = [k["prompt"] for k in ks for _ in k["options"]], [o for k in ks for o in k["options"]]
        it = iter(target_logprobs(lm, ps, cs))
        return [[next(it) for _ in k["options"]] for k in ks]

    per_token = _cached_many("option_logprobs", keys, compute, batch_size, progress, f"options {lm.name}")
    return [[lp / len(lm.encode(o)) for lp, o in zip(lps, k["options"])] for lps, k in zip(per_token, keys)]


# ---------------------------------------------------------------- the public entry point


def select_words(rec: dict, k: int, allow_template: bool = False) -> list[dict]:
    """Top-k candidate words by score, returned in input order."""
    ok = {"question", "option"} | ({"template", "letter"} if allow_template else set())
    cand = [(j, w) for j, w in enumerate(rec["all_words"]) if w["kind"] in ok and not w["stop"]]
    top = sorted(cand, key=lambda jw: -jw[1]["score"])[:k]
    return [w for _, w in sorted(top, key=lambda jw: jw[0])]


def influential_words(
    lm,
    examples: list[Example],
    *,
    method: str,
    k: int,
    target: str,
    answer_form: str = "text",
    allow_template: bool = False,
    batch_size: int = 8,
    progress: bool = True,
    n_steps: int = 20,
    cache: bool = True,
) -> list[dict]:
    """Per example: the top-k words (input order) and their scores, every word's score and kind (for
    heat-maps), the tokens and token scores. Attributions are cached per example on disk, keyed by model and
    its precision, method, n_steps, prompt and answer text (`cache=False`: computed anew, as a benchmark
    times them); k and allow_template only re-select, so they cost nothing."""
    check_choice("method", method, METHODS)
    check_choice("target", target, TARGETS)
    if k <= 0:
        raise ReproError(f"k must be positive, got {k}")
    if target == "predicted":
        pred = [
            int(np.argmax(s)) for s in teacher_option_scores(lm, examples, answer_form, progress=progress)
        ]
    elif target == "random_wrong":
        pred = [random_wrong_option(e) for e in examples]
    else:
        pred = [e.label for e in examples]
    jobs = []
    for e, idx in zip(examples, pred):
        prompt, segs = build_prompt(e, answer_form)
        cont = continuation(e, idx, answer_form) if idx is not None else " " + e.answer
        jobs.append((prompt, segs, cont))
    keys = [
        {
            "model": lm.name,
            **({"precision": "bf16"} if lm.bf16 else {}),
            "method": method,
            "n_steps": n_steps if "integrated" in method else None,
            "prompt": p,
            "continuation": c,
        }
        for p, _, c in jobs
    ]

    def compute(ks):
        return attribute_batch(
            lm, [k_["prompt"] for k_ in ks], [k_["continuation"] for k_ in ks], method, n_steps
        )

    tok = _cached_many("attribution", keys, compute, batch_size, progress, f"{method} {lm.name}", cache)
    out = []
    for e, (prompt, segs, cont), idx, t in zip(examples, jobs, pred, tok):
        words = prompt_words(prompt, segs)
        for w, s in zip(words, tokens_to_words(prompt, t["offsets"], t["special"], t["token_scores"], words)):
            w["score"] = s
        rec = {
            "id": e.id,
            "dataset": e.dataset,
            "method": method,
            "target": target,
            "answer_form": answer_form,
            "prompt": prompt,
            "answer": cont.strip(),
            "target_is_gold": idx == e.label,
            "target_option": e.choices[idx] if e.choices and idx is not None else cont.strip(),
            "all_words": words,
            "tokens": t["tokens"],
            "offsets": t["offsets"],
            "token_scores": t["token_scores"],
            "special": t["special"],
            "signed_sum": t["signed_sum"],
            "delta": t["delta"],
            "allow_template": allow_template,
        }
        top = select_words(rec, k, allow_template)
        rec.update(words=[w["word"] for w in top], scores=[w["score"] for w in top])
        out.append(rec)
    return out


# ---------------------------------------------------------------- ground truth: do the words hold the answer?


def answer_words(answer: str) -> set[str]:
    """Normalised non-stop-words of an answer (all its words if every one is a stop-word, e.g. "up")."""
    ws = {norm_word(w) for w in answer.split()} - {""}
    return (ws - STOP_WORDS) or ws


def contains_gold(
    words: list[str], example: Example, answer: str | None = None, match: str = "content_word"
) -> bool:
    """Do the extracted words contain the gold answer (or `answer`, for a control)? `match`: content_word =
    any of its non-stop-words is among them; whole_option = all of them are."""
    check_choice("match rule", match, MATCH_RULES)
    got, need = {norm_word(w) for w in words}, answer_words(example.answer if answer is None else answer)
    return bool(got & need) if match == "content_word" else need <= got


def random_wrong_option(e: Example) -> int:
    """A wrong option drawn per example (seeded by its id): the target of the attribution control."""
    wrong = [i for i in range(len(e.choices or [])) if i != e.label]
    if not wrong:
        raise ReproError(f"example {e.id} has no wrong option to attribute")
    return random.Random(f"wrong:{e.id}").choice(wrong)


def random_words(
    rec: dict, k: int, seed: int = 0, allow_template: bool = False, kind: str | None = None
) -> list[str]:
    """k words drawn uniformly from the candidates the attribution chooses from (seeded per example);
    `kind="option"` draws from the options' words only."""
    cand = [
        w
        for w in select_words(rec, k=10**9, allow_template=allow_template)
        if kind is None or w["kind"] == kind
    ]
    rng = random.Random(f"{seed}:{kind}:{rec['id']}")
    return [w["word"] for w in rng.sample(cand, min(k, len(cand)))]


def ground_truth(
    records: list[dict],
    examples: list[Example],
    *,
    k: int,
    match: str = "content_word",
    allow_template: bool = False,
    seed: int = 0,
) -> dict:
    """Per example (lists of bools): do the top-k words contain the gold answer (`hit`), the option that was
    attributed (`hit_target`), and the gold answer among k random candidate words (`random`) or k random
    words of the options (`random_option`)? `target_is_gold`: the attributed option is the gold one."""
    if [r["id"] for r in records] != [e.id for e in examples]:
        raise ReproError("records and examples are not in the same order")
    top = [[w["word"] for w in select_words(r, k, allow_template)] for r in records]
    return {
        "hit": [contains_gold(t, e, match=match) for t, e in zip(top, examples)],
        "hit_target": [
            contains_gold(t, e, r["target_option"], match) for t, e, r in zip(top, examples, records)
        ],
        "random": [
            contains_gold(random_words(r, k, seed, allow_template), e, match=match)
            for r, e in zip(records, examples)
        ],
        "random_option": [
            contains_gold(random_words(r, k, seed, allow_template, "option"), e, match=match)
            for r, e in zip(records, examples)
        ],
        "target_is_gold": [bool(r["target_is_gold"]) for r in records],
    }


# ---------------------------------------------------------------- heat-map


def plot_heatmap(rec: dict, ax, width: int = 110, title: str | None = None, cmap: str = "Reds"):
    """The prompt as token boxes shaded by score (max = darkest), one monospace character per x unit;
    tokens of the top-k words in bold."""
    import matplotlib.pyplot as plt

    cm = plt.get_cmap(cmap)
    sc = np.asarray(rec["token_scores"], dtype=float)
    sc = sc / sc.max() if sc.max() > 0 else sc
    top = [
        (w["start"], w["end"]) for w in select_words(rec, len(rec["words"]), rec.get("allow_template", False))
    ]
    # font size such that one monospace character (about 0.6 em wide) spans one x unit of the axes
    fs = ax.get_window_extent().width / width / 0.602 * 72 / ax.figure.dpi
    x = y = 0
    for tok_text, (s0, s1), s, sp in zip(rec["tokens"], rec["offsets"], sc, rec["special"]):
        bold = any(s0 < b and s1 > a for a, b in top)
        for n, piece in enumerate(tok_text.split("\n")):
            if n:  # a newline inside a token starts a new line
                x, y = 0, y + 1
            if not piece:
                continue
            if x + len(piece) > width:
                x, y = 0, y + 1
            ax.add_patch(plt.Rectangle((x, -y - 0.45), len(piece), 0.9, color=cm(0.85 * s), lw=0))
            ax.text(
                x,
                -y,
                piece,
                fontsize=fs,
                family="monospace",
                va="center",
                color="gray" if sp else "black",
                weight="bold" if bold else "normal",
            )
            x += len(piece)
    ax.set_xlim(0, width)
    ax.set_ylim(-y - 0.6, 0.6)
    ax.axis("off")
    ax.set_title(
        title or f"{rec['id']} [{rec['method']}] -> {rec['answer']!r}   top words: {', '.join(rec['words'])}",
        fontsize=9,
        loc="left",
    )
    return ax
