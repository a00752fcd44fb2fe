"""Saving a trained classifier (nlp_transfer.artifacts.saving), its round-trip check (nlp_transfer.tasks) and the
model card's metadata (nlp_transfer.artifacts.card)."""

import os

import pytest
import torch

from nlp_transfer import strategies, tasks
from nlp_transfer.artifacts import card
from nlp_transfer.artifacts.saving import save_model
from nlp_transfer.config import StrategyArguments
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.modeling import load_sequence_classifier, load_tokenizer
from nlp_transfer.tasks import CLASSIFICATION

LABELS = {"negative": 0, "positive": 1}
TEXTS = ["good great movie", "awful bad plot", "the film"]


def classifier(path):
    return load_sequence_classifier(
        path,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id=LABELS,
        problem_type="single_label_classification",
        pad_token_id=0,
    )


def perturb(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "classifier" in n:
                p.add_(1.0)


def save_and_export(model, tok, folder, base, **kwargs):
    """``save_model`` as `nlp_transfer.run.finish` calls it; returns the `Export` the checks read."""
    save_model(
        model,
        tok,
        folder,
        load_base=lambda config: CLASSIFICATION.load_base(base, config),
        base_model_name=base,
        max_seq_length=16,
        **kwargs,
    )
    return tasks.Export(tokenizer=tok, max_seq_length=16, examples=TEXTS, label2id=LABELS, base_model_path=base)


def test_pipeline_check_passes_on_a_faithful_folder_and_fails_on_a_stale_one(tiny_bert, tmp_path):
    model, tok = classifier(tiny_bert), load_tokenizer(tiny_bert)
    perturb(model)  # something a fresh head would not have
    export = save_and_export(model, tok, str(tmp_path), tiny_bert)
    ok = CLASSIFICATION.check(str(tmp_path), model, export, peft=False, record=True)
    assert ok["examples"] == 3 and ok["max_abs_logit_diff"] < 1e-5
    assert set(tasks.verify_recorded(str(tmp_path))) == {"pipeline"}  # repeated from the folder and its record alone
    perturb(model)  # the in-memory model moves on; the folder no longer matches it
    with pytest.raises(NLPTransferError, match="round-trip check failed"):
        CLASSIFICATION.check(str(tmp_path), model, export, peft=False, record=False)


def test_adapter_only_folder_is_checked_via_peft(tiny_bert, tmp_path):
    tok = load_tokenizer(tiny_bert)
    model = strategies.apply(classifier(tiny_bert), StrategyArguments(strategy="lora", lora_r=2))
    perturb(model)
    export = save_and_export(model, tok, str(tmp_path), tiny_bert, save_base_model=False)
    assert "model.safetensors" not in os.listdir(tmp_path)  # plain pipeline() cannot load it, by design
    ok = CLASSIFICATION.check(str(tmp_path), model, export, peft=True, record=True)
    assert ok["max_abs_logit_diff"] < 1e-5
    replayed = tasks.verify_recorded(str(tmp_path))
    assert set(replayed) == {"peft"} and replayed["peft"]["max_abs_logit_diff"] < 1e-5
    perturb(model)
    with pytest.raises(NLPTransferError, match=r"round-trip check failed: PeftModel\.from_pretrained"):
        CLASSIFICATION.check(str(tmp_path), model, export, peft=True, record=False)


def test_card_metadata_never_names_a_local_path(tiny_bert, tmp_path):
    assert card.metadata_base_model(tiny_bert) is None  # a local folder is no Hub id
    assert card.metadata_base_model("some-org/some-model") == "some-org/some-model"
    train = tmp_path / "train.csv"
    train.write_text("text,label\n")
    for local in (str(train), "reviews.jsonl", "builtin:bbc_news", str(tmp_path)):
        assert card.card_datasets(local) is None, local
    assert card.card_datasets("stanfordnlp/imdb") == ["stanfordnlp/imdb"]
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# base\n")
    assert card.card_license(None, str(tmp_path)) == "mit"  # read from a base card on disk
    assert card.card_license("apache-2.0", str(tmp_path)) == "apache-2.0"
    assert card.card_license(None, tiny_bert) is None
