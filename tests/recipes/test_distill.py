"""End-to-end runs of the distill recipe on tiny models: teachers made by the classify recipe (full and LoRA),
students cut from them or pretrained (other width, other tokenizer), cache reuse, artifacts and user errors; and
its QA branch (distill_qa) on a tiny QA teacher."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_tiny_bert, sentiment_rows, write_rows
from safetensors.torch import load_file

from nlp_transfer import distillation, tasks
from nlp_transfer.cli import run_main
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.recipes import classify
from nlp_transfer.recipes.distill import main

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["good great movie", "awful bad plot", "the film was dull", "lovely acting and story"]
FAST = [
    "--per_device_train_batch_size",
    "8",
    "--max_seq_length",
    "16",
    "--logging_steps",
    "2",
    "--save_strategy",
    "no",
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models gain nothing from intra-op threads, and lose a lot when another process shares the 2 cores
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def bert4(tmp_path_factory):
    return make_tiny_bert(str(tmp_path_factory.mktemp("bert4")), num_layers=4)


def _teacher(base, files, out, *extra):
    train, dev = files
    classify.main(
        ["--model_name_or_path", base, "--train_file", train, "--validation_file", dev, "--output_dir", str(out)]
        + ["--num_train_epochs", "8", "--learning_rate", "5e-3", *FAST, *extra]
    )
    return str(out)


@pytest.fixture(scope="module")
def teacher(bert4, sentiment_files, tmp_path_factory):
    return _teacher(bert4, sentiment_files, tmp_path_factory.mktemp("teacher") / "t")


@pytest.fixture(scope="module")
def lora_teacher(bert4, sentiment_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora-teacher") / "t"
    return _teacher(bert4, sentiment_files, out, "--strategy", "lora", "--learning_rate", "2e-2")


def distill(teacher, files, out, *extra):
    train, dev = files
    return main(
        ["--teacher_name_or_path", teacher, "--train_file", train, "--validation_file", dev, "--output_dir", str(out)]
        + ["--num_train_epochs", "4", "--learning_rate", "5e-3", *FAST, *extra]
    )


def pipe_logits(folder, texts=TEXTS):
    from transformers import pipeline

    res = pipeline("text-classification", model=str(folder), device="cpu")(
        texts, top_k=None, function_to_apply="none", truncation=True
    )
    names = sorted({r["label"] for r in res[0]})
    return names, np.array([[{r["label"]: r["score"] for r in row}[n] for n in names] for row in res])


def test_cut_student_end_to_end_with_cache_reuse(teacher, sentiment_files, tmp_path, monkeypatch):
    out = tmp_path / "student"
    m = distill(teacher, sentiment_files, out)
    files = set(os.listdir(out))
    assert {"model.safetensors", "config.json", "compression_report.json", "README.md", "metrics.json"} <= files
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 2 and cfg["id2label"] == {"0": "negative", "1": "positive"}
    # the student starts from teacher layers 0 and 2 (default: every other layer) and then trains
    s, t = load_file(str(out / "model.safetensors")), load_file(os.path.join(teacher, "model.safetensors"))
    assert s["bert.encoder.layer.1.output.dense.weight"].shape == t["bert.encoder.layer.2.output.dense.weight"].shape
    assert not torch.equal(
        s["bert.encoder.layer.1.output.dense.weight"], t["bert.encoder.layer.2.output.dense.weight"]
    )
    assert m["eval_accuracy"] >= 0.75 and m["teacher_eval_accuracy"] >= 0.75
    # plain pipeline() gives the student's own predictions with label names
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    names, got = pipe_logits(out)
    assert names == ["negative", "positive"]
    model, tok = AutoModelForSequenceClassification.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        want = np.stack([model(**tok(x, return_tensors="pt")).logits[0].numpy() for x in TEXTS])
    np.testing.assert_allclose(got, want, atol=1e-5)
    # compression report: both sides measured, ratios consistent
    rep = json.loads((out / "compression_report.json").read_text())
    assert rep["teacher"]["layers"] == 4 and rep["student"]["layers"] == 2
    assert rep["student"]["parameters"] < rep["teacher"]["parameters"]
    assert rep["distillation"]["student_layers"] == [0, 2] and rep["distillation"]["temperature"] == 2.0
    for side in ("teacher", "student"):
        assert rep[side]["latency_ms_batch1"] > 0 and rep[side]["throughput_samples_per_s_batch32"] > 0
    assert rep["ratios"]["metric_kept"] == pytest.approx(m["eval_accuracy"] / m["teacher_eval_accuracy"], abs=1e-4)
    card = (out / "README.md").read_text()
    assert "## Distillation" in card and "| CPU latency, batch 1 (ms) |" in card and "- distillation" in card

    # a second student on the same teacher and data reads the teacher's logits from the cache
    def boom(*a, **k):
        raise AssertionError("teacher logits recomputed instead of read from the cache")

    monkeypatch.setattr(distillation, "teacher_logits", boom)
    m2 = distill(teacher, sentiment_files, tmp_path / "student2", "--student_layers", "3", "--measure_speed", "false")
    assert m2["teacher_eval_accuracy"] == m["teacher_eval_accuracy"]
    assert json.loads((tmp_path / "student2" / "config.json").read_text())["num_hidden_layers"] == 1


def test_kd_student_follows_the_teacher(teacher, sentiment_files, tmp_path):
    """alpha=1 uses no gold label, and the student starts from random weights (not from teacher layers): it can only
    have learned the task from the teacher's soft labels."""
    fresh = make_tiny_bert(str(tmp_path / "fresh"), num_layers=2, seed=5)
    m = distill(
        teacher,
        sentiment_files,
        tmp_path / "s",
        "--student_name_or_path",
        fresh,
        "--alpha",
        "1.0",
        "--num_train_epochs",
        "12",
        "--measure_speed",
        "false",
    )
    assert m["eval_accuracy"] >= 0.75


