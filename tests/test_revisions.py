"""The paper preset loads every hub model and dataset at a pinned commit, never at whatever the hub holds."""

import json
import re

import pytest
import transformers

from lib import check_paper, data, models

# ids no stored source gives a commit for: `make check-paper` reports each one as not pinned
UNPINNED = {"esnli"}
SHA = re.compile(r"[0-9a-f]{40}")


class Sentinel(Exception):
    pass


def test_every_paper_id_is_pinned_to_a_commit_or_listed_as_unpinned():
    model_ids, dataset_ids = check_paper.paper_ids()
    revs = {m: models.hub_revision(m) for m in model_ids} | {d: data.HUB_REVISIONS[d] for d in dataset_ids}
    assert {i for i, rev in revs.items() if rev is None} == UNPINNED
    assert all(SHA.fullmatch(rev) for rev in revs.values() if rev is not None)


def test_every_hub_entry_has_a_revision_entry():
    assert {h[0] for h in data.HUB.values()} == set(data.HUB_REVISIONS)
    hub_models = [s for s in models.REGISTRY.values() if s.source == "hub"]
    assert hub_models and all(SHA.fullmatch(s.revision or "") for s in hub_models)
    assert all(s.revision is None for s in models.REGISTRY.values() if s.source != "hub")


@pytest.fixture
def load_dataset_calls(monkeypatch):
    import datasets

    calls = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        raise Sentinel

    monkeypatch.setattr(datasets, "load_dataset", fake)
    return calls


@pytest.mark.parametrize("name", sorted(data.HUB))
def test_load_hub_asks_datasets_for_the_pinned_revision(name, load_dataset_calls):
    path, config, eval_split, _, _ = data.HUB[name]
    with pytest.raises(Sentinel):
        data.load_hub(name)
    assert load_dataset_calls == [
        ((path, config), {"split": eval_split, "revision": data.HUB_REVISIONS[path]})
    ]


def test_local_files_in_the_hub_format_get_no_revision(load_dataset_calls, tmp_path):
    with pytest.raises(Sentinel):
        data.load_hub("gsm8k", data_files={"test": str(tmp_path / "test.json")})
    ((args, kwargs),) = load_dataset_calls
    assert args == ("json",) and "revision" not in kwargs


@pytest.fixture
def from_pretrained_calls(monkeypatch):
    """Every Auto class's from_pretrained records (class, path, kwargs); tokenizers return a stand-in,
    weights raise Sentinel (the encoder's return a stand-in, so its tokenizer loads after them)."""
    calls = []

    class Stub:
        def to(self, *_):
            return self

        def eval(self):
            return self

    def fake(cls_name, result):
        def from_pretrained(path, **kwargs):
            calls.append((cls_name, str(path), kwargs))
            if result is Sentinel:
                raise Sentinel
            return result

        return from_pretrained

    for cls_name, result in (
        ("AutoTokenizer", Stub()),
        ("AutoModelForSeq2SeqLM", Sentinel),
        ("AutoModelForCausalLM", Sentinel),
        ("AutoModel", Stub()),
    ):
        monkeypatch.setattr(getattr(transformers, cls_name), "from_pretrained", fake(cls_name, result))
    return calls


@pytest.mark.parametrize(
    "name, weights",
    [("t5-base", "AutoModelForSeq2SeqLM"), ("meta-llama/Llama-2-7b-chat-hf", "AutoModelForCausalLM")],
)
def test_a_hub_model_loads_tokenizer_and_weights_at_the_pinned_revision(name, weights, from_pretrained_calls):
    with pytest.raises(Sentinel):
        models.load_model(name)
    rev = models.REGISTRY[name].revision
    assert [(c, p, k.get("revision")) for c, p, k in from_pretrained_calls] == [
        ("AutoTokenizer", name, rev),
        (weights, name, rev),
    ]


def test_a_hub_encoder_loads_at_the_pinned_revision(from_pretrained_calls):
    name = "sentence-transformers/all-MiniLM-L6-v2"
    models.load_encoder(name)
    rev = models.REGISTRY[name].revision
    assert [(c, p, k.get("revision")) for c, p, k in from_pretrained_calls] == [
        ("AutoModel", name, rev),
        ("AutoTokenizer", name, rev),
    ]


def test_a_local_checkpoint_gets_no_revision(from_pretrained_calls, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"is_encoder_decoder": True}))
    with pytest.raises(Sentinel):
        models.load_model(str(tmp_path))
    assert [c for c, _, _ in from_pretrained_calls] == ["AutoTokenizer", "AutoModelForSeq2SeqLM"]
    assert all("revision" not in k for _, _, k in from_pretrained_calls)
