"""Mixed precision on every recipe, the shipped accelerate configs, checkpoint completeness, empty adapters."""

import glob
import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from helpers import make_tiny_qa_bert, qa_rows, write_rows
from safetensors.torch import load_file, save_file

from nlp_transfer.artifacts.folder import check_output_dir
from nlp_transfer.artifacts.saving import check_adapter_file
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.interrupt import last_complete_checkpoint

REPO = Path(__file__).resolve().parents[2]
FAST = ["--num_train_epochs", "1", "--max_seq_length", "32", "--per_device_train_batch_size", "8",
        "--save_strategy", "no", "--logging_steps", "2"]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_bf16_on_cpu_every_recipe_and_lora_adapters_stay_fp32(tiny_bert, sentiment_files, tmp_path):
    from nlp_transfer.recipes import classify, distill, qa, sentiment

    train, dev = sentiment_files
    data = ["--train_file", train, "--validation_file", dev]
    out = tmp_path / "clf"
    classify.main(["--model_name_or_path", tiny_bert, *data, "--output_dir", str(out), "--strategy", "lora",
                   "--bf16", "--learning_rate", "1e-2", *FAST])  # fmt: skip
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert {t.dtype for t in adapter.values()} == {torch.float32}  # adapters and head kept in fp32
    assert max(float(t.abs().max()) for k, t in adapter.items() if "lora_B" in k) > 0  # and they trained
    run_config = yaml.safe_load((out / "run_config.yaml").read_text())
    assert run_config["bf16"] is True and not run_config.get("use_cpu")  # CPU not pinned for reruns elsewhere

    sentiment.main(["--model_name_or_path", tiny_bert, *data, "--output_dir", str(tmp_path / "sent"), "--bf16",
                    *FAST])  # fmt: skip
    distill.main(["--teacher_name_or_path", str(out), *data, "--output_dir", str(tmp_path / "dist"), "--bf16",
                  "--measure_speed", "false", *FAST])  # fmt: skip
    qa_base = make_tiny_qa_bert(str(tmp_path / "qa-base"))
    qa_train = write_rows(str(tmp_path / "qa.jsonl"), qa_rows(32, seed=1, n_articles=4))
    qa.main(["--model_name_or_path", qa_base, "--train_file", qa_train, "--output_dir", str(tmp_path / "qa"),
             "--bf16", "--doc_stride", "8", "--eval_strategy", "no", *FAST])  # fmt: skip
    for name in ("sent", "dist", "qa"):
        assert json.loads((tmp_path / name / "metrics.json").read_text())  # finished, round trip passed


def test_shipped_accelerate_configs_parse_and_say_how_to_launch():
    from accelerate.commands.config.config_args import load_config_from_file

    files = sorted(glob.glob(str(REPO / "recipes" / "accelerate" / "*.yaml")))
    names = {os.path.basename(f) for f in files}
    assert {
        "multi_gpu_ddp.yaml",
        "multi_node.yaml",
        "deepspeed_zero2.yaml",
        "deepspeed_zero3.yaml",
        "fsdp.yaml",
    } <= names
    for f in files:
        cfg = load_config_from_file(f)
        assert cfg.num_processes >= 2
        header = Path(f).read_text().split("compute_environment")[0]
        assert "accelerate launch --config_file recipes/accelerate/" + os.path.basename(f) in header
        assert "-m nlp_transfer.recipes." in header
        for ref in (p for p in header.split() if p.startswith("recipes/") and p.endswith(".yaml")):
            assert (REPO / ref).is_file(), ref
    zero3 = load_config_from_file(str(REPO / "recipes" / "accelerate" / "deepspeed_zero3.yaml"))
    assert zero3.deepspeed_config["zero_stage"] == 3 and zero3.deepspeed_config["zero3_save_16bit_model"] is True