def test_lora_teacher_and_lora_student(lora_teacher, sentiment_files, tmp_path):
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    # the merged teacher the recipe loads gives the same logits as the adapter loaded the PEFT way
    merged, info = distillation.load_teacher(lora_teacher)
    assert info["kind"] == "lora"
    cfg = AutoConfig.from_pretrained(lora_teacher)
    base = AutoModelForSequenceClassification.from_pretrained(lora_teacher, config=cfg)
    tok = AutoTokenizer.from_pretrained(lora_teacher)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        a = merged(**enc).logits
        b = base.eval()(**enc).logits  # transformers applies the embedded adapter itself
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not isinstance(merged, PeftModel) and not any("lora_" in n for n, _ in merged.named_parameters())
    out = tmp_path / "s"
    m = distill(lora_teacher, sentiment_files, out, "--strategy", "lora", "--learning_rate", "2e-2")
    assert {"adapter_config.json", "adapter_model.safetensors", "model.safetensors"} <= set(os.listdir(out))
    assert m["trainable_params"] < m["total_params"] / 2
    names, _ = pipe_logits(out)
    assert names == ["negative", "positive"]
    assert json.loads((out / "compression_report.json").read_text())["distillation"]["teacher_kind"] == "lora"


def test_lora_student_merged_copy_is_verified(teacher, sentiment_files, tmp_path):
    """--merge_lora: merged/ is checked by pipeline() like the folder itself and recorded (it was written
    unverified)."""
    out = tmp_path / "s"
    m = distill(
        teacher, sentiment_files, out, "--strategy", "lora", "--learning_rate", "2e-2", "--merge_lora", "true",
        "--measure_speed", "false",
    )  # fmt: skip
    assert m["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4
    assert m["roundtrip_pipeline_merged_max_abs_logit_diff"] < 1e-4
    assert (out / "merged" / "roundtrip_check.json").is_file()
    assert not (out / "merged" / "adapter_config.json").exists()
    names, merged = pipe_logits(out / "merged")
    _, adapter = pipe_logits(out)
    assert names == ["negative", "positive"]
    np.testing.assert_allclose(merged, adapter, atol=1e-4)


def test_adapter_only_teacher_needs_its_base(bert4, sentiment_files, tmp_path):
    t = _teacher(bert4, sentiment_files, tmp_path / "lean", "--strategy", "lora", "--save_base_model", "false")
    cfg_path = Path(t) / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "moved-away")
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(NLPTransferError, match="--teacher_base_model"):
        distillation.load_teacher(t)
    model, info = distillation.load_teacher(t, base_model=bert4)
    assert info["kind"] == "lora" and model.config.id2label == {0: "negative", 1: "positive"}


