"""Multi-task recipe and intermediate-task transfer on tiny models: every head trains, the shared encoder learns
from every task, each task's folder reproduces the joint model in pipeline(), sampling follows the configured
proportions, and a fine-tuned classifier starting another task gets a new head."""

import json
import os
import random
import subprocess
import sys

import helpers
import numpy as np
import pytest
import torch
import yaml

from nlp_transfer.errors import NLPTransferError
from nlp_transfer.multitask import TaskBatchSampler, task_probabilities

FAST = ["--report_to", "none", "--logging_steps", "1", "--per_device_train_batch_size", "8"]


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mt-data")
    helpers.write_rows(str(d / "sent.csv"), helpers.sentiment_rows(48, seed=1))
    helpers.write_rows(str(d / "sent_dev.csv"), helpers.sentiment_rows(16, seed=2))
    # a 3-class task on text pairs: the label is whether the two texts agree in sentiment, or one is neutral
    rows, second = [], helpers.sentiment_rows(60, seed=4)
    random.Random(5).shuffle(second)
    for i, (a, b) in enumerate(zip(helpers.sentiment_rows(60, seed=3), second)):
        if i % 3 == 2:
            b = {"text": "the movie was the plot", "label": "neutral"}
        label = "neutral" if b["label"] == "neutral" else ("same" if a["label"] == b["label"] else "other")
        rows.append({"first": a["text"], "second": b["text"], "relation": label})
    helpers.write_rows(str(d / "pairs.csv"), rows)
    tasks = [
        {"name": "sent", "train_file": str(d / "sent.csv"), "validation_file": str(d / "sent_dev.csv")},
        {"name": "pairs", "train_file": str(d / "pairs.csv"), "text_column": "first", "text_pair_column": "second",
         "label_column": "relation", "loss_weight": 2.0},  # no validation file: held out as classify does
    ]  # fmt: skip
    path = d / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": tasks}))
    return str(path), tasks


def run_multitask(tiny_bert, tasks_file, out, *extra):
    from nlp_transfer.recipes.multitask import main

    return main(["--model_name_or_path", tiny_bert, "--tasks", tasks_file, "--output_dir", str(out), *FAST, *extra])


# ------------------------------------------------------------------------------------------------ sampling
def test_proportional_sampling_shows_every_example_once_per_epoch():
    s = TaskBatchSampler([10, 25], 4, sampling="proportional", temperature=2.0, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 3 + 7
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(35))  # task 0 is rows 0-9, task 1 rows 10-34
    assert all(max(b) < 10 or min(b) >= 10 for b in batches)  # one task per batch
    s.set_epoch(1)
    assert list(s) != batches and sorted(i for b in s for i in b) == seen  # a new order, the same rows


@pytest.mark.parametrize("sampling,temperature", [("temperature", 2.0), ("equal", 1.0), ("temperature", 1.0)])
def test_sampled_task_shares_match_the_configured_ones(sampling, temperature):
    sizes = [100, 900]
    expected = task_probabilities(sizes, sampling, temperature)
    if sampling == "temperature" and temperature == 2.0:
        assert np.allclose(expected, [0.25, 0.75])  # sqrt(100) : sqrt(900) = 10 : 30
    s = TaskBatchSampler(sizes, 10, sampling=sampling, temperature=temperature, seed=1)
    counts = np.zeros(2)
    for epoch in range(40):  # 4,000 batches
        s.set_epoch(epoch)
        for b in s:
            counts[int(b[0] >= 100)] += 1
    assert np.allclose(counts / counts.sum(), expected, atol=0.02)


def test_sampling_is_the_same_on_every_process_and_after_a_restart():
    a = TaskBatchSampler([30, 50], 8, sampling="temperature", temperature=3.0, seed=7)
    b = TaskBatchSampler([30, 50], 8, sampling="temperature", temperature=3.0, seed=7)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b)


