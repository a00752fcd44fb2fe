"""Domain adaptation (``--domain_adaptation dann | consistency`` in classify and sentiment) on tiny models: the
gradient-reversal pieces, runs that export plain classifiers, LoRA on a decoder, resume, self-training through the
distill recipe, and the refusals (subprocesses, as a user runs them)."""

import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import NEG, NEUTRAL, POS, one_error_line, write_rows
from safetensors.torch import load_file

from nlp_transfer import domain
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.recipes import classify, distill, sentiment

FAST = ["--per_device_train_batch_size", "8", "--max_seq_length", "16", "--logging_steps", "1"]
FAST += ["--learning_rate", "5e-3", "--eval_strategy", "no", "--max_steps", "6"]
CHECKPOINTS = ["--save_strategy", "steps", "--save_steps", "3", "--save_total_limit", "5"]
N_TARGET = 30


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """Target-domain text: the source vocabulary, but long texts of mostly neutral words (a shift in length and
    word mix)."""
    rng = random.Random(7)
    lines = []
    for i in range(N_TARGET):
        words = [rng.choice(POS if i % 2 else NEG)] + [rng.choice(NEUTRAL) for _ in range(9)]
        rng.shuffle(words)
        lines.append(" ".join(words))
    path = tmp_path_factory.mktemp("target") / "target.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run(recipe, model, files, target_file, out, *extra):
    train, dev = files
    da = ["--target_file", target_file] if target_file else []
    return recipe.main(
        ["--model_name_or_path", model, "--train_file", train, "--validation_file", dev, "--output_dir", str(out)]
        + da + FAST + list(extra)
    )  # fmt: skip


def state(checkpoint):
    return torch.load(os.path.join(checkpoint, domain.DOMAIN_FILE), weights_only=True)


# ---------------------------------------------------------------------------------------------------- pieces
def test_gradient_reversal_negates_and_scales_the_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    g = torch.randn(3, 4)
    y = domain.reverse_gradient(x, 0.3)
    assert torch.equal(y, x)  # identity forward
    y.backward(g)
    torch.testing.assert_close(x.grad, -0.3 * g)


def test_lambda_schedule():
    assert domain.dann_lambda(0.0) == 0.0
    assert domain.dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.9866
    assert domain.dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)  # 0.99991
    assert domain.dann_lambda(2.0) == domain.dann_lambda(1.0)  # progress is clamped to [0, 1]


def test_domain_loss_trains_the_discriminator_and_reverses_the_features_gradient():
    torch.manual_seed(0)
    disc = domain.make_discriminator(8, 16)
    src, tgt = torch.randn(4, 8, requires_grad=True), torch.randn(6, 8, requires_grad=True)
    loss, acc = domain.domain_loss(disc, src, tgt, coeff=0.25)
    loss.backward()
    assert 0.0 <= acc.item() <= 1.0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())
    # the same BCE without the reversal layer: the features' gradient is -coeff times it
    src2, tgt2 = src.detach().clone().requires_grad_(), tgt.detach().clone().requires_grad_()
    logits = disc(torch.cat([src2, tgt2])).squeeze(-1)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([0.0] * 4 + [1.0] * 6)).backward()
    torch.testing.assert_close(src.grad, -0.25 * src2.grad)
    torch.testing.assert_close(tgt.grad, -0.25 * tgt2.grad)


def test_features_are_pooled_as_the_head_reads_them():
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    pooled = torch.randn(2, 3)
    assert torch.equal(domain.pool_head_input(pooled, 2, right), pooled)  # BERT: the pooled vector
    assert torch.equal(domain.pool_head_input(x, 2, right), x[:, 0])  # RoBERTa-style head: first token
    assert torch.equal(domain.pool_head_input(x, 3, right), torch.stack([x[0, 1], x[1, 3]]))  # decoder: last kept
    assert torch.equal(domain.pool_head_input(x, 3, left), x[:, 3])


def test_consistency_term_and_masking():
    a, b = torch.tensor([[2.0, -1.0], [0.5, 0.0]]), torch.tensor([[0.0, 1.0], [0.5, 0.0]], requires_grad=True)
    kl = domain.consistency_loss(a.requires_grad_(), b)
    assert kl.item() > 0 and math.isfinite(kl.item())
    kl.backward()
    assert a.grad is None and b.grad.abs().sum() > 0  # view 1 is the (detached) target
    assert domain.consistency_loss(b, b).item() == pytest.approx(0.0, abs=1e-7)
    batch = {"input_ids": torch.tensor([[2, 7, 8, 9, 3, 0]] * 50)}
    batch["attention_mask"] = torch.tensor([[1] * 5 + [0]] * 50)
    out = domain.mask_tokens(batch, 0.5, mask_id=4, special_ids=[0, 2, 3])
    ids = out["input_ids"]
    assert (ids[:, [0, 4, 5]] == batch["input_ids"][:, [0, 4, 5]]).all()  # specials and padding kept
    assert 0.3 < (ids[:, 1:4] == 4).float().mean() < 0.7