def test_pretrained_student_other_width_hidden_and_attention_losses(teacher, sentiment_files, tmp_path):
    """A narrower pretrained student with the same tokenizer: hidden-state loss through a learned projection and
    attention-map loss, with the teacher run live."""
    small = make_tiny_bert(str(tmp_path / "small"), num_layers=2, hidden=16, seed=3)
    out = tmp_path / "s"
    m = distill(
        teacher,
        sentiment_files,
        out,
        "--student_name_or_path",
        small,
        "--hidden_weight",
        "1.0",
        "--attention_weight",
        "1.0",
        "--measure_speed",
        "false",
        "--num_train_epochs",
        "12",  # a randomly initialised student needs more steps than one cut from the teacher
    )
    rep = json.loads((out / "compression_report.json").read_text())
    assert rep["distillation"]["layer_map"] == [[0, 1], [1, 3]]
    assert rep["student"]["parameters"] < rep["teacher"]["parameters"] and m["eval_accuracy"] >= 0.6
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 16  # projections are not exported
    names, _ = pipe_logits(out)
    assert names == ["negative", "positive"]


def test_projection_gradients_are_cleared_after_each_step(tmp_path):
    """The Trainer zeroes the model's gradients only: the projections' must be cleared after every optimizer step,
    or they sum over the whole run."""
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    student = AutoModelForSequenceClassification.from_pretrained(make_tiny_bert(str(tmp_path / "s"), hidden=16))
    teacher = AutoModelForSequenceClassification.from_pretrained(make_tiny_bert(str(tmp_path / "t")))
    projections = distillation.make_projections(16, 32, 2)
    trainer = distillation.DistillationTrainer(
        model=student, args=TrainingArguments(str(tmp_path / "out"), report_to="none"), teacher=teacher,
        hidden_weight=1.0, projections=projections,
    )  # fmt: skip
    optimizer = trainer.create_optimizer()
    for p in projections.parameters():
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in projections.parameters()]
    optimizer.step()
    assert all(p.grad is None for p in projections.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, projections.parameters()))  # and they did train


def test_search_covers_temperature_and_alpha(teacher, sentiment_files, tmp_path, monkeypatch):
    """--hpo_trials on distill searches T and alpha: each trial's loss runs at its own values, every trial starts
    from the same student and projections (the same setting scores the same), and the folder's report names the
    best values, retrained."""
    pytest.importorskip("optuna")
    from nlp_transfer import search
    from nlp_transfer.distillation import trainer as dt

    monkeypatch.setitem(search.SPACES, "full", {"learning_rate": ("choice", [5e-3]),
                                                "num_train_epochs": ("choice", [3])})  # fmt: skip
    monkeypatch.setattr(dt.DistillationTrainer, "hpo_space", {"temperature": ("choice", [1.0, 6.0]),
                                                              "alpha": ("choice", [0.2, 0.9])})  # fmt: skip
    used, loss = [], dt.distillation_loss

    def recording(*a, temperature, alpha, **k):
        used.append((temperature, alpha))
        return loss(*a, temperature=temperature, alpha=alpha, **k)

    monkeypatch.setattr(dt, "distillation_loss", recording)
    small = make_tiny_bert(str(tmp_path / "small"), num_layers=2, hidden=16, seed=3)  # narrower: projections train
    out = tmp_path / "s"
    m = distill(teacher, sentiment_files, out, "--student_name_or_path", small, "--hidden_weight", "1.0",
                "--measure_speed", "false",
                "--hpo_trials", "4", "--eval_strategy", "epoch", "--metric_for_best_model", "loss")  # fmt: skip
    import csv

    with open(out / "hpo_trials.csv", newline="") as f:
        trials = [t for t in csv.DictReader(f) if t["state"] == "complete"]
    settings = [(float(t["temperature"]), float(t["alpha"])) for t in trials]
    assert set(settings) <= set(used) and len(set(settings)) > 1  # each trial's loss ran at its values
    scores = {}
    for t, key in zip(trials, settings):
        scores.setdefault(key, set()).add(t["eval_loss"])
    assert all(len(v) == 1 for v in scores.values())  # students and projections reset between trials
    best = next(t for t in trials if int(t["trial"]) == m["hpo_best_trial"])
    assert used[-1] == (float(best["temperature"]), float(best["alpha"]))  # the retrained run: the best values
    assert m["eval_loss"] == pytest.approx(float(best["eval_loss"]))
    rep = json.loads((out / "compression_report.json").read_text())["distillation"]
    assert (rep["temperature"], rep["alpha"]) == (float(best["temperature"]), float(best["alpha"]))
    cfg = (out / "run_config.yaml").read_text()
    assert f"temperature: {float(best['temperature'])}" in cfg and f"alpha: {float(best['alpha'])}" in cfg


