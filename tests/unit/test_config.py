import re
from pathlib import Path

import pytest

from nlp_transfer import strategies
from nlp_transfer.config import (
    DataArguments,
    DistillArguments,
    ModelArguments,
    QADataArguments,
    TransferTrainingArguments,
    parse_args,
    peek_option,
)
from nlp_transfer.errors import NLPTransferError

TYPES = (ModelArguments, DataArguments, TransferTrainingArguments)
REPO = Path(__file__).resolve().parents[2]


def parse(argv, defaults=None):
    return parse_args(TYPES, argv, defaults=defaults)


def test_precedence_defaults_then_yaml_then_cli(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rate: 3e-5\nstrategy: lora\nnum_train_epochs: 4\nlora_target_modules: [query]\n")
    (m, d, t), explicit = parse(
        ["--config", str(cfg), "--num_train_epochs", "7", "--output_dir", str(tmp_path / "o")],
        defaults={"num_train_epochs": 2, "per_device_train_batch_size": 5, "learning_rate": 1.0},
    )
    assert t.learning_rate == pytest.approx(3e-5)  # YAML beats the recipe default, and "3e-5" became a float
    assert t.num_train_epochs == 7  # CLI beats YAML
    assert t.per_device_train_batch_size == 5  # recipe default beats the dataclass default
    assert m.strategy == "lora" and m.lora_target_modules == ["query"]
    assert d.text_column == "text"  # dataclass default
    assert {"learning_rate", "strategy", "num_train_epochs", "output_dir"} <= explicit
    assert "per_device_train_batch_size" not in explicit


def test_unknown_yaml_key_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rte: 1e-4\n")
    with pytest.raises(NLPTransferError, match=r"learning_rte.*did you mean 'learning_rate'"):
        parse(["--config", str(cfg)])


def test_unknown_cli_flag_is_named():
    with pytest.raises(NLPTransferError, match=r"--lerning_rate"):
        parse(["--lerning_rate", "1e-4"])


def test_bad_choice_is_one_line_error():
    with pytest.raises(NLPTransferError, match="strategy"):
        parse(["--strategy", "magic"])


def test_config_file_errors(tmp_path):
    with pytest.raises(NLPTransferError, match="config file not found"):
        parse(["--config", str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(NLPTransferError, match="not valid YAML"):
        parse(["--config", str(bad)])
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(NLPTransferError, match="mapping"):
        parse(["--config", str(lst)])


@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "classify").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_classify_config_parses(path, tmp_path):
    (m, d, t), explicit = parse(["--config", str(path), "--output_dir", str(tmp_path)])
    assert m.model_name_or_path and t.learning_rate > 0
    assert explicit  # a shipped config sets something


def test_shipped_configs_exist():
    assert len(list((REPO / "recipes" / "classify").glob("*.yaml"))) >= 3


@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "sentiment").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sentiment_config_parses(path, tmp_path):
    from nlp_transfer.recipes import sentiment

    (m, h, d, s, da, t), explicit = parse_args(  # the sentiment recipe's own argument types
        sentiment.ARG_TYPES, ["--config", str(path), "--output_dir", str(tmp_path)]
    )
    assert m.model_name_or_path and t.learning_rate > 0 and s.long_text
    assert (da.domain_adaptation == "none") == (da.target_file is None)
    assert d.train_file or d.dataset_name  # shipped sentiment configs name their data


def test_abbreviated_options_are_not_guessed(tmp_path):
    with pytest.raises(NLPTransferError, match="unknown argument"):
        parse(["--max_seq_len", "64", "--output_dir", str(tmp_path)])


@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "distill").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_distill_config_parses(path, tmp_path):
    (k, d, t), explicit = parse_args(
        (DistillArguments, DataArguments, TransferTrainingArguments),
        ["--config", str(path), "--output_dir", str(tmp_path)],
    )
    assert k.teacher_name_or_path and 0 <= k.alpha <= 1 and k.temperature > 0 and "teacher_name_or_path" in explicit