# ------------------------------------------------------------------------------------------------ the model
def test_each_task_trains_its_head_and_the_shared_encoder(tiny_bert):
    from transformers import AutoTokenizer

    from nlp_transfer.data import LabelInfo
    from nlp_transfer.modeling import load_sequence_classifier
    from nlp_transfer.multitask import TaskData, build_model, encoder_of

    def labels(names):
        return LabelInfo("single_label_classification", names)

    tasks = [TaskData("a", None, labels=labels(["n", "p"])), TaskData("b", None, labels=labels(["x", "y", "z"]))]
    first = load_sequence_classifier(tiny_bert, num_labels=2, id2label={0: "n", 1: "p"}, label2id={"n": 0, "p": 1},
                                     problem_type="single_label_classification", pad_token_id=0)  # fmt: skip
    model = build_model(first, tasks)
    assert encoder_of(model.views["a"]) is encoder_of(model.views["b"])
    assert model.views["b"].classifier.out_features == 3
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    batch = tok(["good movie", "bad plot"], return_tensors="pt", padding=True)
    enc = dict(encoder_of(model.views["a"]).named_parameters())
    for t, name in enumerate(["a", "b"]):
        model.zero_grad()
        out = model(task_id=torch.tensor([t, t]), labels=torch.tensor([0, 1]), **batch)
        out.loss.backward()
        assert enc["encoder.layer.0.attention.self.query.weight"].grad.abs().sum() > 0  # the encoder learns from it
        assert model.views[name].classifier.weight.grad.abs().sum() > 0
        other = model.views["b" if name == "a" else "a"].classifier.weight.grad
        assert other is None or other.abs().sum() == 0
        model.train()
        with torch.no_grad():  # the joint model through task t is that task's own model
            model.eval()
            assert torch.equal(model(task_id=torch.tensor([t, t]), **batch).logits, model.views[name](**batch).logits)


# ------------------------------------------------------------------------------------------------ the recipe
def test_multitask_run_writes_one_pipeline_folder_per_task(tiny_bert, task_files, tmp_path):
    from safetensors.torch import load_file
    from transformers import pipeline

    tasks_file, tasks = task_files
    m = run_multitask(tiny_bert, tasks_file, tmp_path / "out", "--num_train_epochs", "8", "--learning_rate", "5e-3",
                      "--load_best_model_at_end", "--metric_for_best_model", "average")  # fmt: skip
    out = tmp_path / "out"
    assert set(m["tasks"]) == {"sent", "pairs"} and "eval_average" in m
    # the best epoch by the mean of the tasks' main metrics came back (checkpoints store the shared encoder once)
    state = json.loads(next(out.glob("checkpoint-*/trainer_state.json")).read_text())
    assert m["eval_average"] == pytest.approx(state["best_metric"])
    assert max(h["eval_average"] for h in state["log_history"] if "eval_average" in h) == state["best_metric"]
    finished = json.loads((out / "metrics.json").read_text())
    assert finished["tasks"]["pairs"]["eval_accuracy"] == m["tasks"]["pairs"]["eval_accuracy"]
    assert "pairs" in (out / "README.md").read_text()
    weights = {n: load_file(str(out / n / "model.safetensors")) for n in ("sent", "pairs")}
    base = load_file(os.path.join(tiny_bert, "model.safetensors"))
    key = next(k for k in weights["sent"] if k.endswith("encoder.layer.1.output.dense.weight"))
    assert torch.equal(weights["sent"][key], weights["pairs"][key])  # one shared encoder in both folders
    assert not torch.equal(weights["sent"][key], base[key.removeprefix("bert.")])  # and it trained
    assert weights["sent"]["classifier.weight"].shape[0] == 2 and weights["pairs"]["classifier.weight"].shape[0] == 3
    for name, labels in (("sent", {"negative", "positive"}), ("pairs", {"same", "other", "neutral"})):
        folder = out / name
        rec = json.loads((folder / "roundtrip_check.json").read_text())
        clf = pipeline("text-classification", model=str(folder), truncation=True)
        got = clf(rec["inputs"][:4], top_k=None, function_to_apply="none")
        assert {d["label"] for d in got[0]} == labels
        expected = np.array(rec["expected_logits"][:4])
        config = json.loads((folder / "config.json").read_text())
        for row, scores in zip(expected, got):
            by_label = {d["label"]: d["score"] for d in scores}
            assert np.allclose([by_label[config["id2label"][str(i)]] for i in range(len(row))], row, atol=1e-4)
        card = (folder / "README.md").read_text()
        assert "trained jointly with" in card and ({"sent", "pairs"} - {name}).pop() in card
        assert json.loads((folder / "metrics.json").read_text())["eval_accuracy"] == m["tasks"][name]["eval_accuracy"]
    # the pair task learned something beyond its majority class (neutral is a third of the rows)
    assert m["tasks"]["sent"]["eval_accuracy"] > 0.6