def test_student_with_another_tokenizer(teacher, sentiment_files, tiny_gpt2, tmp_path):
    out = tmp_path / "gpt2-student"
    m = distill(teacher, sentiment_files, out, "--student_name_or_path", tiny_gpt2, "--measure_speed", "false")
    assert m["eval_accuracy"] >= 0.6
    names, _ = pipe_logits(out)
    assert names == ["negative", "positive"]
    with pytest.raises(NLPTransferError, match="share a tokenizer"):
        distill(teacher, sentiment_files, tmp_path / "x", "--student_name_or_path", tiny_gpt2, "--hidden_weight", "1")


def test_unlabelled_text_and_label_order(teacher, sentiment_files, tmp_path):
    unl = tmp_path / "more.txt"
    unl.write_text("\n".join(r["text"] for r in sentiment_rows(40, seed=9)) + "\n\n")
    # labels given as upper-case names in the other order still map onto the teacher's by name
    files = [
        write_rows(
            str(tmp_path / f"{name}.csv"),
            [{"text": r["text"], "label": r["label"].upper()} for r in sentiment_rows(n, seed=seed)],
        )
        for name, n, seed in (("train", 32, 1), ("dev", 16, 2))
    ]
    out = tmp_path / "s"
    m = distill(teacher, files, out, "--unlabeled_file", str(unl), "--measure_speed", "false")
    assert m["teacher_eval_accuracy"] >= 0.75  # POSITIVE/NEGATIVE were read as the teacher's positive/negative
    rep = json.loads((out / "compression_report.json").read_text())
    assert rep["distillation"]["unlabelled_train_rows"] == 40 and rep["distillation"]["labelled_train_rows"] == 32


def cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "nlp_transfer.recipes.distill", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    "case,expected",
    [
        ("no_teacher", "no teacher"),
        ("temperature", "--temperature must be > 0"),
        ("alpha", "--alpha must be between 0 and 1"),
        ("layers", "the teacher has 4 layers"),
        ("base_model_teacher", "not a sequence classifier"),
        ("unknown_label", "does not know: neutral"),
        ("student_labels", "differ from the teacher's"),
    ],
)
def test_user_errors_are_one_line(case, expected, teacher, bert4, sentiment_files, tmp_path):
    train, dev = sentiment_files
    args = {
        "no_teacher": [],
        "temperature": ["--teacher_name_or_path", teacher, "--temperature", "0"],
        "alpha": ["--teacher_name_or_path", teacher, "--alpha", "1.5"],
        "layers": ["--teacher_name_or_path", teacher, "--student_layers", "0,4"],
        "base_model_teacher": ["--teacher_name_or_path", bert4],
        "unknown_label": ["--teacher_name_or_path", teacher],
        "student_labels": ["--teacher_name_or_path", teacher, "--student_name_or_path", str(tmp_path / "st")],
    }[case]
    if case == "unknown_label":
        train = dev = write_rows(str(tmp_path / "t.csv"), sentiment_rows(12, labels=("negative", "neutral")))
    if case == "student_labels":  # a classifier fine-tuned on other labels
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        m = AutoModelForSequenceClassification.from_pretrained(
            bert4, num_labels=2, id2label={0: "sports", 1: "politics"}, label2id={"sports": 0, "politics": 1}
        )
        m.save_pretrained(tmp_path / "st")
        AutoTokenizer.from_pretrained(bert4).save_pretrained(tmp_path / "st")
    out = tmp_path / "out"
    r = cli(*args, "--train_file", train, "--validation_file", dev, "--output_dir", str(out), *FAST)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("nlp-transfer: error:")]
    assert len(lines) == 1 and expected in lines[0], r.stderr[-2000:]
    assert not out.exists() or not os.listdir(out)


