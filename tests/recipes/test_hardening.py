"""A hostile but realistic user, on every recipe: each case ends in one `nlp-transfer: error:` line naming the fix,
exit status 2, and nothing on disk deleted, overwritten or half-written. Subprocesses, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_tiny_qa_bert, one_error_line, qa_rows, squad_nested, write_rows

RECIPES = ("classify", "sentiment", "qa", "distill", "pretrain")
FINISHED = {"metrics.json": '{"eval_accuracy": 0.9}', "config.json": "{}", "precious.txt": "keep me"}


def recipe(name: str, *args, env_extra=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", f"nlp_transfer.recipes.{name}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def finished_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, text in FINISHED.items():
        (folder / name).write_text(text)
    return folder


def untouched(folder: Path) -> bool:
    return {p.name: p.read_text() for p in folder.iterdir()} == FINISHED


def base_args(name: str, tmp_path: Path) -> list[str]:
    """Enough for each recipe to get past parsing (the data need not exist, except pretrain's, which is checked at
    parse time: these cases fail before any data loads)."""
    (tmp_path / "text.txt").write_text("some text\n")
    return {
        "classify": ["--train_file", str(tmp_path / "train.csv")],
        "sentiment": ["--train_file", str(tmp_path / "train.csv")],
        "qa": ["--train_file", str(tmp_path / "train.json")],
        "pretrain": ["--train_file", str(tmp_path / "text.txt")],
        "distill": ["--teacher_name_or_path", str(tmp_path / "teacher"), "--train_file", str(tmp_path / "t.csv")],
    }[name]


# ------------------------------------------------------------------ a finished run is never destroyed or mixed
@pytest.mark.parametrize(
    "name, option, expected",
    [(r, ["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1") for r in RECIPES]
    + [
        ("classify", ["--learning_rate", "-1"], "--learning_rate must be > 0"),
        ("classify", ["--num_train_epochs", "0"], "--num_train_epochs must be > 0"),
        ("qa", ["--num_train_epochs", "-1"], "--num_train_epochs must be > 0"),
        ("sentiment", ["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1"),
        ("classify", ["--lora_r", "0"], "--lora_r must be at least 1"),
    ],
)
def test_overwrite_with_a_bad_option_keeps_the_finished_run(name, option, expected, tmp_path):
    out = finished_run(tmp_path / "out")
    r = recipe(name, *base_args(name, tmp_path), "--output_dir", str(out), "--overwrite_output_dir", *option)
    one_error_line(r, expected)
    assert untouched(out)


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        import socket

        lock = {"pid": owner.pid, "host": socket.gethostname(), "started": "now"}
        (out / ".nlp_transfer.lock").write_text(json.dumps(lock))
        r = recipe("classify", *base_args("classify", tmp_path), "--output_dir", str(out))
        line = one_error_line(r, "is in use by another run")
        assert f"pid {owner.pid}" in line
        assert json.loads((out / ".nlp_transfer.lock").read_text())["pid"] == owner.pid  # the owner's lock stays
    finally:
        owner.kill()
        owner.wait()


def test_a_stale_lock_is_taken_over_and_released(tmp_path, caplog):
    from nlp_transfer.artifacts import folder

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (out / folder.LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    folder.claim_output_dir(str(out))
    assert json.loads((out / folder.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "no longer running" in caplog.text
    folder.claim_output_dir(str(out))  # this process again (an earlier run in it failed): still ours
    folder.release_output_dir(str(out))
    assert not (out / folder.LOCK_NAME).exists() and out.is_dir()  # the folder was there before: it stays


# ---------------------------------------------------------------------- output paths that cannot work, up front
@pytest.mark.parametrize("name", RECIPES)
def test_output_dir_that_cannot_be_written_fails_before_anything_loads(name, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = recipe(name, *base_args(name, tmp_path), "--output_dir", str(blocker / "out"))
    one_error_line(r, "cannot create --output_dir")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(
    "output_dir, expected",
    [("", "--output_dir is empty"), ("/proc/nlp-transfer-test/out", "cannot create --output_dir")],
)
def test_empty_or_uncreatable_output_dir(output_dir, expected, tmp_path):
    one_error_line(recipe("classify", *base_args("classify", tmp_path), "--output_dir", output_dir), expected)


def test_overwriting_the_model_being_fine_tuned_is_refused(tiny_bert, sentiment_files, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    before = sorted(p.name for p in model.iterdir())
    train, _ = sentiment_files
    r = recipe(
        "classify", "--model_name_or_path", str(model), "--train_file", train, "--output_dir", str(model),
        "--overwrite_output_dir",
    )  # fmt: skip
    one_error_line(r, "is the --model_name_or_path this run reads")
    assert sorted(p.name for p in model.iterdir()) == before


# ------------------------------------------------------------------------------ silent garbage, refused instead
def test_model_folder_without_tokenizer_files_is_refused(tiny_bert, sentiment_files, tmp_path):
    model = tmp_path / "no-tokenizer"
    model.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(Path(tiny_bert) / f, model / f)
    train, _ = sentiment_files
    r = recipe(
        "classify", "--model_name_or_path", str(model), "--train_file", train, "--output_dir", str(tmp_path / "o")
    )
    one_error_line(r, "holds no tokenizer files")
    assert not (tmp_path / "o").exists()  # a refused run leaves no folder behind


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_broken_weights_file_is_one_line(damage, tiny_bert, sentiment_files, tmp_path):
    model = tmp_path / "broken"
    shutil.copytree(tiny_bert, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100] if damage == "truncated" else b"")
    train, _ = sentiment_files
    r = recipe(
        "classify", "--model_name_or_path", str(model), "--train_file", train, "--output_dir", str(tmp_path / "o")
    )
    one_error_line(r, "could not load the model in")


def test_a_class_with_one_example_is_not_left_out_of_training(tiny_bert, tmp_path):
    from nlp_transfer.data import load_raw_datasets, prepare_classification

    rows = [{"text": f"good movie {i}", "label": "pos"} for i in range(10)]
    rows += [{"text": f"bad movie {i}", "label": "neg"} for i in range(10)] + [{"text": "meh", "label": "mixed"}]
    train = write_rows(str(tmp_path / "train.csv"), rows)
    # seed 1 holds the single 'mixed' row out (checked): refused, nothing trained
    r = recipe(
        "classify", "--model_name_or_path", tiny_bert, "--train_file", train, "--validation_split", "0.3",
        "--seed", "1", "--output_dir", str(tmp_path / "o"),
    )  # fmt: skip
    one_error_line(r, "class(es) mixed have no training rows left after holding out")
    assert not (tmp_path / "o").exists()
    # seed 0 keeps it in train: then the class trains and the run goes on
    dd, labels = prepare_classification(load_raw_datasets(train_file=train), validation_split=0.3, seed=0)
    assert labels.names.index("mixed") in set(dd["train"]["label"])


def test_labels_with_spaces_are_one_class(tmp_path):
    from nlp_transfer.data import load_raw_datasets, prepare_classification

    rows = [{"text": f"t{i}", "label": ["pos", "pos ", " neg", "neg"][i % 4]} for i in range(40)]
    _, labels = prepare_classification(load_raw_datasets(train_file=write_rows(str(tmp_path / "t.csv"), rows)))
    assert labels.names == ["neg", "pos"]


def test_a_single_class_left_says_what_to_change(tmp_path):
    from nlp_transfer.data import load_raw_datasets, prepare_classification
    from nlp_transfer.errors import NLPTransferError

    raw = load_raw_datasets(train_file=write_rows(str(tmp_path / "t.csv"), [{"text": "a", "label": "x"}] * 3))
    with pytest.raises(NLPTransferError) as e:
        prepare_classification(raw)
    assert "--max_train_samples" not in str(e.value)  # never passed: not the fix


# ------------------------------------------------------------------------------------------ tracebacks, no more
def test_text_pair_column_equal_to_text_column(tmp_path):
    r = recipe("classify", "--train_file", str(tmp_path / "t.csv"), "--text_pair_column", "text")
    one_error_line(r, "--text_pair_column and --text_column are both 'text'")


# -------------------------------------------------------------------------------- messages that say the cause
@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("semi.csv", "text;label\nhello there;pos\nnot good;neg\n", "looks ';'-separated"),
        ("bad.csv", 'text,label\nhello,pos\n"a,b",neg,extra\n', "Expected 2 fields in line 3, saw 3"),
        ("bad.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label"\n', "in row 1"),
    ],
)
def test_malformed_files_name_the_real_cause(name, content, expected, tmp_path, tiny_bert):
    path = tmp_path / name
    path.write_text(content)
    r = recipe(
        "classify", "--model_name_or_path", tiny_bert, "--train_file", str(path), "--output_dir", str(tmp_path / "o")
    )
    one_error_line(r, expected)


# ------------------------------------------------------------------------------------------------ distillation
def test_an_unfinished_run_is_no_teacher(tiny_bert, sentiment_files, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_bert, teacher)
    (teacher / "run_config.yaml").write_text("strategy: full\n")  # a run's folder, but no metrics.json
    train, _ = sentiment_files
    r = recipe(
        "distill", "--teacher_name_or_path", str(teacher), "--train_file", train, "--output_dir", str(tmp_path / "o")
    )
    one_error_line(r, "is an unfinished nlp_transfer run")


def test_a_qa_teacher_with_classification_data_says_so(sentiment_files, tmp_path):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    base = make_tiny_qa_bert(str(tmp_path / "qa-base"))
    teacher = str(tmp_path / "qa-teacher")  # a QA model (span head), as any *ForQuestionAnswering checkpoint
    AutoModelForQuestionAnswering.from_pretrained(base).save_pretrained(teacher)
    AutoTokenizer.from_pretrained(base).save_pretrained(teacher)
    train, _ = sentiment_files
    r = recipe(
        "distill",
        "--teacher_name_or_path",
        teacher,
        "--train_file",
        train,
        "--output_dir",
        str(tmp_path / "o"),
        "--max_seq_length",
        "64",
        "--doc_stride",
        "16",
    )
    one_error_line(r, "is a question-answering model, so distill reads SQuAD-format data")


def test_qa_data_file_rows(tmp_path):  # the QA recipe's nested json with a wrong shape is one line too
    path = tmp_path / "train.json"
    path.write_text(json.dumps(squad_nested(qa_rows(4))).replace('"context"', '"ctx"'))
    one_error_line(recipe("qa", "--train_file", str(path), "--output_dir", str(tmp_path / "o")), "context")
