"""One small interface over causal and seq2seq LMs: the only code that touches token ids and logits.

`LM` gives every caller the same operations: `encode` and `prompt_ids` (the one rule for how a prompt
is tokenised), `batch` (padded teacher-forcing tensors), batched `score` (per-token log-probs of a
continuation, pad-masked), `score_options` (the same numbers for several continuations of one prompt,
sharing its prefill), batched `generate` (greedy or sampled, K samples per prompt in one call), and
the training `loss`. It imports nothing else of `lib`, so any module may use it and none may bypass it.

Causal models are fed prompt+continuation; scoring and training pad on the right (positions of real
tokens never move, so padding cannot change a score), generation pads on the left (so every row's
next token comes from its own last real token).
"""

from __future__ import annotations

import functools

import torch


def _in_precision(method):
    """Run an inference method under bf16 autocast when the LM is in bf16: matmuls in bf16, the reductions
    autocast keeps in fp32 (softmax, log-softmax) stay there."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with self.autocast():
            return method(self, *args, **kwargs)

    return wrapped


class LM:
    """Batched generate / score / loss over a causal or seq2seq model.

    Causal models are fed prompt+continuation; scoring and training pad on the right (positions of real
    tokens never move, so padding cannot change a score), generation pads on the left (so every row's
    next token comes from its own last real token)."""

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
        self.share_prefill = True  # K samples reuse one prompt prefill (see generate)

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
        return ids, attn

    def batch(self, prompts: list[str], conts: list[str], eos: bool = False):
        """Tensors for teacher forcing: returns (model kwargs, target ids, target mask)."""
        p_ids = [self.prompt_ids(p) for p in prompts]
        c_ids = [self.encode(c) + ([self.tok.eos_token_id] if eos else []) for c in conts]
        pad = self.tok.pad_token_id
        if self.arch == "seq2seq":
            enc = self.pad(p_ids, pad)
            labels = self.pad(c_ids, -100)
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
        """Log-prob of every target token, 0 where mask is False. Shape of tgt."""
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

    # -- the three operations
    @torch.no_grad()
    @_in_precision
    def score(
        self, prompts: list[str], continuations: list[str], batch_size: int = 16, progress: bool = False
    ) -> list[torch.Tensor]:
        """Per-token log-probs of each continuation given its prompt (teacher-forced, pad-masked)."""
        from tqdm.auto import tqdm

        assert len(prompts) == len(continuations)
        out: list[torch.Tensor] = []
        # sort by length so each batch pads little; results are returned in input order
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(continuations[i]))
        res: dict[int, torch.Tensor] = {}
        for s in tqdm(
            range(0, len(order), batch_size), disable=not progress, desc=f"score {self.name}", leave=False
        ):
            idx = order[s : s + batch_size]
            kwargs, tgt, mask = self.batch([prompts[i] for i in idx], [continuations[i] for i in idx])
            lp = self.token_logprobs(kwargs, tgt, mask)
            for row, i in enumerate(idx):
                res[i] = lp[row][mask[row]].cpu()
        out = [res[i] for i in range(len(prompts))]
        return out

    @torch.no_grad()
    @_in_precision
    def score_options(
        self, prompts: list[str], options: list[list[str]], batch_size: int = 16, progress: bool = False
    ) -> list[list[torch.Tensor]]:
        """Per-token log-probs of each option continuation after its example's prompt: the same numbers as
        `score(prompt, option)` for every pair, but each prompt runs once and its KV cache is shared by its
        options (multiple-choice scoring repeated the ~60-token prompt for each of 4-5 options).

        Causal models only (seq2seq falls back to `score`). `batch_size` counts option sequences; prompts of
        a batch are left-padded with explicit position ids, so padding changes no score."""
        from tqdm.auto import tqdm

        assert len(prompts) == len(options)
        if self.arch != "causal":
            flat = self.score(
                [p for p, os in zip(prompts, options) for _ in os],
                [o for os in options for o in os],
                batch_size=batch_size,
                progress=progress,
            )
            it = iter(flat)
            return [[next(it) for _ in os] for os in options]
        m, dev, pad = self.model, self.device, self.tok.pad_token_id
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        per_batch = max(1, batch_size // max(1, max((len(o) for o in options), default=1)))
        res: dict[int, list[torch.Tensor]] = {}
        for s in tqdm(
            range(0, len(order), per_batch), disable=not progress, desc=f"options {self.name}", leave=False
        ):
            idx = order[s : s + per_batch]
            p_ids = [self.prompt_ids(prompts[i]) for i in idx]
            c_ids = [[self.encode(o) for o in options[i]] for i in idx]
            ids, attn = self.pad_with_mask(p_ids, pad, left=True)
            L, pos = ids.shape[1], _prefill_positions(attn)
            out = m(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1)
            first = torch.log_softmax(out.logits[:, -1].float(), -1)  # predicts every option's first token
            n_opt = [len(c) for c in c_ids]
            rows = [(r, c) for r, cs in enumerate(c_ids) for c in cs]  # one row per (example, option)
            T = max(len(c) for _, c in rows)
            lps = [[first[r, c[0]].reshape(1)] for r, c in rows]
            if T > 1:
                # repeat each example's prompt cache once per option, then run all options in one pass
                cache = out.past_key_values
                cache.batch_select_indices(torch.tensor([r for r, _ in rows], device=dev))
                o_ids = torch.tensor([c + [pad] * (T - len(c)) for _, c in rows], device=dev)
                o_attn = torch.cat(
                    [attn[[r for r, _ in rows]], torch.zeros(len(rows), T, dtype=attn.dtype, device=dev)], 1
                )
                o_pos = torch.zeros(len(rows), T, dtype=torch.long, device=dev)
                for j, (r, c) in enumerate(rows):  # right padding of options: pads follow every real token
                    o_attn[j, L : L + len(c)] = 1
                    o_pos[j] = len(p_ids[r]) + torch.arange(T)
                logp = torch.log_softmax(
                    m(
                        input_ids=o_ids,
                        attention_mask=o_attn,
                        position_ids=o_pos,
                        past_key_values=cache,
                        logits_to_keep=T,
                    ).logits.float(),
                    -1,
                )
                for j, (_, c) in enumerate(rows):
                    if len(c) > 1:
                        lps[j].append(logp[j, torch.arange(len(c) - 1), torch.tensor(c[1:])].cpu())
            it = iter(torch.cat(x).cpu() for x in lps)
            for r, i in enumerate(idx):
                res[i] = [next(it) for _ in range(n_opt[r])]
        return [res[i] for i in range(len(prompts))]

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

    @torch.no_grad()
    @_in_precision
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
        samples per prompt (list of K strings per prompt). Text after a stop string is cut."""
        from tqdm.auto import tqdm

        if seed is not None:
            torch.manual_seed(seed)
        K = num_return_sequences
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        res: dict[int, list[str]] = {}
        pad = self.tok.pad_token_id
        for s in tqdm(
            range(0, len(order), batch_size), disable=not progress, desc=f"generate {self.name}", leave=False
        ):
            idx = order[s : s + batch_size]
            p_ids = [self.prompt_ids(prompts[i]) for i in idx]
            ids, attn = self.pad_with_mask(p_ids, pad, left=self.arch == "causal")
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
            if self.arch == "causal" and K > 1 and self.share_prefill:
                gen = self._generate_shared_prefill(ids, attn, K, kw)
            else:
                gen = self.model.generate(input_ids=ids, attention_mask=attn, **kw)
            if self.arch == "causal":
                gen = gen[:, ids.shape[1] :]
            texts = [_cut(t, stop) for t in self.tok.batch_decode(gen, skip_special_tokens=True)]
            for r, i in enumerate(idx):
                res[i] = texts[r * K : (r + 1) * K]
        return [res[i] if K > 1 else res[i][0] for i in range(len(prompts))]


def _prefill_positions(attn: torch.Tensor) -> torch.Tensor:
    # what generate derives from a left-padded attention mask: real tokens count 0, 1, ...; pads get 1
    pos = attn.long().cumsum(-1) - 1
    return pos.masked_fill(attn == 0, 1)


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