# ------------------------------------------------------------------------------------------ extractive QA
QA_FAST = ["--max_seq_length", "32", "--doc_stride", "8", "--per_device_train_batch_size", "8", "--logging_steps", "4"]
QA_FAST += ["--save_strategy", "no", "--eval_strategy", "no"]


def _train_qa_teacher(base: str, train: str, dev: str, out) -> float:
    """A fine-tuned QA teacher folder (weights, config, tokenizer) trained with a plain Trainer on the qa package's
    windows, as the qa recipe does with these options; returns its dev F1. (The distill tests need a QA checkpoint,
    not the qa recipe's whole folder.)"""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from nlp_transfer import modeling, qa

    tok = modeling.load_tokenizer(base)
    tok.padding_side = tok.init_kwargs["padding_side"] = "right"
    model = qa.load_qa_model(base, pad_token_id=tok.pad_token_id)
    raw = qa.load_qa_datasets(train_file=train, validation_file=dev)
    dd = {s: qa.check_examples(ds, split=s) for s, ds in raw.items()}
    feats = {s: qa.prepare_features(ds, tok, max_seq_length=32, doc_stride=8, split=s) for s, ds in dd.items()}
    drop = {"train": ["example_idx", "offsets"], "validation": ["example_idx", "offsets", "length"]}
    inputs = {s: f.remove_columns(drop[s]) for s, f in feats.items()}
    args = TrainingArguments(
        str(out) + "-run", num_train_epochs=20, learning_rate=5e-3, per_device_train_batch_size=8, weight_decay=0.01,
        warmup_steps=0.1, train_sampling_strategy="group_by_length", save_strategy="no", eval_strategy="no",
        logging_steps=4, report_to="none", seed=42, label_names=["start_positions", "end_positions"],
        include_for_metrics=["inputs"], dataloader_pin_memory=False,
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=args, train_dataset=inputs["train"], data_collator=DataCollatorWithPadding(tok),
        compute_metrics=qa.make_compute_metrics(dd["validation"], feats["validation"], pad_token_id=tok.pad_token_id),
    )  # fmt: skip
    trainer.train()
    f1 = trainer.evaluate(inputs["validation"])["eval_f1"]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return f1


@pytest.fixture(scope="module")
def qa_setup(tmp_path_factory):
    from helpers import make_tiny_qa_bert, qa_rows, squad_nested

    d = tmp_path_factory.mktemp("qa-distill")
    (d / "train.json").write_text(json.dumps(squad_nested(qa_rows(64, seed=1, n_articles=8))))
    dev = write_rows(str(d / "dev.jsonl"), qa_rows(16, seed=2))
    base = make_tiny_qa_bert(str(d / "base"))
    f1 = _train_qa_teacher(base, str(d / "train.json"), dev, d / "teacher")
    return {"teacher": str(d / "teacher"), "train": str(d / "train.json"), "dev": dev, "teacher_f1": f1}


def qa_distill(s, out, *extra):
    return main(
        ["--teacher_name_or_path", s["teacher"], "--train_file", s["train"], "--validation_file", s["dev"]]
        + ["--output_dir", str(out), "--num_train_epochs", "20", "--learning_rate", "5e-3", *QA_FAST, *extra]
    )


