import pytest
import torch

from nlp_transfer.errors import NLPTransferError
from nlp_transfer.export import save_classifier, verify_adapter, verify_pipeline
from nlp_transfer.modeling import apply_strategy, load_sequence_classifier, load_tokenizer

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


def test_pipeline_check_passes_on_a_faithful_folder_and_fails_on_a_stale_one(tiny_bert, tmp_path):
    model, tok = classifier(tiny_bert), load_tokenizer(tiny_bert)
    perturb(model)  # something a fresh head would not have
    save_classifier(model, tok, str(tmp_path), base_model_path=tiny_bert, base_model_name=tiny_bert, max_seq_length=16)
    ok = verify_pipeline(str(tmp_path), model, tok, TEXTS, label2id=LABELS, max_seq_length=16)
    assert ok["examples"] == 3 and ok["max_abs_logit_diff"] < 1e-5
    perturb(model)  # the in-memory model moves on; the folder no longer matches it
    with pytest.raises(NLPTransferError, match="round-trip check failed"):
        verify_pipeline(str(tmp_path), model, tok, TEXTS, label2id=LABELS, max_seq_length=16)


def test_adapter_check_passes_and_fails(tiny_bert, tmp_path):
    tok = load_tokenizer(tiny_bert)
    model = apply_strategy(classifier(tiny_bert), strategy="lora", lora_r=2)
    perturb(model)
    save_classifier(
        model,
        tok,
        str(tmp_path),
        base_model_path=tiny_bert,
        base_model_name=tiny_bert,
        max_seq_length=16,
        save_base_model=False,
    )
    ok = verify_adapter(str(tmp_path), model, tok, TEXTS, base_model_path=tiny_bert, max_seq_length=16)
    assert ok["max_abs_logit_diff"] < 1e-5
    perturb(model)
    with pytest.raises(NLPTransferError, match="round-trip check failed"):
        verify_adapter(str(tmp_path), model, tok, TEXTS, base_model_path=tiny_bert, max_seq_length=16)