def test_resume_skips_a_checkpoint_cut_short_while_saving(tmp_path):
    for step, complete in ((10, True), (20, True), (30, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-40").mkdir()
    (tmp_path / "checkpoint-40" / "trainer_state.json").write_text('{"global_st')  # truncated by a kill
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-20")
    assert check_output_dir(str(tmp_path), resume_from_checkpoint="true") == str(tmp_path / "checkpoint-20")
    assert last_complete_checkpoint(str(tmp_path / "nothing")) is None


def test_an_empty_adapter_is_refused(tmp_path):
    save_file({"base_model.model.x.lora_A.weight": torch.zeros(0)}, str(tmp_path / "adapter_model.safetensors"))
    with pytest.raises(NLPTransferError, match="adapter .* is empty"):
        check_adapter_file(str(tmp_path))
    save_file({"base_model.model.x.lora_A.weight": torch.ones(2, 4)}, str(tmp_path / "adapter_model.safetensors"))
    check_adapter_file(str(tmp_path))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 mixed precision needs a CUDA GPU")
def test_fp16_lora_on_gpu_keeps_adapters_fp32_and_round_trips(tiny_bert, sentiment_files, tmp_path):
    from nlp_transfer.recipes import classify

    train, dev = sentiment_files
    out = tmp_path / "fp16"
    args = ["--model_name_or_path", tiny_bert, "--train_file", train, "--validation_file", dev, "--output_dir"]
    m = classify.main(args + [str(out), "--strategy", "lora", "--fp16", "--learning_rate", "1e-2", *FAST])
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert {t.dtype for t in adapter.values()} == {torch.float32}
    assert max(float(t.abs().max()) for k, t in adapter.items() if "lora_B" in k) > 0
    assert m["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4


@pytest.mark.parametrize("fast", [True, False])
def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch, caplog, tmp_path, fast):
    from transformers import TrainingArguments

    from nlp_transfer import config

    monkeypatch.setattr(config, "_has_accelerator", lambda: False)
    monkeypatch.setattr(config, "_cpu_has_fast_bf16", lambda: fast)
    with caplog.at_level("WARNING", logger="nlp_transfer.config"):
        (args,), _ = config.parse_args((TrainingArguments,), ["--output_dir", str(tmp_path), "--bf16", "true"])
    assert args.bf16 and args.use_cpu
    assert ("drop --bf16" in caplog.text) is (not fast)


@pytest.mark.parametrize("fast", [True, False])
def test_precision_auto_follows_what_the_cpu_reports(monkeypatch, tmp_path, fast):
    """--precision auto: bf16 autocast on a CPU whose oneDNN reports native bf16, fp32 on one without; the choice is
    not pinned in run_config (bf16/fp16 are left out of it), so a rerun on another machine decides again."""
    from nlp_transfer import config

    monkeypatch.setattr(config, "_has_accelerator", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(config, "_cpu_has_fast_bf16", lambda unknown=True: fast)
    (args,), _ = config.parse_args(
        (config.TransferTrainingArguments,), ["--output_dir", str(tmp_path), "--precision", "auto"]
    )
    assert args.bf16 is fast and not args.fp16
    assert ("native bf16" in args.precision_reason) and (("no native" in args.precision_reason) is not fast)
    assert args.use_cpu is fast  # bf16 without a GPU: CPU autocast
    recorded = config.to_serialisable(args)
    assert recorded["precision"] == "auto" and "bf16" not in recorded and "fp16" not in recorded


def test_precision_auto_on_gpus(monkeypatch):
    from nlp_transfer import config

    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "get_device_name", lambda i=0: "Test GPU")
    for bf16, want in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(cuda, "is_bf16_supported", lambda bf16=bf16: bf16)
        choice, reason = config.resolve_precision("auto")
        assert choice == want and "Test GPU" in reason


def test_precision_contradicting_bf16_flag_is_one_line(tmp_path):
    from nlp_transfer import config
    from nlp_transfer.errors import NLPTransferError

    with pytest.raises(NLPTransferError, match="--precision fp32 .* contradicts --bf16"):
        config.parse_args(
            (config.TransferTrainingArguments,),
            ["--output_dir", str(tmp_path), "--precision", "fp32", "--bf16", "true"],
        )
    (args,), _ = config.parse_args(
        (config.TransferTrainingArguments,), ["--output_dir", str(tmp_path), "--precision", "fp32"]
    )
    assert not args.bf16 and not args.fp16