def test_multitask_lora_shares_one_adapter_and_resumes(tiny_bert, task_files, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    tasks_file, _ = task_files
    out = tmp_path / "lora"
    args = ["--strategy", "lora", "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3",
            "--save_total_limit", "3", "--eval_strategy", "no"]  # fmt: skip
    m = run_multitask(tiny_bert, tasks_file, out, *args)
    adapters = {n: load_file(str(out / n / "adapter_model.safetensors")) for n in ("sent", "pairs")}
    lora = [k for k in adapters["sent"] if "lora_A" in k]
    assert lora and all(torch.equal(adapters["sent"][k], adapters["pairs"][k]) for k in lora)
    assert m["tasks"]["pairs"]["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4  # the folder carries its base weights
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    reloaded = PeftModel.from_pretrained(base, str(out / "pairs"))  # the PEFT way, as the card shows
    assert reloaded.base_model.model.classifier.modules_to_save["default"].out_features == 3
    # resume from the middle: the shared encoder is stored once in checkpoints, and comes back whole
    import shutil

    shutil.rmtree(out / "checkpoint-6")
    m2 = run_multitask(tiny_bert, tasks_file, out, *args, "--resume_from_checkpoint", "true")
    for name in ("sent", "pairs"):
        assert m2["tasks"][name]["eval_loss"] == pytest.approx(m["tasks"][name]["eval_loss"], abs=1e-6)


@pytest.mark.parametrize(
    "entry,expected",
    [
        ({"name": "sent", "train_file": "X"}, "two tasks are named 'sent'"),
        ({"name": "b", "train_file": "X", "labl_column": "y"}, "'labl_column' (did you mean 'label_column'?)"),
        ({"name": "b", "train_file": "X", "model_name_or_path": "m"}, "model_name_or_path is an option of the whole"),
        ({"name": "b c", "train_file": "X"}, "every task needs a 'name'"),
        ({"name": "b"}, "tasks[1] (b): no data"),
        ({"name": "b", "train_file": "X", "loss_weight": 0}, "loss_weight must be a number > 0"),
        ({"name": "b", "train_file": "X", "max_seq_length": "long"}, "a value has the wrong type"),
    ],
)  # fmt: skip
def test_bad_task_entries_are_named_before_anything_loads(tmp_path, task_files, entry, expected):
    from nlp_transfer.multitask import MultiTaskArguments, read_tasks

    tasks = [task_files[1][0], entry]
    with pytest.raises(NLPTransferError) as e:
        read_tasks(MultiTaskArguments(tasks=tasks))
    assert expected in str(e.value)


def test_an_empty_task_file_is_one_line_naming_the_task(tiny_bert, task_files, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    tasks = [task_files[1][0], {"name": "nothing", "train_file": str(empty)}]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"tasks": tasks, "model_name_or_path": tiny_bert}))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "nlp_transfer.recipes.multitask", "--config", str(cfg), "--output_dir",
                        str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    line = helpers.one_error_line(r, "task nothing:")
    assert "empty" in line
    assert not out.exists() or not [e for e in os.listdir(out) if not e.startswith(".")]  # nothing half-written


