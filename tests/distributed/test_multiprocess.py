"""Real processes: a 2-rank DDP run (torchrun, gloo on CPU) against a 1-process run with the same global batch, and
runs killed with SIGTERM / SIGKILL, then resumed, against uninterrupted runs with the same seed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import helpers
import pytest
from safetensors.torch import load_file

EVAL_ROWS = 23  # prime: an accuracy over 24 (a duplicated last batch) can't pass for one over 23


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", NLP_TRANSFER_CACHE=str(tmp_path / "cache"))
    return env


def recipe(name, args, tmp_path, nproc=1, wait=True):
    launcher = [sys.executable, "-m", "nlp_transfer.recipes." + name]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
        launcher += ["--master_port", str(_port()), "-m", "nlp_transfer.recipes." + name]
    log = open(tmp_path / f"{name}-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen(launcher + args, stdout=log, stderr=subprocess.STDOUT, env=_env(tmp_path))
    if not wait:
        return proc, log
    proc.wait(timeout=600)
    log.seek(0)
    return proc.returncode, log.read()


def metrics(out):
    return json.loads((Path(out) / "metrics.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return {
        "train": helpers.write_rows(str(d / "train.csv"), helpers.sentiment_rows(64, seed=1)),
        "dev": helpers.write_rows(str(d / "dev.csv"), helpers.sentiment_rows(EVAL_ROWS, seed=2)),
        "big": helpers.write_rows(str(d / "big.csv"), helpers.sentiment_rows(1200, seed=3)),
    }


def common(data, train="train"):
    return ["--train_file", data[train], "--validation_file", data["dev"], "--max_seq_length", "32",
            "--learning_rate", "1e-3", "--logging_steps", "5", "--report_to", "none"]  # fmt: skip


# ------------------------------------------------------------------------------------------------ DDP, 2 ranks
@pytest.fixture(scope="module")
def one_and_two(tiny_bert, data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    args = ["--model_name_or_path", tiny_bert, *common(data), "--num_train_epochs", "2", "--save_strategy", "no"]
    rc1, log1 = recipe("classify", args + ["--per_device_train_batch_size", "8", "--output_dir", str(tmp / "one")],
                       tmp)  # fmt: skip
    rc2, log2 = recipe("classify", args + ["--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
                                           "--output_dir", str(tmp / "two")], tmp, nproc=2)  # fmt: skip
    assert rc1 == 0, log1[-3000:]
    assert rc2 == 0, log2[-3000:]
    return tmp / "one", tmp / "two", log2


def test_two_ranks_give_the_same_artifacts_and_comparable_metrics(one_and_two):
    one, two, log2 = one_and_two
    assert sorted(os.listdir(one)) == sorted(os.listdir(two))
    m1, m2 = metrics(one), metrics(two)
    # same global batch (8 = 2 x 4) and steps; DDP averages gradients, so the runs stay close (not bit-equal)
    assert abs(m1["eval_loss"] - m2["eval_loss"]) < 0.01 and abs(m1["train_loss"] - m2["train_loss"]) < 0.01
    # metrics over exactly the 23 held-out rows: the padded last batch's duplicates are dropped when gathering
    for m in (m1, m2):
        assert abs(m["eval_accuracy"] * EVAL_ROWS - round(m["eval_accuracy"] * EVAL_ROWS)) < 1e-6
    assert abs(m1["eval_accuracy"] - m2["eval_accuracy"]) <= 2 / EVAL_ROWS + 1e-9
    # one writer, one set of logs: rank 1 logs warnings only
    assert log2.count("held-out metrics:") == 1 and log2.count("output written to") == 1
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in log2


def test_two_rank_distillation_computes_the_teacher_once(one_and_two, data, tmp_path):
    teacher = str(one_and_two[0])
    args = ["--teacher_name_or_path", teacher, *common(data), "--num_train_epochs", "2", "--save_strategy", "no",
            "--measure_speed", "false"]  # fmt: skip
    rc1, log1 = recipe("distill", args + ["--per_device_train_batch_size", "8", "--output_dir", str(tmp_path / "d1")],
                       tmp_path)  # fmt: skip
    assert rc1 == 0, log1[-3000:]
    for f in (tmp_path / "cache").rglob("*"):  # a fresh cache, so the 2-rank run has to compute it
        f.unlink() if f.is_file() else None
    rc2, log2 = recipe("distill", args + ["--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
                                          "--output_dir", str(tmp_path / "d2")], tmp_path, nproc=2)  # fmt: skip
    assert rc2 == 0, log2[-3000:]
    assert sorted(os.listdir(tmp_path / "d1")) == sorted(os.listdir(tmp_path / "d2"))
    assert abs(metrics(tmp_path / "d1")["eval_loss"] - metrics(tmp_path / "d2")["eval_loss"]) < 0.01
    assert log2.count("teacher logits (train): 100%") == 1  # rank 0 computed it, rank 1 read the cache
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2  # train + validation, once each


def test_two_rank_lora_with_gradient_checkpointing_trains_the_adapter(tiny_bert, data, tmp_path):
    out = tmp_path / "gc"
    args = ["--model_name_or_path", tiny_bert, *common(data), "--num_train_epochs", "1", "--save_strategy", "no",
            "--strategy", "lora", "--gradient_checkpointing", "--per_device_train_batch_size", "4",
            "--output_dir", str(out)]  # fmt: skip
    rc, log = recipe("classify", args, tmp_path, nproc=2)
    assert rc == 0, log[-3000:]
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert max(float(t.abs().max()) for k, t in adapter.items() if "lora_B" in k) > 0  # gradients reached LoRA


def test_two_rank_dann_shards_target_batches_and_averages_the_discriminator(tiny_bert, data, tmp_path):
    """No dropout, random order: a 2 x 4 run must equal the 1 x 8 run. It would not if each rank drew the same target
    batch (4 texts seen twice, not 8) or if the discriminator (outside DDP) kept its rank's own gradient."""
    import shutil

    import torch

    model = tmp_path / "no-dropout"
    shutil.copytree(tiny_bert, model)
    config = json.loads((model / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(config))
    target = tmp_path / "target.txt"
    target.write_text("\n".join(r["text"] + " the plot and the acting" for r in helpers.sentiment_rows(40, seed=9)))
    args = ["--model_name_or_path", str(model), *common(data), "--max_steps", "6", "--save_strategy", "steps",
            "--save_steps", "6", "--eval_strategy", "no", "--train_sampling_strategy", "random",
            "--domain_adaptation", "dann", "--target_file", str(target)]  # fmt: skip
    rc1, log1 = recipe("classify", args + ["--per_device_train_batch_size", "8", "--output_dir", str(tmp_path / "1")],
                       tmp_path)  # fmt: skip
    assert rc1 == 0, log1[-3000:]
    rc2, log2 = recipe("classify", args + ["--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "2")],
                       tmp_path, nproc=2)  # fmt: skip
    assert rc2 == 0, log2[-3000:]
    one, two = (torch.load(tmp_path / r / "checkpoint-6" / "domain_adaptation.pt") for r in ("1", "2"))
    assert one["target_batches_drawn"] == two["target_batches_drawn"] == 6
    for k, v in one["discriminator"].items():
        torch.testing.assert_close(v, two["discriminator"][k], atol=1e-5, rtol=1e-4)
    w1, w2 = load_file(str(tmp_path / "1" / "model.safetensors")), load_file(str(tmp_path / "2" / "model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------------------- kill, then resume
def interrupted(name, args, out, tmp_path, sig, after_step):
    """Start a run, send ``sig`` once checkpoint-<after_step> is complete, return (exit code, log)."""
    proc, log = recipe(name, args + ["--output_dir", str(out)], tmp_path, wait=False)
    marker = out / f"checkpoint-{after_step}" / "trainer_state.json"
    deadline = time.time() + 300
    while not marker.is_file():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=300)
    log.seek(0)
    return proc.returncode, log.read()


def assert_same_result(ref, resumed):
    assert metrics(resumed)["eval_loss"] == pytest.approx(metrics(ref)["eval_loss"], abs=1e-6)
    name = "adapter_model.safetensors" if (ref / "adapter_model.safetensors").exists() else "model.safetensors"
    a, b = load_file(str(ref / name)), load_file(str(resumed / name))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-5, k


def test_sigterm_saves_a_checkpoint_and_lora_resumes_to_the_same_result(tiny_bert, data, tmp_path):
    args = ["--model_name_or_path", tiny_bert, *common(data, "big"), "--strategy", "lora", "--num_train_epochs", "2",
            "--per_device_train_batch_size", "8", "--save_strategy", "steps", "--save_steps", "25"]  # fmt: skip
    rc, log = recipe("classify", args + ["--output_dir", str(tmp_path / "ref")], tmp_path)
    assert rc == 0, log[-3000:]
    out = tmp_path / "run"
    rc, log = interrupted("classify", args, out, tmp_path, signal.SIGTERM, after_step=50)
    assert rc == 143, log[-3000:]
    last = log.strip().splitlines()[-1]
    assert last.startswith("nlp-transfer: stopped by SIGTERM at step") and "--resume_from_checkpoint true" in last
    step = int(last.split("at step ")[1].split(";")[0])
    assert step > 50 and (out / f"checkpoint-{step}" / "trainer_state.json").is_file()  # saved on the way out
    assert not (out / "metrics.json").exists() and not (out / ".export-in-progress").exists()
    rc, log = recipe("classify", args + ["--output_dir", str(out), "--resume_from_checkpoint", "true"], tmp_path)
    assert rc == 0, log[-3000:]
    assert_same_result(tmp_path / "ref", out)


def test_sigkill_distillation_resumes_from_the_last_complete_checkpoint(one_and_two, data, tmp_path):
    teacher = str(one_and_two[0])
    args = ["--teacher_name_or_path", teacher, *common(data, "big"), "--num_train_epochs", "2",
            "--per_device_train_batch_size", "8", "--save_strategy", "steps", "--save_steps", "25",
            "--measure_speed", "false"]  # fmt: skip
    rc, log = recipe("distill", args + ["--output_dir", str(tmp_path / "ref")], tmp_path)
    assert rc == 0, log[-3000:]
    out = tmp_path / "run"
    rc, log = interrupted("distill", args, out, tmp_path, signal.SIGKILL, after_step=50)
    assert rc == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    # a checkpoint cut short while saving (no trainer_state.json, written last) is skipped on resume
    (out / "checkpoint-9999").mkdir()
    (out / "checkpoint-9999" / "model.safetensors").write_bytes(b"partial")
    rc, log = recipe("distill", args + ["--output_dir", str(out), "--resume_from_checkpoint", "true"], tmp_path)
    assert rc == 0, log[-3000:]
    assert "skipping checkpoint-9999" in log
    assert_same_result(tmp_path / "ref", out)


def test_two_rank_multitask_run_finishes_with_tasks_of_uneven_batches(tiny_bert, data, tmp_path):
    # 64 + 23 rows in batches of 4 end in a short batch each: accelerate's batch sharding used to count a short batch
    # as the end of the data, so the ranks drew different numbers of batches and the run hung
    import yaml

    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(yaml.safe_dump([{"name": "a", "train_file": data["train"], "validation_file": data["dev"]},
                                     {"name": "b", "train_file": data["dev"], "validation_split": 0.2}]))  # fmt: skip
    out = tmp_path / "mt"
    args = ["--model_name_or_path", tiny_bert, "--tasks", str(tasks), "--num_train_epochs", "2", "--save_strategy",
            "no", "--per_device_train_batch_size", "4", "--max_seq_length", "32", "--report_to", "none",
            "--output_dir", str(out)]  # fmt: skip
    rc, log = recipe("multitask", args, tmp_path, nproc=2)
    assert rc == 0, log[-3000:]
    assert metrics(out)["tasks"]["a"]["eval_accuracy"] >= 0 and (out / "b" / "roundtrip_check.json").is_file()
    assert log.count("multitask: 2 task folders") == 1  # rank 0 writes