def test_qa_teacher_into_cut_student_and_pipeline(qa_setup, tmp_path, monkeypatch):
    out = tmp_path / "qa-student"
    m = qa_distill(qa_setup, out)
    assert m["teacher_eval_f1"] == pytest.approx(qa_setup["teacher_f1"], abs=1e-6)  # teacher scored from its cache
    assert m["eval_f1"] >= 60, m  # a 1-layer student learns the task from the teacher
    assert {"qa_pipeline.py", "predictions.json", "compression_report.json"} <= set(os.listdir(out))
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
    rep = json.loads((out / "compression_report.json").read_text())
    assert rep["distillation"]["task"] == "extractive QA" and rep["main_metric"] == "eval_f1"
    assert rep["student"]["throughput_samples_per_s_batch32"] > 0
    # plain pipeline() with the folder's own QA pipeline answers like the recipe did
    from transformers import pipeline

    preds = json.loads((out / "predictions.json").read_text())
    rows = [json.loads(x) for x in Path(qa_setup["dev"]).read_text().splitlines()][:4]
    pipe = pipeline("question-answering", model=str(out), trust_remote_code=True)
    for r in rows:
        assert pipe(question=r["question"], context=r["context"])["answer"] == preds[r["id"]]

    # second run: teacher spans come from the cache
    def boom(*a, **k):
        raise AssertionError("teacher spans recomputed instead of read from the cache")

    monkeypatch.setattr(distillation, "qa_teacher_windows", boom)
    qa_distill(qa_setup, tmp_path / "again", "--alpha", "1.0", "--measure_speed", "false")


def test_qa_student_with_another_tokenizer(qa_setup, tmp_path):
    from helpers import make_tiny_qa_gpt2

    gpt2 = make_tiny_qa_gpt2(str(tmp_path / "gpt2"))
    out = tmp_path / "s"
    # alpha=1: no gold spans, the student learns only from the teacher's scores mapped through character offsets
    m = qa_distill(qa_setup, out, "--student_name_or_path", gpt2, "--alpha", "1.0", "--measure_speed", "false")
    rep = json.loads((out / "compression_report.json").read_text())
    assert rep["distillation"]["same_tokenizer"] is False and m["eval_f1"] >= 60, m
    assert "qa_pipeline.py" in os.listdir(out)


def test_qa_distillation_without_held_out_split_records_its_round_trip(qa_setup, tmp_path):
    """--validation_split 0 and no validation file: the round trip falls back on a few training questions, answered
    by an evaluation pass (it wrote no record, and the folder's own check then failed)."""
    out = tmp_path / "s"
    m = main(
        ["--teacher_name_or_path", qa_setup["teacher"], "--train_file", qa_setup["train"], "--validation_split", "0"]
        + ["--output_dir", str(out), "--num_train_epochs", "2", "--measure_speed", "false", *QA_FAST]
    )
    assert not any(k.startswith("eval_") for k in m) and "predictions.json" not in os.listdir(out)
    assert m["roundtrip_pipeline_max_abs_score_diff"] < 1e-4
    checks = tasks.verify_recorded(str(out))
    assert checks["pipeline"]["examples"] == 8
    rec = json.loads((out / "roundtrip_check.json").read_text())
    assert {e["id"] for e in rec["examples"]} == set(rec["expected"])
    assert all(e["id"].startswith("q1-") for e in rec["examples"])  # training questions (train.json is seed 1)


def test_qa_lora_student_card_names_its_lora_targets(qa_setup, tmp_path):
    out = tmp_path / "s"
    qa_distill(qa_setup, out, "--strategy", "lora", "--num_train_epochs", "2", "--measure_speed", "false")
    card = (out / "README.md").read_text()
    assert "PEFT default" not in card
    assert "- LoRA: r=8, alpha=16, dropout=0.1, targets=['query', 'value']" in card


@pytest.mark.parametrize(
    "flags,expected",
    [
        (["--n_best_size", "0"], "--n_best_size must be at least 1"),
        (["--doc_stride", "30"], "--doc_stride 30 leaves too little room in 32-token windows"),
    ],
)
def test_qa_window_options_are_checked_before_training(flags, expected, qa_setup, tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise AssertionError("reached the teacher pass or training")

    monkeypatch.setattr(distillation, "qa_teacher_windows", boom)
    monkeypatch.setattr(distillation.DistillationTrainer, "train", boom)
    out = tmp_path / "out"
    argv = ["--teacher_name_or_path", qa_setup["teacher"], "--train_file", qa_setup["train"], "--validation_file"]
    argv += [qa_setup["dev"], "--output_dir", str(out), *QA_FAST, *flags]
    assert run_main(main, argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("nlp-transfer: error:")]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err[-2000:]
    assert not out.exists() or not os.listdir(out)
