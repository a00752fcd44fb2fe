"""Cached feature extraction (``--strategy frozen``): the backbone's features are computed once and reused, they are
the vectors the model's own head reads, the head fitted on them is the exported model's head, and the folder is a
plain classifier."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from nlp_transfer import features
from nlp_transfer.recipes import classify

FAST = ["--strategy", "frozen", "--max_seq_length", "16", "--num_train_epochs", "3",
        "--per_device_train_batch_size", "8", "--save_strategy", "no", "--logging_steps", "2"]  # fmt: skip


def run(model, files, out, *extra):
    train, dev = files
    args = ["--model_name_or_path", model, "--train_file", train, "--validation_file", dev, "--output_dir", str(out)]
    return classify.main(args + FAST + list(extra))


def test_features_are_computed_once_and_reused(tiny_bert, sentiment_files, tmp_path, monkeypatch):
    cache = tmp_path / "features"
    first = run(tiny_bert, sentiment_files, tmp_path / "a", "--feature_cache_dir", str(cache))
    assert first["train_feature_cache_hit"] is False and len(list(cache.glob("*.npz"))) == 1

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone ran although its features were cached")

    monkeypatch.setattr(features, "head_inputs", no_backbone)
    # another seed and learning rate: the same features (the head is not part of the key)
    again = run(tiny_bert, sentiment_files, tmp_path / "b", "--feature_cache_dir", str(cache), "--seed", "7",
                "--learning_rate", "1e-2")  # fmt: skip
    assert again["train_feature_cache_hit"] is True
    assert again["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4  # the folder is still checked and reproduced
    # other preprocessing (rows cut to 4 tokens) is a miss, never a wrong hit: it reaches the (refusing) backbone
    with pytest.raises(AssertionError, match="the backbone ran"):
        run(tiny_bert, sentiment_files, tmp_path / "c", "--feature_cache_dir", str(cache), "--max_seq_length", "4")


def test_another_backbone_is_a_miss(tiny_bert, sentiment_files, tmp_path):
    from helpers import make_tiny_bert

    other = make_tiny_bert(str(tmp_path / "other"), seed=1)
    cache = str(tmp_path / "features")
    run(tiny_bert, sentiment_files, tmp_path / "a", "--feature_cache_dir", cache)
    assert (
        run(other, sentiment_files, tmp_path / "b", "--feature_cache_dir", cache)["train_feature_cache_hit"] is False
    )


@pytest.mark.parametrize("arch", ["tiny_bert", "tiny_gpt2"])
def test_features_are_the_vectors_the_head_reads(arch, request):
    """By hand: BERT's head reads the pooler's output; GPT-2's score reads the last non-pad token's hidden state."""
    path = request.getfixturevalue(arch)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, pad_token_id=tok.pad_token_id)
    model.eval()
    texts = ["good great fine", "bad", "awful terrible movie plot"]
    from datasets import Dataset

    ds = Dataset.from_dict(dict(tok(texts)))
    columns = [c for c in ds.column_names if c in tok.model_input_names]
    got = features.head_inputs(model, ds, DataCollatorWithPadding(tok), batch_size=2, columns=columns)
    with torch.no_grad():
        for i, text in enumerate(texts):  # one text at a time: no padding at all
            enc = tok(text, return_tensors="pt")
            if arch == "tiny_bert":
                want = model.bert(**enc).pooler_output[0]
            else:
                want = model.transformer(**enc).last_hidden_state[0, -1]
            torch.testing.assert_close(torch.from_numpy(got["features"][i]), want, atol=1e-5, rtol=1e-4)
            # and the head applied to the cached vector gives the whole model's logits
            logits = features.apply_head(model.score if arch == "tiny_gpt2" else model.classifier,
                                         torch.from_numpy(got["features"][i : i + 1]), str(got["layout"]))  # fmt: skip
            torch.testing.assert_close(logits[0], model(**enc).logits[0], atol=1e-5, rtol=1e-4)
    assert str(got["layout"]) == ("vector" if arch == "tiny_bert" else "per_token")


def test_the_head_trains_on_cached_features_and_is_the_exported_head(tiny_bert, sentiment_files, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "out"
    metrics = run(tiny_bert, sentiment_files, out, "--learning_rate", "5e-2")
    saved = load_file(out / "model.safetensors")
    base = load_file(tiny_bert + "/model.safetensors")
    # the backbone is untouched, the head moved from its seeded start
    for k, v in base.items():
        name = k if k.startswith("bert.") else f"bert.{k}"
        if name in saved:
            torch.testing.assert_close(saved[name], v)
    torch.manual_seed(42)
    start = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2).classifier.weight
    assert not torch.allclose(saved["classifier.weight"], start)
    logs = json.loads((out / "metrics.json").read_text())
    assert logs["train_feature_cache_hit"] is False and metrics["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4
    assert (out / "training_curves.png").is_file()  # drawn from the fit's log (18 steps, a loss every 2)


def test_cache_features_false_is_the_step_by_step_run(tiny_bert, sentiment_files, tmp_path):
    metrics = run(tiny_bert, sentiment_files, tmp_path / "out", "--cache_features", "false")
    assert "train_feature_cache_hit" not in metrics
    config = (tmp_path / "out" / "run_config.yaml").read_text()
    assert "cache_features: false" in config and "pooling: model" in config  # one option set: all recorded


# ------------------------------------------------------------------------------------------ --pooling, fusion
def test_mean_pooling_and_layer_fusion_equal_a_hand_computation(tiny_bert):
    from transformers import AutoModel

    from nlp_transfer.pooled_model import PooledClassifierConfig, PooledModelForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    backbone = AutoModel.from_pretrained(tiny_bert)
    config = PooledClassifierConfig(backbone=backbone.config.to_dict(), pooling="mean", pool_layers=2, num_labels=2)
    model = PooledModelForSequenceClassification(config, backbone=backbone).eval()
    enc = tok(["good great fine movie", "bad"], padding=True, return_tensors="pt")
    with torch.no_grad():
        states = backbone(**enc, output_hidden_states=True).hidden_states
        mask = enc["attention_mask"]
        by_hand = []
        for row in range(2):
            n = int(mask[row].sum())  # right padding: the first n tokens are real
            by_hand.append(torch.cat([states[-2][row, :n].mean(0), states[-1][row, :n].mean(0)]))
        want = model.classifier(torch.stack(by_hand))
        torch.testing.assert_close(model(**enc).logits, want, atol=1e-5, rtol=1e-4)


def test_a_pooled_folder_loads_in_a_process_without_nlp_transfer(tiny_bert, sentiment_files, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    metrics = run(tiny_bert, sentiment_files, out, "--pooling", "mean", "--pool_layers", "2")
    assert metrics["train_feature_cache_hit"] is False  # frozen + a pooled head: the features are still cached
    assert (out / "pooled_model.py").is_file()
    assert "pooling: mean" in (out / "run_config.yaml").read_text()  # recorded only when not the defaults
    assert "trust_remote_code=True" in (out / "README.md").read_text()
    code = (
        "import json, sys\n"
        "from transformers import pipeline\n"
        f"rec = json.load(open({str(out / 'roundtrip_check.json')!r}))\n"
        f"clf = pipeline('text-classification', model={str(out)!r}, trust_remote_code=True)\n"
        "got = clf(rec['inputs'], top_k=None, function_to_apply='none', truncation=True)\n"
        "names = {v: k for k, v in rec['label2id'].items()}\n"
        "for row, scores in zip(rec['expected_logits'], got):\n"
        "    s = {d['label']: d['score'] for d in scores}\n"
        "    assert all(abs(s[names[i]] - v) < 1e-4 for i, v in enumerate(row)), (row, s)\n"
        "assert not any(m.startswith('nlp_transfer') for m in sys.modules), 'nlp_transfer was imported'\n"
        "print('ok', len(got))\n"
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("ok 8"), done.stderr[-2000:]


def test_pooling_refusals(tiny_bert, sentiment_files, tmp_path):
    from nlp_transfer.errors import NLPTransferError

    with pytest.raises(NLPTransferError, match="--pool_layers fuses layers of --pooling mean"):
        run(tiny_bert, sentiment_files, tmp_path / "a", "--pool_layers", "2")
    with pytest.raises(NLPTransferError, match="has 2 layers .plus its embeddings.: use at most 3"):
        run(tiny_bert, sentiment_files, tmp_path / "b", "--pooling", "mean", "--pool_layers", "4")


def test_lora_on_a_pooled_classifier_targets_its_backbone(tiny_bert, sentiment_files, tmp_path):
    from nlp_transfer import strategies

    out = tmp_path / "out"
    metrics = run(
        tiny_bert, sentiment_files, out, "--strategy", "lora", "--pooling", "mean", "--learning_rate", "1e-2"
    )
    config = json.loads((out / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["query", "value"]  # PEFT's BERT entry, read off the backbone
    assert "classifier" in (config.get("modules_to_save") or [])
    assert metrics["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4
    assert strategies.default_lora_targets(classify_model(tiny_bert)) == ["query", "value"]


def classify_model(path):
    from types import SimpleNamespace

    from nlp_transfer import modeling

    labels = SimpleNamespace(num_labels=2, id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1},
                             problem_type="single_label_classification")  # fmt: skip
    return modeling.load_pooled_classifier(path, labels, pooling="mean", pool_layers=1)
