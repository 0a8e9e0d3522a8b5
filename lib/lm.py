"""One small interface over causal and seq2seq LMs: the only code that touches token ids and logits.

`LM` gives every caller the same operations: `encode` and `prompt_ids` (the one rule for how a prompt
is tokenised), `batch` (padded teacher-forcing tensors), batched `score` (per-token log-probs of a
continuation, pad-masked), `score_options` (the same numbers for several continuations of one prompt,
sharing its prefill), batched `generate` (greedy or sampled, K samples per prompt in one call), and
the training `loss`. Of `lib` it imports only `lib.phases` (every pass counts its tokens there), so any
module may use it and none may bypass it.

Causal models are fed prompt+continuation; scoring and training pad on the right (positions of real
tokens never move, so padding cannot change a score), generation pads on the left (so every row's
next token comes from its own last real token; a few-shot prefix every prompt shares runs once, its pads
after it).

Scoring runs in a fixed amount of memory, however many rows and however long the texts: a batch is split
into forward passes of at most `TOKEN_BUDGET` tokens, and a causal model's hidden states are projected onto
the vocabulary only at target positions, `LOGIT_BUDGET` logits at a time (rows x length x vocabulary fp32
logits would be 7 GB for 64 options of 104 tokens with Gemma's 262,144-entry vocabulary).
"""

from __future__ import annotations

import functools

import torch

from . import phases

# rows x padded length (a cached prompt included) of one scoring forward pass: its activations and KV cache
# stay below a fixed size (Gemma-3-270M: ~40 KB of KV cache per token in fp32, so ~0.3 GB)
TOKEN_BUDGET = 8192
# vocabulary logits that exist at once (positions x vocabulary size): 256 MiB in fp32, 256 target positions
# at a time for Gemma's 262,144-entry vocabulary (64 at a time project ~30 % slower on a CPU: each chunk
# reads the whole 0.7 GB output embedding again)
LOGIT_BUDGET = 2**26
# greedy generation: prompts whose token ids share a prefix of at least this many tokens (few-shot exemplars)
# run that prefix once per pass, and a pass then holds SHARED_ROWS x batch_size prompts: every decoding step
# reads the whole output embedding (Gemma: 0.7 GB in fp32) whatever its rows, so more rows cost little more
SHARED_PREFIX_MIN = 32
SHARED_ROWS = 4


def _inference(name: str):
    """Run an inference method as phase `name` (lib.phases) under bf16 autocast when the LM is in bf16:
    matmuls in bf16, the reductions autocast keeps in fp32 (softmax, log-softmax) stay there."""

    def wrap(method):
        @functools.wraps(method)
        def wrapped(self, *args, **kwargs):
            with self.autocast(), phases.phase(name, self.n_params, "bf16" if self.bf16 else "fp32"):
                return method(self, *args, **kwargs)

        return wrapped

    return wrap


