"""ONNX Runtime export (nlp_transfer.export): a tiny classifier, a LoRA folder and a tiny QA model are exported,
reloaded with ``pipeline(..., trust_remote_code=True)`` in a fresh process and compared with the PyTorch folder."""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import make_tiny_qa_bert, qa_rows, write_rows

pytest.importorskip("onnxruntime", reason="the ONNX export tests need the [onnx] extra (onnxruntime)")
pytest.importorskip("onnxscript", reason="the ONNX export tests need the [onnx] extra (onnxscript)")

from nlp_transfer import export  # noqa: E402
from nlp_transfer.cli import main as cli_main  # noqa: E402

TEXTS = ["good great movie", "awful bad plot", "the film was dull", "lovely acting and story"]
FAST = ["--num_train_epochs", "6", "--per_device_train_batch_size", "8", "--max_seq_length", "16"]
FAST += ["--logging_steps", "2", "--save_strategy", "no", "--learning_rate", "5e-3"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def classify(model, files, out, *extra):
    from nlp_transfer.recipes.classify import main

    train, dev = files
    args = ["--model_name_or_path", model, "--train_file", train, "--validation_file", dev, "--output_dir", str(out)]
    return main([*args, *FAST, *extra])


def fresh_process(script: str, tmp_path) -> dict:
    """Run ``script`` in a new interpreter (plain transformers + onnxruntime) and return its last printed JSON."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


CLASSIFY_SCRIPT = """
import json, sys
from transformers import pipeline
texts = {texts!r}
out = {{}}
for name in ("onnx", "pytorch"):
    path = {folder!r} + ("/onnx" if name == "onnx" else "")
    kwargs = {{"trust_remote_code": True, "model_kwargs": {model_kwargs!r}}} if name == "onnx" else {{}}
    pipe = pipeline("text-classification", model=path, device="cpu", **kwargs)
    out[name] = pipe(texts, top_k=None, function_to_apply="none", truncation=True)
    out[name + "_class"] = type(pipe.model).__name__
assert "nlp_transfer" not in sys.modules
print(json.dumps(out))
"""


def scores(rows):
    return [{r["label"]: r["score"] for r in row} for row in rows]


def assert_same_predictions(result, atol):
    onnx, torch_ = scores(result["onnx"]), scores(result["pytorch"])
    for a, b in zip(onnx, torch_):
        assert max(a, key=a.get) == max(b, key=b.get)
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= atol for k in a)


def test_classifier_fp32_and_int8_reload_in_a_fresh_process(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "clf"
    metrics = classify(tiny_bert, sentiment_files, out, "--export", "onnx", "--quantize", "int8")
    onnx_dir = out / "onnx"
    names = set(os.listdir(onnx_dir))
    assert {"model.onnx", "model_quantized.onnx", "onnx_model.py", "config.json", "tokenizer.json"} <= names
    assert export.CHECK_FILE in names and not any(n.startswith(".onnx-") for n in os.listdir(out))
    # parity recorded in the returned metrics, metrics.json and the card
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["onnx_fp32_max_abs_logit_diff"] < 1e-4 and on_disk["onnx_fp32_agreement"] == 1.0
    assert on_disk["onnx_int8_agreement"] >= 0.99 and metrics["onnx_heldout_rows"] == 16
    assert {
        "onnx_heldout_accuracy_pytorch",
        "onnx_heldout_accuracy_onnx_fp32",
        "onnx_heldout_accuracy_onnx_int8",
    } <= set(on_disk)
    assert on_disk["onnx_heldout_accuracy_onnx_fp32"] == on_disk["onnx_heldout_accuracy_pytorch"]
    assert on_disk["eval_accuracy"] == pytest.approx(on_disk["onnx_heldout_accuracy_pytorch"])  # the same rows
    card = (out / "README.md").read_text()
    assert "## ONNX Runtime" in card and "model_quantized.onnx" in card
    cfg = json.loads((onnx_dir / "config.json").read_text())
    assert cfg["nlp_transfer_onnx"]["file_name"] == "model_quantized.onnx"
    # fresh process, nlp_transfer never imported: pipeline() runs ONNX Runtime, predictions match the PyTorch folder
    fp32 = fresh_process(
        CLASSIFY_SCRIPT.format(texts=TEXTS, folder=str(out), model_kwargs={"file_name": "model.onnx"}), tmp_path
    )
    assert fp32["onnx_class"] == "ORTModelForSequenceClassification"
    assert_same_predictions(fp32, atol=1e-4)
    int8 = fresh_process(CLASSIFY_SCRIPT.format(texts=TEXTS, folder=str(out), model_kwargs={}), tmp_path)
    assert_same_predictions(int8, atol=0.5)  # the default file is the int8 one: same labels, close scores

    # exporting again (standalone command) replaces onnx/ whole; without --quantize only fp32 is written
    assert cli_main(["export", str(out)]) == 0
    assert "model_quantized.onnx" not in os.listdir(onnx_dir)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert "onnx_int8_agreement" not in on_disk and "onnx_heldout_rows" not in on_disk
    assert (out / "README.md").read_text().count("## ONNX Runtime") == 1


def test_lora_folder_is_merged_before_export(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "lora"
    classify(tiny_bert, sentiment_files, out, "--strategy", "lora", "--learning_rate", "1e-2")
    report = export.export_onnx(str(out))
    assert report["fp32"]["max_abs_logit_diff"] < 1e-4
    import onnx

    graph = onnx.load(str(out / "onnx" / "model.onnx")).graph
    assert not [i.name for i in graph.initializer if "lora" in i.name.lower()]  # folded in, no adapter matmuls
    result = fresh_process(
        CLASSIFY_SCRIPT.format(texts=TEXTS, folder=str(out), model_kwargs={}), tmp_path
    )  # the PyTorch side loads the adapter folder through transformers' PEFT integration
    assert_same_predictions(result, atol=1e-4)


def test_qa_model_exports_and_the_qa_pipeline_runs_on_it(tmp_path):
    from nlp_transfer.recipes.qa import main as qa_main

    model = make_tiny_qa_bert(str(tmp_path / "qa-bert"))
    train = write_rows(str(tmp_path / "train.jsonl"), qa_rows(48, seed=1, n_articles=8))
    dev_rows = qa_rows(12, seed=2)
    dev = write_rows(str(tmp_path / "dev.jsonl"), dev_rows)
    out = tmp_path / "qa"
    args = ["--model_name_or_path", model, "--train_file", train, "--validation_file", dev, "--output_dir", str(out)]
    args += ["--max_seq_length", "32", "--doc_stride", "8", "--num_train_epochs", "3", "--learning_rate", "5e-3"]
    metrics = qa_main([*args, "--save_strategy", "no", "--export", "onnx"])
    assert metrics["onnx_fp32_agreement"] == 1.0 and metrics["onnx_fp32_max_abs_score_diff"] < 1e-3
    names = set(os.listdir(out / "onnx"))
    assert {"model.onnx", "qa_pipeline.py", "onnx_model.py"} <= names
    script = f"""
import json, sys
from transformers import pipeline
rows = json.loads({json.dumps(json.dumps(dev_rows))})
out = {{}}
for name, path, kw in (("onnx", {str(out / "onnx")!r}, {{}}), ("pytorch", {str(out)!r}, {{}})):
    qa = pipeline("question-answering", model=path, trust_remote_code=True, device="cpu")
    got = qa([{{"question": r["question"], "context": r["context"]}} for r in rows], batch_size=8)
    out[name] = [[g["answer"], g["start"], g["end"], g["score"]] for g in got]
    out[name + "_class"] = type(qa.model).__name__
assert "nlp_transfer" not in sys.modules
print(json.dumps(out))
"""
    result = fresh_process(script, tmp_path)
    assert result["onnx_class"] == "ORTModelForQuestionAnswering"
    assert [a[:3] for a in result["onnx"]] == [a[:3] for a in result["pytorch"]]
    assert [a[3] for a in result["onnx"]] == pytest.approx([a[3] for a in result["pytorch"]], abs=1e-3)


def test_bad_exports_are_one_line_and_write_nothing(tiny_bert, sentiment_files, tmp_path, monkeypatch, capsys):
    # an unfinished run
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    assert cli_main(["export", str(unfinished)]) == 2
    assert "not a finished nlp_transfer run" in capsys.readouterr().err
    # an unsupported format (argparse choices) and a missing folder
    assert cli_main(["export", str(unfinished), "--format", "tflite"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert cli_main(["export", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    # a finished folder whose round-trip record is missing, or no longer matches its weights
    out = tmp_path / "clf"
    classify(tiny_bert, sentiment_files, out, "--num_train_epochs", "1")
    record = (out / "roundtrip_check.json").read_text()
    (out / "roundtrip_check.json").unlink()
    assert cli_main(["export", str(out)]) == 2
    assert "roundtrip_check.json" in capsys.readouterr().err
    rec = json.loads(record)
    rec["expected_logits"] = [[x + 5.0 for x in row] for row in rec["expected_logits"]]
    (out / "roundtrip_check.json").write_text(json.dumps(rec))
    assert cli_main(["export", str(out)]) == 2
    assert "round-trip check failed" in capsys.readouterr().err
    assert not (out / "onnx").exists() and not [n for n in os.listdir(out) if n.startswith(".onnx-")]
    (out / "roundtrip_check.json").write_text(record)
    # onnxruntime not installed: the extra to install, before anything is written
    real_import = __import__

    def no_ort(name, *a, **k):
        if name == "onnxruntime":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr("builtins.__import__", no_ort)
    assert cli_main(["export", str(out)]) == 2
    assert "pip install 'nlp-transfer[onnx]'" in capsys.readouterr().err
    monkeypatch.undo()
    # an int8 model that disagrees too often: refused, the earlier onnx/ untouched (here: none)
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 1.01)
    assert cli_main(["export", str(out), "--quantize", "int8"]) == 2
    assert "agrees with the PyTorch model on only" in capsys.readouterr().err
    assert not (out / "onnx").exists() and not [n for n in os.listdir(out) if n.startswith(".onnx-")]


def test_recipe_export_options_are_checked_before_training(tiny_bert, sentiment_files, tmp_path, capsys):
    train, _ = sentiment_files
    base = ["classify", "--model_name_or_path", tiny_bert, "--train_file", train, "--output_dir"]
    assert cli_main([*base, str(tmp_path / "a"), "--quantize", "int8"]) == 2
    assert "--quantize int8 applies to the ONNX export: add --export onnx" in capsys.readouterr().err
    assert cli_main([*base, str(tmp_path / "b"), "--export", "tflite"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert cli_main(["pretrain", *base[1:], str(tmp_path / "c"), "--export", "onnx"]) == 2
    assert "--export onnx supports text-classification and question-answering" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abc")