QA_TYPES = (ModelArguments, QADataArguments, TransferTrainingArguments)
DISTILL_TYPES = (DistillArguments, DataArguments, TransferTrainingArguments)
TEACHER = ["--teacher_name_or_path", "teacher/"]


OUT_OF_RANGE = [
    (TYPES, ["--lora_r", "0"], "--lora_r must be at least 1, got 0"),
    (TYPES, ["--lora_alpha", "0"], "--lora_alpha must be at least 1"),
    (TYPES, ["--lora_dropout", "1.5"], "--lora_dropout must be between 0 and 1, got 1.5"),
    (TYPES, ["--num_frozen_layers", "-1"], "--num_frozen_layers must be at least 0"),
    (TYPES, ["--max_seq_length", "1"], "--max_seq_length must be at least 2, got 1"),
    (TYPES, ["--validation_split", "1.0"], "--validation_split must be between 0 and 1, got 1.0"),
    (TYPES, ["--test_split", "-0.1"], "--test_split must be between 0 and 1"),
    (TYPES, ["--max_train_samples", "0"], "--max_train_samples must be at least 1, got 0"),
    (QA_TYPES, ["--doc_stride", "-1"], "--doc_stride must be at least 0, got -1"),
    (QA_TYPES, ["--n_best_size", "0"], "--n_best_size must be at least 1, got 0"),
    (QA_TYPES, ["--max_seq_length", "4"], "--max_seq_length must be at least 8"),
    (QA_TYPES, ["--max_answer_length", "0"], "--max_answer_length must be at least 1"),
    (DISTILL_TYPES, [], "no teacher: pass --teacher_name_or_path"),
    (DISTILL_TYPES, [*TEACHER, "--temperature", "0"], "--temperature must be > 0, got 0"),
    (DISTILL_TYPES, [*TEACHER, "--alpha", "2"], "--alpha must be between 0 and 1, got 2"),
    (DISTILL_TYPES, [*TEACHER, "--hidden_weight", "-1"], "--hidden_weight and --attention_weight must be >= 0"),
    (DISTILL_TYPES, [*TEACHER, "--lora_dropout", "-0.5"], "--lora_dropout must be between 0 and 1"),  # student
]


@pytest.mark.parametrize(
    "types, argv, message",
    OUT_OF_RANGE,
    ids=[" ".join(a[-2:]) or "no teacher" for _, a, _ in OUT_OF_RANGE],
)
def test_out_of_range_values_are_refused_naming_the_option(types, argv, message, tmp_path):
    with pytest.raises(NLPTransferError, match=re.escape(message)):
        parse_args(types, [*argv, "--output_dir", str(tmp_path)])


def test_out_of_range_values_in_a_config_file_are_refused_too(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lora_dropout: 1.0\n")
    with pytest.raises(NLPTransferError, match="--lora_dropout must be between 0 and 1"):
        parse(["--config", str(cfg), "--output_dir", str(tmp_path)])


def test_peek_option_reads_the_command_line_then_the_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("teacher_name_or_path: from-yaml\nlearning_rate: 1e-4\n")
    assert peek_option(["--teacher_name_or_path", "from-cli", "--lr", "x"], "teacher_name_or_path") == "from-cli"
    assert peek_option(["--config", str(cfg)], "teacher_name_or_path") == "from-yaml"
    assert peek_option(["--config", str(cfg), "--teacher_name_or_path=cli"], "teacher_name_or_path") == "cli"
    assert peek_option(["--output_dir", "o"], "teacher_name_or_path") is None


def test_strategy_choices_are_the_registered_strategies(tmp_path):
    from nlp_transfer.config import _Parser

    action = next(a for a in _Parser((ModelArguments,))._actions if a.dest == "strategy")
    assert action.choices == list(strategies.STRATEGIES)
    for name in strategies.STRATEGIES:
        assert parse(["--strategy", name, "--output_dir", str(tmp_path)])[0][0].strategy == name