@pytest.mark.slow  # ~40 s: builds both built-in datasets and loads MiniLM-L6; `python -m pytest -m slow`
def test_the_smoke_config_runs_on_real_minilm_and_data(tmp_path):
    from nlp_transfer.assets import packaged_model_path

    if packaged_model_path("sentence-transformers/all-MiniLM-L6-v2") is None:
        pytest.skip("the packaged MiniLM-L6 is not installed")
    from pathlib import Path

    from nlp_transfer.recipes.multitask import main

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "smoke"
    m = main(["--config", str(repo / "recipes" / "multitask" / "minilm_topics_sentiment_smoke.yaml"), "--output_dir",
              str(out)])  # fmt: skip
    assert set(m["tasks"]) == {"topics", "sentiment"}
    assert (out / "topics" / "adapter_config.json").is_file() and (out / "sentiment" / "metrics.json").is_file()


# ------------------------------------------------------------------------------------ intermediate transfer
def _classify(model, train, out, *extra):
    from nlp_transfer.recipes.classify import main

    return main(["--model_name_or_path", model, "--train_file", train, "--output_dir", str(out), "--max_steps", "4",
                 "--eval_strategy", "no", *FAST, *extra])  # fmt: skip


def test_intermediate_transfer_replaces_the_head_and_keeps_the_encoder(tiny_bert, task_files, tmp_path, caplog):
    from safetensors.torch import load_file

    from nlp_transfer.modeling import load_sequence_classifier

    sent = task_files[1][0]["train_file"]
    _classify(tiny_bert, sent, tmp_path / "a")
    a = str(tmp_path / "a")
    three = {"x": 0, "y": 1, "z": 2}
    with caplog.at_level("INFO", logger="nlp_transfer"):
        model = load_sequence_classifier(a, num_labels=3, id2label={v: k for k, v in three.items()}, label2id=three,
                                         problem_type="single_label_classification", pad_token_id=0)  # fmt: skip
    assert "intermediate-task transfer keeps its encoder, drops its head" in caplog.text
    saved = load_file(os.path.join(a, "model.safetensors"))
    state = model.state_dict()
    assert torch.equal(state["bert.encoder.layer.0.attention.self.query.weight"],
                       saved["bert.encoder.layer.0.attention.self.query.weight"])  # fmt: skip
    assert state["classifier.weight"].shape == (3, 32) and model.config.id2label[2] == "z"
    same = load_sequence_classifier(a, num_labels=2, id2label={0: "negative", 1: "positive"},
                                    label2id={"negative": 0, "positive": 1},
                                    problem_type="single_label_classification", pad_token_id=0)  # fmt: skip
    assert torch.equal(same.state_dict()["classifier.weight"], saved["classifier.weight"])  # same labels: kept


def test_intermediate_transfer_from_full_and_lora_folders_runs_end_to_end(tiny_bert, task_files, tmp_path):
    pairs = task_files[1][1]
    pair_opts = ["--train_file", pairs["train_file"], "--text_column", "first", "--text_pair_column", "second",
                 "--label_column", "relation"]  # fmt: skip
    from safetensors.torch import load_file

    from nlp_transfer.modeling import starting_checkpoint
    from nlp_transfer.recipes.classify import main

    sent = task_files[1][0]["train_file"]
    _classify(tiny_bert, sent, tmp_path / "lora_a", "--strategy", "lora")
    merged = load_file(os.path.join(starting_checkpoint(str(tmp_path / "lora_a")), "model.safetensors"))
    base = load_file(os.path.join(tiny_bert, "model.safetensors"))
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(merged["bert." + key], base[key])  # the trained adapter is folded into the start

    for start, strategy in ((tmp_path / "lora_a", "full"), (tmp_path / "lora_a", "lora")):
        out = tmp_path / f"b_{strategy}"
        m = main(["--model_name_or_path", str(start), *pair_opts, "--output_dir", str(out), "--max_steps", "4",
                  "--eval_strategy", "no", "--strategy", strategy, *FAST])  # fmt: skip
        config = json.loads((out / "config.json").read_text())
        assert sorted(config["label2id"]) == ["neutral", "other", "same"]
        assert any(k.startswith("roundtrip_") for k in m)