class LM:
    """Batched generate / score / loss over a causal or seq2seq model.

    Causal models are fed prompt+continuation; scoring and training pad on the right (positions of real
    tokens never move, so padding cannot change a score), generation pads on the left (so every row's
    next token comes from its own last real token; a few-shot prefix every prompt shares runs once, its
    pads after it)."""

    def __init__(
        self,
        model,
        tokenizer,
        name: str = "",
        arch: str = "causal",
        max_len: int = 512,
        loader=None,
        bf16: bool = False,
    ):
        """`model=None` + `loader`: the weights are loaded by `loader()` on first use (see load_shared).
        `bf16`: score and generate under bf16 autocast (weights stay as loaded)."""
        self._model, self._loader, self.bf16 = model, loader, bf16
        self.tok, self.name, self.arch, self.max_len = tokenizer, name, arch, max_len
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        # generate: K samples reuse one prompt prefill; greedy prompts, their common prefix's KV cache
        self.share_prefill = True

    @property
    def model(self):
        if self._model is None:
            self._model = self._loader()
        return self._model

    @model.setter
    def model(self, m):  # training swaps in the accelerate-prepared module and back
        self._model = m

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def n_params(self) -> int:
        """The parameters a token is multiplied by (lib.phases estimates FLOPs from them)."""
        if getattr(self, "_n_params", None) is None:
            self._n_params = phases.matmul_params(self.model)
        return self._n_params

    def autocast(self):
        """The context every inference pass of this LM runs in: bf16 autocast when `bf16`, else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    # -- tokenisation: the one place that decides which ids a prompt or continuation becomes
    def encode(self, text: str) -> list[int]:
        """Ids of a continuation (no special tokens)."""
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def encode_prompt(self, prompt: str, offsets: bool = False):
        """Ids of a prompt: the tokenizer's special tokens, minus a trailing eos (some causal tokenizers
        append one to every encoding; a prompt must stay open), cut to the last `max_len` (the question is at
        the end). With `offsets`: (ids, char offsets, special-token flags), the same ids, for mapping tokens
        to words."""
        enc = self.tok(
            prompt,
            add_special_tokens=True,
            return_offsets_mapping=offsets,
            return_special_tokens_mask=offsets,
        )
        ids = enc["input_ids"]
        n = len(ids)
        eos, bos = self.tok.eos_token_id, self.tok.bos_token_id
        if self.arch == "causal" and ids and ids[-1] == eos and eos != bos:
            n -= 1
        lo = max(0, n - self.max_len)
        if not offsets:
            return ids[lo:n]
        # an <unk> stands for real characters of the text, so it is not an added token
        spec = [bool(m) and i != self.tok.unk_token_id for m, i in zip(enc["special_tokens_mask"], ids)]
        return ids[lo:n], [tuple(o) for o in enc["offset_mapping"][lo:n]], spec[lo:n]

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.encode_prompt(prompt)

    def n_tokens(self, prompt: str, continuation: str, eos: bool = False) -> int:
        """Length of prompt + continuation as `batch` builds it."""
        return len(self.prompt_ids(prompt)) + len(self.encode(continuation)) + int(eos)

    def pad(self, seqs: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
        n = max(len(s) for s in seqs)
        rows = [([value] * (n - len(s)) + s) if left else (s + [value] * (n - len(s))) for s in seqs]
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    def pad_with_mask(
        self, seqs: list[list[int]], value: int, left: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids and the attention mask marking each row's real tokens (1) and pads (0)."""
        ids = self.pad(seqs, value, left)
        attn = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            if left:
                attn[r, ids.shape[1] - len(s) :] = 1
            else:
                attn[r, : len(s)] = 1
        phases.count(ids.numel())  # every position is computed, pads included
        return ids, attn

    def batch(self, prompts: list[str], conts: list[str], eos: bool = False):
        """Tensors for teacher forcing: returns (model kwargs, target ids, target mask)."""
        p_ids = [self.prompt_ids(p) for p in prompts]
        c_ids = [self.encode(c) + ([self.tok.eos_token_id] if eos else []) for c in conts]
        pad = self.tok.pad_token_id
        if self.arch == "seq2seq":
            enc = self.pad(p_ids, pad)
            labels = self.pad(c_ids, -100)
            phases.count(enc.numel() + labels.numel())
            mask = labels != -100
            tgt = labels.masked_fill(~mask, pad)
            return (
                {
                    "input_ids": enc,
                    "attention_mask": (enc != pad) | _first_real(p_ids, enc),
                    "labels": labels,
                },
                tgt,
                mask,
            )
        full = [p + c for p, c in zip(p_ids, c_ids)]
        ids, attn = self.pad_with_mask(full, pad)
        # target at position t is predicted by logits at t-1; mark continuation positions
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for i, (p, c) in enumerate(zip(p_ids, c_ids)):
            mask[i, len(p) : len(p) + len(c)] = True
        return {"input_ids": ids, "attention_mask": attn}, ids, mask

    def token_logprobs(self, kwargs, tgt, mask) -> torch.Tensor:
        """Log-prob of every target token, 0 where mask is False. Shape of tgt. The training loss's path: the
        model's forward runs whole (DDP and mixed-precision wrappers act there) and its logits stay for the
        backward pass; scoring, which needs no gradient, goes through `_score_rows` in bounded memory."""
        if self.arch == "seq2seq":
            logits = self.model(**kwargs).logits  # aligned with labels
            lp = torch.log_softmax(logits.float(), -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
            return lp * mask
        # project to the vocabulary only where a target token is predicted: positions lo..hi-1 predict
        # tokens lo+1..hi (for option scoring that is a few positions of ~40, and Gemma's vocabulary has 262k
        # entries)
        pos = mask.any(0).nonzero().flatten()
        lo, hi = int(pos.min()) - 1, int(pos.max())
        logits = self.model(**kwargs, logits_to_keep=torch.arange(lo, hi, device=tgt.device)).logits
        lp = (
            torch.log_softmax(logits.float(), -1)
            .gather(-1, tgt[:, lo + 1 : hi + 1].unsqueeze(-1))
            .squeeze(-1)
        )
        out = torch.zeros_like(tgt, dtype=lp.dtype)
        out[:, lo + 1 : hi + 1] = lp
        return out * mask

    # -- bounded scoring: final hidden states, projected onto the vocabulary only where a target is predicted
    def _hidden(self, **kwargs):
        """(final hidden states, model output) of a causal forward pass that projects no position onto the
        vocabulary. The model's own forward runs, read at its decoder's output, so whatever is wrapped around
        it (the autocast of mixed-precision training, during dev scoring) still applies."""
        got = {}

        def keep(module, args, out):  # returns None: the decoder's output goes on unchanged
            got["h"] = out[0]

        hook = self.model.get_decoder().register_forward_hook(keep)
        try:
            none = torch.zeros(0, dtype=torch.long, device=self.device)
            out = self.model(**kwargs, logits_to_keep=none)
        finally:
            hook.remove()
        return got["h"], out

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of final hidden states as the model's forward computes them: the output
        embeddings, then the final soft-capping of the Gemma family where the config sets one."""
        logits = self.model.get_output_embeddings()(h)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return logits if cap is None else torch.tanh(logits / cap) * cap

    def _target_logprobs(self, h: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """log p(tgt[n]) for final hidden states h [n, d], each predicting the token tgt[n]."""
        vocab = self.model.get_output_embeddings().weight.shape[0]
        return _chunked_logprobs(lambda a, b: self._project(h[a:b]), tgt, max(1, LOGIT_BUDGET // vocab))

    def _score_rows(self, prompts: list[str], conts: list[str]) -> list[torch.Tensor]:
        """Per-token log-probs of each continuation after its prompt, one forward pass for all rows."""
        kwargs, tgt, mask = self.batch(prompts, conts)
        if self.arch == "seq2seq":  # the model projects every decoder position itself
            logits = self.model(**kwargs).logits
            flat, at = logits.flatten(0, 1), mask.flatten().nonzero()[:, 0]
            step = max(1, LOGIT_BUDGET // logits.shape[-1])
            lp = _chunked_logprobs(lambda a, b: flat[at[a:b]], tgt.flatten()[at], step)
            return list(lp.split(mask.sum(1).tolist()))
        h, _ = self._hidden(**kwargs)
        pred = mask[:, 1:]  # the hidden state at t-1 predicts the token at t
        lp = self._target_logprobs(h[:, :-1][pred], tgt[:, 1:][pred])
        return list(lp.split(pred.sum(1).tolist()))

    def _option_rows(
        self, prompts: list[list[int]], opts: list[list[int]], of: list[int]
    ) -> list[torch.Tensor]:
        """Per-token log-probs of option rows `opts[j]` after `prompts[of[j]]`: each prompt runs once
        (left-padded with explicit position ids, so padding changes no score), its KV cache is repeated once
        per option, and the options (right-padded: pads follow every real token) run together on it."""
        dev, pad = self.device, self.tok.pad_token_id
        ids, attn = self.pad_with_mask(prompts, pad, left=True)
        sel = torch.tensor(of, device=dev)
        multi = max(len(c) for c in opts) > 1
        h, out = self._hidden(
            input_ids=ids, attention_mask=attn, position_ids=_prefill_positions(attn), use_cache=multi
        )
        states, tgt = [h[sel, -1]], [torch.tensor([c[0] for c in opts], device=dev)]  # first option tokens
        if multi:
            cache = out.past_key_values
            cache.batch_select_indices(sel)
            o_ids, o_attn = self.pad_with_mask(opts, pad)
            o_pos = attn.sum(1)[sel, None] + torch.arange(o_ids.shape[1], device=dev)
            h, _ = self._hidden(
                input_ids=o_ids,
                attention_mask=torch.cat([attn[sel], o_attn], 1),
                position_ids=o_pos,
                past_key_values=cache,
            )
            pred = o_attn[:, 1:].bool()
            states.append(h[:, :-1][pred])
            tgt.append(o_ids[:, 1:][pred])
        lp = self._target_logprobs(torch.cat(states), torch.cat(tgt))
        first, rest = lp[: len(opts)], lp[len(opts) :].split([len(c) - 1 for c in opts])
        return [torch.cat([f.reshape(1), r]) for f, r in zip(first, rest)]

    # -- the three operations
    @torch.no_grad()
    @_inference("score")
    def score(
        self,
        prompts: list[str],
        continuations: list[str],
        batch_size: int = 16,
        progress: bool = False,
        token_budget: int = TOKEN_BUDGET,
    ) -> list[torch.Tensor]:
        """Per-token log-probs of each continuation given its prompt (teacher-forced, pad-masked). A forward
        pass holds at most `batch_size` rows and `token_budget` tokens (a longer row runs alone)."""
        from tqdm.auto import tqdm

        assert len(prompts) == len(continuations)
        n_tok = [self.n_tokens(p, c) for p, c in zip(prompts, continuations)]
        # sort by length so each batch pads little; results are returned in input order
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(continuations[i]))
        groups = list(_groups(order, batch_size, token_budget, lambda g: max(n_tok[i] for i in g)))
        res: dict[int, torch.Tensor] = {}
        for idx in tqdm(groups, disable=not progress, desc=f"score {self.name}", leave=False):
            lps = self._score_rows([prompts[i] for i in idx], [continuations[i] for i in idx])
            for i, lp in zip(idx, lps):
                res[i] = lp.cpu()
        return [res[i] for i in range(len(prompts))]

    @torch.no_grad()
    @_inference("score")
    def score_options(
        self,
        prompts: list[str],
        options: list[list[str]],
        batch_size: int = 16,
        progress: bool = False,
        token_budget: int = TOKEN_BUDGET,
    ) -> list[list[torch.Tensor]]:
        """Per-token log-probs of each option continuation after its example's prompt: the same numbers as
        `score(prompt, option)` for every pair, but each prompt runs once and its KV cache is shared by its
        options (multiple-choice scoring repeated the ~60-token prompt for each of 4-5 options).

        Causal models only (seq2seq falls back to `score`). A forward pass holds at most `batch_size` option
        sequences and `token_budget` tokens (rows x (longest prompt + longest option)); an example whose
        options fall in two passes runs its prompt in both."""
        from tqdm.auto import tqdm

        assert len(prompts) == len(options)
        if self.arch != "causal":
            flat = self.score(
                [p for p, os in zip(prompts, options) for _ in os],
                [o for os in options for o in os],
                batch_size=batch_size,
                progress=progress,
                token_budget=token_budget,
            )
            it = iter(flat)
            return [[next(it) for _ in os] for os in options]
        p_ids = [self.prompt_ids(p) for p in prompts]
        c_ids = [[self.encode(o) for o in os] for os in options]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        rows = [(i, k) for i in order for k in range(len(options[i]))]  # one row per (example, option)
        width = lambda g: max(len(p_ids[i]) for i, _ in g) + max(len(c_ids[i][k]) for i, k in g)
        groups = list(_groups(rows, batch_size, token_budget, width))
        res: list[list] = [[None] * len(os) for os in options]
        for g in tqdm(groups, disable=not progress, desc=f"options {self.name}", leave=False):
            ex = list(dict.fromkeys(i for i, _ in g))  # the examples of this pass, each prompt once
            of = [ex.index(i) for i, _ in g]
            lps = self._option_rows([p_ids[i] for i in ex], [c_ids[i][k] for i, k in g], of)
            for (i, k), lp in zip(g, lps):
                res[i][k] = lp.cpu()
        return res

    def loss(
        self, prompts: list[str], targets: list[str], weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """mean_i(w_i * nll_i), nll_i = example i's mean token NLL of its target (+ eos).

        Weights multiply (the paper-A convention: weights normalised to mean 1 over the data), they are not
        renormalised per batch, so a batch of low-weight demonstrations really counts less."""
        kwargs, tgt, mask = self.batch(prompts, targets, eos=True)
        lp = self.token_logprobs(kwargs, tgt, mask)
        per_ex = -(lp.sum(1) / mask.sum(1).clamp(min=1))
        if weights is None:
            return per_ex.mean()
        return (per_ex * weights.to(per_ex)).mean()

    def _generate_shared_prefill(self, ids, attn, K, kw):
        """K samples per prompt with the prompt's prefill computed once: `num_return_sequences=K` alone copies
        each prompt K times before the prefill, which dominates when prompts are long and samples short.
        The prompt minus its last token is run once, its KV cache repeated K times, and generate continues
        from it; generate then draws from exactly the same logits with the same RNG calls as the plain path
        (tests/test_models.py checks equal samples under one seed)."""
        pos = _prefill_positions(attn)
        out = self.model(
            input_ids=ids[:, :-1],
            attention_mask=attn[:, :-1],
            position_ids=pos[:, :-1],
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        cache.batch_repeat_interleave(K)
        kw = {**kw, "num_return_sequences": 1}
        return self.model.generate(
            input_ids=ids.repeat_interleave(K, 0),
            attention_mask=attn.repeat_interleave(K, 0),
            past_key_values=cache,
            **kw,
        )

    def _generate_common_prefix(self, p_ids: list[list[int]], n: int, kw):
        """One continuation per prompt, with the prompts' first `n` token ids (the same in every prompt)
        run once, its KV cache repeated for every row. The rows are [prefix][pads][rest of the prompt]: the
        attention mask hides the pads and generate numbers each row's real tokens 0, 1, ... as it does for a
        left-padded prompt, so each row sees the same tokens at the same positions as on the plain path."""
        pad = self.tok.pad_token_id
        prefix = torch.tensor([p_ids[0][:n]], device=self.device)
        cache = self.model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(len(p_ids))
        rest = [p[n:] for p in p_ids]
        width = max(len(r) for r in rest)
        ids = torch.tensor([p_ids[0][:n] + [pad] * (width - len(r)) + r for r in rest], device=self.device)
        attn = torch.tensor(
            [[1] * n + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=self.device
        )
        phases.count(n + len(rest) * width)  # the prefix once, then every row's own tokens, pads included
        gen = self.model.generate(input_ids=ids, attention_mask=attn, past_key_values=cache, **kw)
        return gen[:, ids.shape[1] :]

    def embedding_batch(self, prompt_ids: list[list[int]], special: list[list[bool]], conts: list[str]):
        """The padded batch gradient attribution differentiates (see EmbeddingBatch)."""
        return EmbeddingBatch(self, prompt_ids, special, conts)

    @torch.no_grad()
    @_inference("generate")
    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 0.7,
        num_return_sequences: int = 1,
        batch_size: int = 16,
        stop: tuple[str, ...] = ("\n\n", "Question:"),
        seed: int | None = None,
        progress: bool = False,
    ) -> list[str] | list[list[str]]:
        """Greedy or sampled continuations; with num_return_sequences=K, one call per batch returns K
        samples per prompt (list of K strings per prompt). Text after a stop string is cut.

        A pass holds `batch_size` prompts; greedy prompts that share their first `SHARED_PREFIX_MIN` or more
        tokens (few-shot exemplars) run that prefix once per pass and `SHARED_ROWS` x `batch_size` per pass
        (`share_prefill` False: the plain path). In fp32 both give the same text (make bench's
        `generation` row); under bf16 the prefix computed alone may round differently."""
        from tqdm.auto import tqdm

        if seed is not None:
            torch.manual_seed(seed)
        K = num_return_sequences
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        p_all = [self.prompt_ids(p) for p in prompts]
        # greedy only: sampling draws from one random stream, so rows per pass would change the samples
        shared = self.arch == "causal" and K == 1 and not do_sample and self.share_prefill
        rows = (
            batch_size * SHARED_ROWS if shared and _common_prefix(p_all) >= SHARED_PREFIX_MIN else batch_size
        )
        res: dict[int, list[str]] = {}
        pad = self.tok.pad_token_id
        for s in tqdm(
            range(0, len(order), rows), disable=not progress, desc=f"generate {self.name}", leave=False
        ):
            idx = order[s : s + rows]
            p_ids = [p_all[i] for i in idx]
            kw = dict(
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                num_return_sequences=K,
                pad_token_id=pad,
                eos_token_id=self.tok.eos_token_id,
            )
            if do_sample:
                kw.update(temperature=temperature, top_k=0, top_p=1.0)
            else:
                kw.update(temperature=None, top_k=None, top_p=None)
            if shared and len(idx) > 1 and (n := _common_prefix(p_ids)) >= SHARED_PREFIX_MIN:
                gen = self._generate_common_prefix(p_ids, n, kw)
            else:
                ids, attn = self.pad_with_mask(p_ids, pad, left=self.arch == "causal")
                if self.arch == "causal" and K > 1 and self.share_prefill:
                    gen = self._generate_shared_prefill(ids, attn, K, kw)
                else:
                    gen = self.model.generate(input_ids=ids, attention_mask=attn, **kw)
                if self.arch == "causal":
                    gen = gen[:, ids.shape[1] :]
            # one position per row per decoding step (the prompts were counted at padding)
            phases.count(gen.numel())
            texts = [_cut(t, stop) for t in self.tok.batch_decode(gen, skip_special_tokens=True)]
            for r, i in enumerate(idx):
                res[i] = texts[r * K : (r + 1) * K]
        return [res[i] if K > 1 else res[i][0] for i in range(len(prompts))]


def _groups(items: list, max_rows: int, budget: int, width) -> list[list]:
    """`items` cut into consecutive runs, one forward pass each: at most `max_rows` rows, and rows x padded
    length (`width(run)`) within `budget`; an item wider than the budget alone makes a run."""
    runs, run = [], []
    for it in items:
        if run and (len(run) == max_rows or (len(run) + 1) * width(run + [it]) > budget):
            runs.append(run)
            run = []
        run.append(it)
    return runs + [run] if run else runs


def _chunked_logprobs(logits_of, tgt: torch.Tensor, step: int) -> torch.Tensor:
    """log_softmax(logits[n])[tgt[n]] for every n, where `logits_of(a, b)` gives the logits of targets
    a..b-1 as a fresh tensor: `step` targets at a time, so only `step` vocabulary-sized rows exist at once."""
    out = [tgt.new_zeros(0, dtype=torch.float)]
    for a in range(0, len(tgt), step):
        out.append(_logprobs_(logits_of(a, a + step).float(), tgt[a : a + step]))
    return torch.cat(out)


def _logprobs_(x: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """log_softmax(x)[tgt] per row, computed in place in x: no second vocabulary-sized buffer, and x is
    freed on return, before the next chunk is projected."""
    picked = x.gather(-1, tgt[:, None])[:, 0]
    top = x.amax(-1, keepdim=True)
    return picked - (x.sub_(top).exp_().sum(-1).log_() + top[:, 0])


def _prefill_positions(attn: torch.Tensor) -> torch.Tensor:
    # what generate derives from a left-padded attention mask: real tokens count 0, 1, ...; pads get 1
    pos = attn.long().cumsum(-1) - 1
    return pos.masked_fill(attn == 0, 1)


def _common_prefix(p_ids: list[list[int]]) -> int:
    """How many leading token ids all of `p_ids` share, leaving every prompt at least one token of its own
    (its last token's logits start the continuation)."""
    n, short = 0, min((len(p) for p in p_ids), default=1) - 1
    while n < short and all(p[n] == p_ids[0][n] for p in p_ids):
        n += 1
    return n


def _first_real(p_ids, enc):
    # an empty prompt would have an all-zero attention mask; keep its first position visible
    m = torch.zeros_like(enc, dtype=torch.bool)
    for i, p in enumerate(p_ids):
        if not p:
            m[i, 0] = True
    return m


def _cut(text: str, stop: tuple[str, ...]) -> str:
    for s in stop:
        j = text.find(s)
        if j >= 0:
            text = text[:j]
    return text.strip()


class EmbeddingBatch:
    """Tensors of a padded batch for gradient attribution (right padding: real tokens keep their positions,
    so a pad cannot move a score) and the forward function f(input embeddings) -> target log-prob, one per
    example: the embeddings are the input captum differentiates, the answer's log-prob the output."""

    def __init__(self, lm, prompt_ids: list[list[int]], special: list[list[bool]], conts: list[str]):
        self.lm, m, dev = lm, lm.model, lm.device
        pad = lm.tok.pad_token_id
        c_ids = [lm.encode(c) for c in conts]
        self.emb_layer = m.get_input_embeddings()
        seqs = prompt_ids if lm.arch == "seq2seq" else [p + c for p, c in zip(prompt_ids, c_ids)]
        L = max(len(s) for s in seqs)
        self.ids = torch.tensor([s + [pad] * (L - len(s)) for s in seqs], device=dev)
        self.attn = torch.zeros_like(self.ids)
        self.attr = torch.zeros_like(self.ids, dtype=torch.bool)  # attributed positions: prompt, not special
        for i, (s, p, sp) in enumerate(zip(seqs, prompt_ids, special)):
            self.attn[i, : len(s)] = 1
            self.attr[i, : len(p)] = ~torch.tensor(sp, dtype=torch.bool)
        T = max(len(c) for c in c_ids)
        if lm.arch == "seq2seq":
            start = m.config.decoder_start_token_id
            dec = torch.tensor([([start] + c[:-1] + [pad] * (T - len(c))) for c in c_ids], device=dev)
            # fixed, and computed outside the forward so a layer hook sees the encoder only
            with torch.no_grad():
                self.aux = m.get_decoder().get_input_embeddings()(dec)
            self.tgt = torch.tensor([c + [pad] * (T - len(c)) for c in c_ids], device=dev)
            self.tmask = torch.tensor([[j < len(c) for j in range(T)] for c in c_ids], device=dev)
        else:
            # logits only where an answer token is predicted (Gemma's vocabulary has 262k entries): row i
            # keeps positions len(p)-1+j, j < T (padded by repeating its last one, masked out of the sum)
            self.aux = torch.tensor(
                [[len(p) - 1 + min(j, len(c) - 1) for j in range(T)] for p, c in zip(prompt_ids, c_ids)],
                device=dev,
            )
            self.tgt = torch.gather(self.ids, 1, self.aux + 1)
            self.tmask = torch.tensor([[j < len(c) for j in range(T)] for c in c_ids], device=dev)
        with torch.no_grad():
            # includes any embedding scale (Gemma multiplies by sqrt(d))
            self.embeds = self.emb_layer(self.ids)

    def args(self) -> tuple:
        # every per-example tensor has the batch first, so captum can repeat / split them with the inputs
        return (self.embeds, self.attr, self.attn, self.aux, self.tgt, self.tmask)

    def forward(self, x, fixed, attr, attn, aux, tgt, tmask):
        """Target log-prob of each row; only attributed positions of x are used, the rest come from `fixed`
        (the answer tokens of a causal model, BOS/EOS), so IG never interpolates them."""
        e = torch.where(attr.unsqueeze(-1), x, fixed)
        phases.count(e.shape[0] * e.shape[1])  # captum calls this once per pass (IG: once per step batch)
        if self.lm.arch == "seq2seq":
            logits = self.lm.model(inputs_embeds=e, attention_mask=attn, decoder_inputs_embeds=aux).logits
        else:
            logits = self.lm.model(inputs_embeds=e, attention_mask=attn, logits_to_keep=aux).logits
        lp = torch.log_softmax(logits.float(), -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        return (lp * tmask).sum(1)

    def forward_ids(self, ids, *args):  # for LayerIntegratedGradients: the hooked embedding layer runs here
        return self.forward(self.emb_layer(ids), *args)
