"""Publishing: push to a hub server on 127.0.0.1 (olah + write endpoints, see conftest.py), then load back with plain
transformers/peft calls in another process and compare predictions with the local run."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_transfer import hub, tasks
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.recipes.classify import main as classify

HERE = Path(__file__).parent
FAST = [
    "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--max_seq_length", "32",
    "--logging_steps", "2", "--save_strategy", "no", "--report_to", "none",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def train_args(model, files, out, *extra):
    train, dev = files
    base = ["--model_name_or_path", model, "--train_file", train, "--validation_file", dev, "--output_dir", str(out)]
    return base + FAST + list(extra)


def client(server, home, *args, **env):
    r = subprocess.run(
        [sys.executable, str(HERE / "client.py"), *args],
        capture_output=True,
        text=True,
        env=server.env(home, **env),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def tree_digest(folder) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def full_run(tiny_bert, sentiment_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    classify(train_args(tiny_bert, sentiment_files, out, "--strategy", "full", "--learning_rate", "1e-3"))
    return out


# ------------------------------------------------------------------------------------ round trips through the hub
def test_lora_run_pushes_and_loads_back_with_peft_and_pipeline(hub_server, tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "lora"
    argv = train_args(tiny_bert, sentiment_files, out, "--strategy", "lora", "--learning_rate", "1e-2")
    argv += ["--push_to_hub", "--hub_model_id", "tester/tiny-lora", "--hub_private_repo", "true", "--license", "mit"]
    r = subprocess.run(
        [sys.executable, "-m", "nlp_transfer.recipes.classify", *argv],
        capture_output=True,
        text=True,
        env=hub_server.env(tmp_path / "home"),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "hub_commit_url" not in metrics  # the local record is written before the push

    # the token appears nowhere: not in the log, the output folder, or what the hub received
    token = hub_server.token
    assert token not in r.stdout + r.stderr
    for folder in (out, hub_server.repo_dir("tester/tiny-lora")):
        for p in Path(folder).rglob("*"):
            if p.is_file():
                assert token.encode() not in p.read_bytes(), p

    state = hub_server.state()["repos"]["tester/tiny-lora"]
    assert state["private"] is True and len(state["commits"]) == 1

    got = client(hub_server, tmp_path / "home", "compare", "--repo", "tester/tiny-lora", "--local", str(out),
                 "--base", tiny_bert)  # fmt: skip
    assert got["pipeline_labels"] == ["negative", "positive"]
    assert got["pipeline_max_diff"] < 1e-5 and got["peft_max_diff"] < 1e-5

    card = client(hub_server, tmp_path / "home", "card", "--repo", "tester/tiny-lora")
    assert card["data"]["library_name"] == "peft" and card["data"]["license"] == "mit"
    assert card["data"]["pipeline_tag"] == "text-classification"
    assert {"lora", "peft", "nlp_transfer"} <= set(card["data"]["tags"])
    assert any(e["metric"] == "accuracy" and e["split"] == "validation" for e in card["eval_results"])
    assert 'pipeline("text-classification", model="tester/tiny-lora"' in card["text"]
    assert 'PeftModel.from_pretrained(base, "tester/tiny-lora")' in card["text"]
    assert "PATH_OR_REPO" in (out / "README.md").read_text()  # the local card is left as it was
    files = card["files"]
    assert {"adapter_model.safetensors", "adapter_config.json", "config.json", "README.md"} <= set(files)
    assert "training_curves.png" in files and "metrics.json" in files
    assert hub.ROUNDTRIP_FILE not in files and not any(f.startswith("checkpoint-") for f in files)


def test_push_command_full_model_and_a_second_revision(hub_server, full_run, tiny_bert, sentiment_files, tmp_path):
    home = tmp_path / "home"
    before = tree_digest(full_run)
    r = subprocess.run(
        [sys.executable, "-m", "nlp_transfer.cli", "push", str(full_run), "tiny-full"],  # bare name: the user's
        capture_output=True,
        text=True,
        env=hub_server.env(home),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "/tester/tiny-full/commit/" in r.stdout
    assert tree_digest(full_run) == before  # pushing never changes the run

    # a second run, pushed to branch v2 of the same repo
    second = tmp_path / "second"
    classify(train_args(tiny_bert, sentiment_files, second, "--strategy", "full", "--learning_rate", "3e-3",
                        "--seed", "7"))  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "nlp_transfer.cli", "push", str(second), "tester/tiny-full", "--revision", "v2"],
        capture_output=True,
        text=True,
        env=hub_server.env(home),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]

    main_rev = client(hub_server, home, "compare", "--repo", "tester/tiny-full", "--local", str(full_run))
    v2 = client(hub_server, home, "compare", "--repo", "tester/tiny-full", "--local", str(second), "--revision", "v2")
    assert main_rev["pipeline_max_diff"] < 1e-5 and v2["pipeline_max_diff"] < 1e-5
    cross = client(hub_server, home, "compare", "--repo", "tester/tiny-full", "--local", str(second))
    assert cross["pipeline_max_diff"] > 1e-3  # main still holds the first run
    c_main = client(hub_server, home, "card", "--repo", "tester/tiny-full")
    c_v2 = client(hub_server, home, "card", "--repo", "tester/tiny-full", "--revision", "v2")
    assert c_main["sha"] != c_v2["sha"] and c_main["data"]["library_name"] == "transformers"
    assert "model.safetensors" in c_main["files"]


def test_qa_lora_run_pushes_and_answers_the_same_from_the_hub(hub_server, tmp_path):
    from helpers import make_tiny_qa_bert, qa_rows, write_rows

    from nlp_transfer.recipes.qa import main as qa_main

    base = make_tiny_qa_bert(str(tmp_path / "qa-base"))
    train = write_rows(str(tmp_path / "train.jsonl"), qa_rows(48, seed=1, n_articles=6))
    out = tmp_path / "qa-lora"
    qa_main(["--model_name_or_path", base, "--train_file", train, "--output_dir", str(out), "--strategy", "lora",
             "--max_seq_length", "32", "--doc_stride", "8", "--per_device_train_batch_size", "8",
             "--save_strategy", "no", "--eval_strategy", "no", "--learning_rate", "1e-2"])  # fmt: skip
    home = tmp_path / "home"
    r = subprocess.run(
        [sys.executable, "-m", "nlp_transfer.cli", "push", str(out), "tester/tiny-qa"],
        capture_output=True,
        text=True,
        env=hub_server.env(home),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    questions = [{"question": q["question"], "context": q["context"]} for q in qa_rows(6, seed=9)]
    qpath = tmp_path / "questions.json"
    qpath.write_text(json.dumps(questions))
    got = client(hub_server, home, "compare-qa", "--repo", "tester/tiny-qa", "--local", str(out), str(qpath))
    assert len(got["remote"]) == len(questions)
    for a, b in zip(got["remote"], got["local"]):
        assert (a["answer"], a["start"], a["end"]) == (b["answer"], b["start"], b["end"])
        assert abs(a["score"] - b["score"]) < 1e-4
    card = client(hub_server, home, "card", "--repo", "tester/tiny-qa")
    assert card["data"]["pipeline_tag"] == "question-answering" and "qa_pipeline.py" in card["files"]


# ------------------------------------------------------------------------------------------------- bad input
def test_multitask_run_pushes_every_task_to_its_own_repo(hub_server, tiny_bert, sentiment_files, tmp_path):
    import yaml

    train, dev = sentiment_files
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(yaml.safe_dump([{"name": "a", "train_file": train, "validation_file": dev},
                                          {"name": "b", "train_file": dev, "validation_split": 0.25}]))  # fmt: skip
    out = tmp_path / "mt"
    argv = ["--model_name_or_path", tiny_bert, "--tasks", str(tasks_file), "--output_dir", str(out), *FAST,
            "--push_to_hub", "--hub_model_id", "tester/tiny-mt"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "nlp_transfer.recipes.multitask", *argv], capture_output=True, text=True,
                       env=hub_server.env(tmp_path / "home"), timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    repos = hub_server.state()["repos"]
    for task in ("a", "b"):
        assert f"tester/tiny-mt-{task}" in repos
        got = client(hub_server, tmp_path / "home", "compare", "--repo", f"tester/tiny-mt-{task}", "--local",
                     str(out / task))  # fmt: skip
        assert got["pipeline_max_diff"] < 1e-5
    assert "tester/tiny-mt" not in repos  # the run folder holds no model of its own
    r = subprocess.run([sys.executable, "-m", "nlp_transfer.cli", "push", str(out), "tester/tiny-mt"],
                       capture_output=True, text=True, env=hub_server.env(tmp_path / "home"), timeout=600)  # fmt: skip
    assert r.returncode == 2 and "is a multitask run (a, b): push one task's folder" in r.stderr


def test_push_refusals_leave_the_run_intact(hub_server, full_run, tmp_path):
    not_finished = tmp_path / "unfinished"
    not_finished.mkdir()
    (not_finished / "config.json").write_text("{}")
    tampered = tmp_path / "tampered"
    shutil.copytree(full_run, tampered)
    rec = json.loads((tampered / hub.ROUNDTRIP_FILE).read_text())
    rec["expected_logits"] = [[v + 1.0 for v in row] for row in rec["expected_logits"]]
    (tampered / hub.ROUNDTRIP_FILE).write_text(json.dumps(rec))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(full_run, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not safetensors")
    before = tree_digest(full_run)
    run = str(full_run)
    cases = [
        ({"argv": [str(not_finished), "tester/x"]}, "is not a finished nlp_transfer run"),
        ({"argv": [str(tmp_path / "nope"), "tester/x"]}, "is not a folder"),
        ({"argv": [run, "a/b/c"]}, "is not of the form"),
        ({"argv": [run, "bad name!"]}, "is not of the form"),
        ({"argv": [run, "tester/x"], "env": {"HF_TOKEN": None}}, "no Hugging Face token found"),
        ({"argv": [run, "tester/denied"], "env": {"HF_TOKEN": "hf_wrongTOKENvalue000"}}, "HTTP 401"),
        ({"argv": [str(tampered), "tester/tampered"]}, "round-trip check failed"),
        ({"argv": [str(corrupt), "tester/corrupt"]}, "does not load the way a user would load it"),
        (
            {"argv": [run, "tester/down"], "fault": {"status": 503, "count": 100}},
            "failed (HTTP 503",
        ),
        (
            {"argv": [run, "tester/slow"], "fault": {"delay": 4, "count": 100}},
            "timeout 1 s per request",
        ),
    ]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([c for c, _ in cases]))
    env = {"NLP_TRANSFER_HUB_RETRIES": "2", "NLP_TRANSFER_HUB_TIMEOUT": "1"}
    results = client(hub_server, tmp_path / "home", "push-cases", str(path), **env)
    hub_server.fault(count=0)
    for (case, expected), res in zip(cases, results):
        lines = res["stderr"].strip().splitlines()
        assert res["code"] == 2, (case, res)
        assert lines and lines[-1].startswith("nlp-transfer: error:") and expected in lines[-1], (case, res)
        assert "Traceback" not in res["stderr"]
        assert hub_server.token not in res["stderr"] and "hf_wrongTOKENvalue000" not in res["stderr"]
    assert "retry with `nlp-transfer push" in results[-1]["stderr"]
    # bounded: NLP_TRANSFER_HUB_RETRIES=2 attempts each for the failing and the hanging server, then the message
    assert hub_server.state()["faulted"] == ["/api/repos/create"] * 4
    repos = hub_server.state()["repos"]
    assert not {"tester/tampered", "tester/corrupt", "tester/down"} & set(
        repos
    )  # refused before anything was uploaded
    assert tree_digest(full_run) == before


# ---------------------------------------------------------------------------------- checks that need no server
def test_repo_ids_and_tokens_are_checked_before_training(tiny_bert, sentiment_files, tmp_path, monkeypatch):
    assert hub.check_repo_id("user/model-1.v2") == "user/model-1.v2" and hub.check_repo_id("name") == "name"
    for bad in ("a/b/c", "", "/abs/path", "x--y", "under score?"):
        with pytest.raises(NLPTransferError, match="is not of the form"):
            hub.check_repo_id(bad)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    out = tmp_path / "out"
    with pytest.raises(NLPTransferError, match="no Hugging Face token"):
        classify(train_args(tiny_bert, sentiment_files, out, "--push_to_hub", "--hub_model_id", "me/m"))
    with pytest.raises(NLPTransferError, match="is not of the form"):
        classify(train_args(tiny_bert, sentiment_files, out, "--push_to_hub", "--hub_model_id", "me/m/x"))
    with pytest.raises(NLPTransferError, match="--hub_token.*is not accepted"):
        classify(train_args(tiny_bert, sentiment_files, out, "--hub_token", "hf_abc"))
    assert not out.exists()  # refused before any training or writing


def test_no_round_trip_record_is_pushed_from_any_depth(tmp_path):
    for rel in ("config.json", "roundtrip_check.json", "merged/config.json", "merged/roundtrip_check.json",
                "checkpoint-3/optimizer.pt", ".export-in-progress/model.safetensors"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    assert hub._files_to_push(str(tmp_path)) == ["config.json", "merged/config.json"]


def test_recorded_round_trip_and_what_is_pushed(full_run, tmp_path):
    checks = tasks.verify_recorded(str(full_run))
    assert set(checks) == {"pipeline"} and checks["pipeline"]["examples"] > 0
    files = hub._files_to_push(str(full_run))
    assert "model.safetensors" in files and "README.md" in files and "metrics.json" in files
    assert hub.ROUNDTRIP_FILE not in files
    staged = tmp_path / "with-ckpt"
    shutil.copytree(full_run, staged)
    (staged / "checkpoint-3").mkdir()
    (staged / "checkpoint-3" / "optimizer.pt").write_bytes(b"x")
    assert hub._files_to_push(str(staged)) == files
    os.remove(staged / "metrics.json")
    with pytest.raises(NLPTransferError, match="not a finished nlp_transfer run"):
        hub.check_finished_run(str(staged))