@pytest.mark.parametrize(
    "option, expected",
    [
        ({"adversarial_weight": -1.0}, "--adversarial_weight must be >= 0"),
        ({"consistency_weight": -0.5}, "--consistency_weight must be >= 0"),
        ({"consistency_mask_probability": 1.0}, "--consistency_mask_probability must be between 0 and 1"),
        ({"target_batch_size": 0}, "--target_batch_size must be at least 1"),
        ({"discriminator_hidden": 0}, "--discriminator_hidden must be at least 1"),
        ({"discriminator_learning_rate": 0.0}, "--discriminator_learning_rate must be > 0"),
        ({"domain_adaptation": "mmd"}, "unknown --domain_adaptation 'mmd'"),
    ],
)
def test_domain_options_are_checked_at_parse_time(option, expected, target):
    from nlp_transfer.config import DomainArguments

    with pytest.raises(NLPTransferError, match=expected):
        DomainArguments(**{"domain_adaptation": "dann", "target_file": target, **option})


def test_the_discriminator_learns_at_its_own_rate_under_the_run_schedule(tiny_bert, tmp_path):
    """At the model's fine-tuning rate the discriminator lags the encoder, which then drives it below chance (the
    collapse benchmarks/README.md measured); it gets its own, larger, peak rate, decayed by the same schedule."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    args = TrainingArguments(str(tmp_path), learning_rate=5e-5, report_to=[], use_cpu=True)
    trainer = domain.DomainAdaptationTrainer(
        model=model, args=args, processing_class=AutoTokenizer.from_pretrained(tiny_bert), method="dann",
        target_rows=[{"input_ids": [2, 5, 3]}], target_batch_size=1, discriminator_learning_rate=1e-3,
    )  # fmt: skip
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    mine = {id(p) for p in trainer.discriminator.parameters()}
    group = next(g for g in trainer.optimizer.param_groups if any(id(p) in mine for p in g["params"]))
    others = [g["lr"] for g in trainer.optimizer.param_groups if g is not group]
    assert group["lr"] == pytest.approx(1e-3) and group["weight_decay"] == 0.0
    assert others and all(lr == pytest.approx(5e-5) for lr in others)
    for _ in range(5):  # halfway down the linear decay: both at half their peak
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert group["lr"] == pytest.approx(5e-4) and others[0] * 0.5 == pytest.approx(
        trainer.optimizer.param_groups[0]["lr"]
    )


# ------------------------------------------------------------------------------------------------ recipe runs
@pytest.fixture(scope="module")
def dann_runs(tiny_bert, sentiment_files, target, tmp_path_factory):
    """One dann run with checkpoints at steps 3 and 6, and the same run killed after step 3 and resumed."""
    tmp = tmp_path_factory.mktemp("dann")
    args = ["--domain_adaptation", "dann", "--adversarial_weight", "0.1", *CHECKPOINTS]
    full = tmp / "full"
    metrics = run(classify, tiny_bert, sentiment_files, target, full, *args)
    cut = tmp / "interrupted"
    cut.mkdir()
    shutil.copytree(full / "checkpoint-3", cut / "checkpoint-3")
    run(classify, tiny_bert, sentiment_files, target, cut, *args, "--resume_from_checkpoint", "true")
    return metrics, full, cut


def test_dann_trains_and_exports_a_plain_classifier(dann_runs, target):
    from transformers import pipeline

    metrics, out, _ = dann_runs
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["domain_adaptation"] == metrics["domain_adaptation"] == "dann"
    assert saved["target_texts"] == N_TARGET
    logs = [h for h in json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]]
    logs = [h for h in logs if "domain_accuracy" in h]
    assert len(logs) == 6 and all(0 <= h["domain_accuracy"] <= 1 and h["domain_loss"] > 0 for h in logs)
    lambdas = [h["domain_lambda"] for h in logs]
    assert lambdas[0] == 0.0 and lambdas == sorted(lambdas) and lambdas[-1] > 0.9
    # the discriminator trained (it left its seeded start) and lives in the checkpoints only
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        start = domain.make_discriminator(32, 256).state_dict()
    trained = state(out / "checkpoint-6")["discriminator"]
    assert any(not torch.equal(start[k], trained[k]) for k in start)
    assert not (out / domain.DOMAIN_FILE).exists()
    assert not any("discriminator" in k for k in load_file(out / "model.safetensors"))
    # the folder is a plain classifier: pipeline loads it, the round trip was checked and recorded
    assert saved["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4 and (out / "roundtrip_check.json").is_file()
    assert pipeline("text-classification", model=str(out), device="cpu")("good great movie")[0]["label"] in (
        "negative", "positive",
    )  # fmt: skip
    card = (out / "README.md").read_text()
    assert "dann" in card and f"{N_TARGET} texts of target.txt" in card
    assert os.path.dirname(target) not in card  # the basename, never a private path


def test_resume_restores_the_discriminator(dann_runs):
    _, full, cut = dann_runs
    run_state = json.loads((cut / "checkpoint-6" / "trainer_state.json").read_text())
    assert run_state["global_step"] == 6
    a, b = state(full / "checkpoint-6"), state(cut / "checkpoint-6")
    assert a["target_batches_drawn"] == b["target_batches_drawn"] == 6
    for k in a["discriminator"]:  # a fresh discriminator (or another target order) would end elsewhere
        torch.testing.assert_close(a["discriminator"][k], b["discriminator"][k], atol=1e-5, rtol=1e-4)
    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=1e-4)
    with pytest.raises(NLPTransferError, match="written with --domain_adaptation dann"):
        domain.check_resume(str(cut / "checkpoint-6"), "consistency")
    domain.check_resume(str(cut / "checkpoint-6"), "dann")


def test_lora_dann_on_a_decoder(tiny_gpt2, sentiment_files, target, tmp_path):
    out = tmp_path / "lora"
    metrics = run(classify, tiny_gpt2, sentiment_files, target, out, "--domain_adaptation", "dann", "--strategy",
                  "lora", "--learning_rate", "1e-2", "--save_strategy", "no")  # fmt: skip
    assert metrics["target_texts"] == N_TARGET and (out / "adapter_model.safetensors").is_file()
    for f in ("adapter_model.safetensors", "model.safetensors"):
        assert not any("discriminator" in k for k in load_file(out / f))
    # inside the PeftModel the hook sits on the wrapper (modules_to_save) of GPT-2's `score`, which reads [B, T, H]
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2, num_labels=2)
    name, head = domain.find_head(PeftModel.from_pretrained(base, str(out)))
    assert name == "base_model.model.score" and type(head).__name__ == "ModulesToSaveWrapper"


def test_sentiment_consistency_changes_the_model(tiny_gpt2, sentiment_files, tmp_path, caplog):
    train, _ = sentiment_files
    plain = tmp_path / "plain"
    run(sentiment, tiny_gpt2, sentiment_files, None, plain, "--long_text", "head_tail", "--save_strategy", "no")
    out = tmp_path / "consistency"
    with caplog.at_level("WARNING", logger="nlp_transfer"):
        # the training file itself as target (task-adaptive use): allowed, with a warning
        run(sentiment, tiny_gpt2, sentiment_files, train, out, "--long_text", "head_tail", "--domain_adaptation",
            "consistency", "--consistency_mask_probability", "0.3")  # fmt: skip
    assert "every --target_file text is a training text" in caplog.text
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["domain_adaptation"] == "consistency" and saved["target_texts"] == 48
    logs = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
    values = [h["consistency_loss"] for h in logs if "consistency_loss" in h]
    assert len(values) == 6 and all(math.isfinite(v) and v >= 0 for v in values) and max(values) > 0
    card = (out / "README.md").read_text()
    assert "consistency" in card and "48 texts of train.csv" in card
    a, b = load_file(plain / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.allclose(a[k], b[k]) for k in a)  # same seed, same data: the term moved the weights
    assert "domain_adaptation" not in (plain / "run_config.yaml").read_text()  # a plain run's record is unchanged


def test_self_training_is_distill_with_the_model_as_teacher_and_student(dann_runs, sentiment_files, target, tmp_path):
    _, teacher, _ = dann_runs
    out = tmp_path / "self-trained"
    train, dev = sentiment_files
    pair = ["--teacher_name_or_path", str(teacher), "--student_name_or_path", str(teacher)]
    data = ["--train_file", train, "--validation_file", dev, "--unlabeled_file", target]
    metrics = distill.main(
        pair + data + ["--output_dir", str(out), "--measure_speed", "false", "--save_strategy", "no", *FAST]
    )
    assert (out / "metrics.json").is_file() and metrics["total_params"] == metrics["trainable_params"]


# ------------------------------------------------------------------------------------------------- refusals
def _regression(tmp):
    return write_rows(str(tmp / "scores.csv"), [{"text": f"good movie {i}", "label": i / 7} for i in range(20)])


def _multi_label(tmp):
    rows = [{"text": f"good plot {i}", "label": [["pos"], ["neg", "pos"], ["neg"]][i % 3]} for i in range(21)]
    return write_rows(str(tmp / "tags.jsonl"), rows)


DANN = ["--domain_adaptation", "dann", "--target_file", "{target}"]
BAD = {
    "missing file": (["--domain_adaptation", "dann", "--target_file", "{tmp}/no.txt"], "--target_file not found"),
    "empty file": (["--domain_adaptation", "dann", "--target_file", "{tmp}/empty.txt"], "is empty"),
    "blank lines": (["--domain_adaptation", "consistency", "--target_file", "{tmp}/blank.txt"], "holds no text"),
    "method without text": (["--domain_adaptation", "dann"], "needs unlabelled target-domain text"),
    "text without method": (["--target_file", "{target}"], "--target_file is read only by domain adaptation"),
    "regression": (DANN + ["--train_file", "{regression}"], "this data is regression"),
    "multi-label": (DANN + ["--train_file", "{multi}"], "this data is multi label classification"),
}


# every case through the CLI's error path (run_main: one line, exit 2, lock released) in one process, so the seven
# cost one import; two of them also as `python -m nlp_transfer.recipes.classify`, exactly as a user runs them
IN_ONE_PROCESS = """
import contextlib, io, json, sys, traceback
from nlp_transfer.cli import run_main
from nlp_transfer.recipes import classify
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = run_main(classify.main, argv)
        except BaseException:  # recorded, so the test shows the traceback
            traceback.print_exc()
            rc = 1
    results.append([rc, err.getvalue()])
print(json.dumps(results))
"""
AS_A_USER = ("method without text", "regression")


@pytest.fixture(scope="module")
def refusals(tiny_bert, sentiment_files, target, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "empty.txt").write_text("")
    (tmp / "blank.txt").write_text("\n   \n\n")
    paths = {"tmp": tmp, "target": target, "regression": _regression(tmp), "multi": _multi_label(tmp)}
    argvs = {}
    for i, (case, (args, _)) in enumerate(BAD.items()):
        argv = ["--model_name_or_path", tiny_bert, "--train_file", sentiment_files[0], "--max_seq_length", "16"]
        argvs[case] = argv + [a.format(**paths) for a in args] + ["--output_dir", str(tmp / f"out{i}")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def start(*cmd):
        return subprocess.Popen(
            [sys.executable, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    # their own output folders: the same one would be locked by the other process
    users = {case: start("-m", "nlp_transfer.recipes.classify", *argvs[case][:-1], argvs[case][-1] + "-cli")
             for case in AS_A_USER}  # fmt: skip
    together = start("-c", IN_ONE_PROCESS, json.dumps(list(argvs.values())))
    out, err = together.communicate(timeout=300)
    assert together.returncode == 0, err[-3000:]
    done = {}
    for case, (rc, stderr) in zip(argvs, json.loads(out.splitlines()[-1])):
        done[case] = [subprocess.CompletedProcess(case, rc, "", stderr)]
    for case, p in users.items():
        _, stderr = p.communicate(timeout=300)
        done[case].append(subprocess.CompletedProcess(p.args, p.returncode, "", stderr))
    return {case: (runs, Path(argvs[case][-1])) for case, runs in done.items()}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(refusals, case):
    runs, out = refusals[case]
    for r in runs:
        one_error_line(r, BAD[case][1])
    assert not out.exists() and not Path(f"{out}-cli").exists()


def test_search_with_dann_and_a_rebuilt_adapter(tiny_bert, sentiment_files, target, tmp_path, monkeypatch):
    """--hpo_trials over LoRA r with dann: each trial's new adapter model gets the feature hook, and the
    discriminator and target batches start again (the same setting scores the same)."""
    pytest.importorskip("optuna")
    import csv

    from nlp_transfer import search

    monkeypatch.setitem(search.SPACES, "lora", {"learning_rate": ("choice", [1e-2]), "lora_r": ("choice", [2, 8]),
                                                "lora_alpha": ("choice", [16])})  # fmt: skip
    out = tmp_path / "hpo"
    m = run(classify, tiny_bert, sentiment_files, target, out, "--domain_adaptation", "dann", "--strategy", "lora",
            "--hpo_trials", "4", "--eval_strategy", "steps", "--eval_steps", "3", "--save_strategy", "no",
            "--metric_for_best_model", "loss")  # fmt: skip
    with open(out / "hpo_trials.csv", newline="") as f:
        trials = [t for t in csv.DictReader(f) if t["state"] == "complete"]
    losses = {}
    for t in trials:
        losses.setdefault(t["lora_r"], set()).add(t["eval_loss"])
    assert len(losses) == 2 and all(len(v) == 1 for v in losses.values())
    best = next(t for t in trials if int(t["trial"]) == m["hpo_best_trial"])
    assert json.loads((out / "adapter_config.json").read_text())["r"] == int(best["lora_r"])
    assert m["eval_loss"] == pytest.approx(float(best["eval_loss"])) and m["domain_adaptation"] == "dann"
