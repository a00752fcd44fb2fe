"""Inference speed of what each recipe writes, through plain ``pipeline(...)``: PyTorch vs ONNX Runtime fp32 vs ONNX
Runtime int8 (``nlp-transfer export --quantize int8``), and vs what HF's example scripts write.

    python benchmarks/inference_speed.py             # ~15 min on 2 cores
    python benchmarks/inference_speed.py --smoke     # a few inputs, 2-step models: proves the script runs (tests/slow)

The folders (MiniLM-L6, trained briefly so that accuracy means something; speed depends on the folder, not on how
long it trained):

    classify full      python -m nlp_transfer.recipes.classify on 2,000 SST-2 rows, 1 epoch
    classify lora      the same with --strategy lora (--merge_lora true): adapter + head + the embedded base, loaded by
                       pipeline's PEFT integration (the adapter stays a separate branch at inference); ONNX: merged
    classify lora merged  that run's <out>/merged (PyTorch only: the ONNX rows of "classify lora" are merged anyway)
    distill student    python -m nlp_transfer.recipes.distill, 3-layer student (layers 0,2,4) of "classify full"
    qa full            python -m nlp_transfer.recipes.qa on 800 SQuAD questions of the first 40 dev articles (384-token
                       windows, stride 128), 1 epoch; scored on 200 questions of the last 8 articles
    plain classify     AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).save_pretrained():
                       what run_classification.py's trainer.save_model() writes (untrained head: speed only)
    plain qa           AutoModelForQuestionAnswering likewise (run_qa.py); transformers 5 has no QA pipeline, so
                       both QA folders run through nlp_transfer.qa_pipeline.ExtractiveQAPipeline

Every trained folder is also exported (``nlp-transfer export OUTPUT_DIR --quantize int8``) and measured as
``<name> onnx fp32`` (``model.onnx``) and ``<name> onnx int8`` (``model_quantized.onnx``), loaded the way a user
would: ``pipeline(task, model=OUTPUT_DIR/onnx, trust_remote_code=True)``.

Per row: batch 1 (one call per input: samples/s and p50/p95 latency), batch 32 (``pipeline(rows, batch_size=32)``:
samples/s; QA: 32 windows per forward), accuracy on held-out data (SST-2 dev, 872 sentences; QA: EM/F1 on the 200
held-out questions) and the model's size on disk. Speed inputs: the first --n SST-2 dev sentences, or --n/4 held-out
questions; folders are measured in turn, --rounds times (interleaved, so machine drift hits all), mean reported.
Writes benchmarks/results/inference_speed.json (with the CPU's lscpu flags).
"""

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import accuracy  # benchmarks/accuracy.py: paths and the machine's layout

SST2 = os.path.join(accuracy.SHARED, "sst2")
SQUAD = os.path.join(accuracy.SHARED, "squad_v1.1", "dev-v1.1.json.gz")
TINY = ["--max_steps", "2", "--max_train_samples", "64", "--max_eval_samples", "16"]
TRAIN = ["--max_train_samples", "2000", "--num_train_epochs", "1"]
COMMON = ["--save_strategy", "no", "--eval_strategy", "no", "--overwrite_output_dir"]
BATCHES = (1, 32)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed: {(r.stdout + r.stderr).strip().splitlines()[-1]}")


def recipe(name, *args, smoke=False):
    run([sys.executable, "-m", f"nlp_transfer.recipes.{name}", *args, *(TINY if smoke else TRAIN), *COMMON])


def squad_splits(work, smoke):
    """Flat SQuAD rows: training questions from the first 40 dev articles, held-out ones from the last 8."""
    with gzip.open(SQUAD, "rt", encoding="utf-8") as fh:
        articles = json.load(fh)["data"]

    def rows(arts):
        return [{"id": q["id"], "title": a["title"], "context": p["context"], "question": q["question"],
                 "answers": {"text": [x["text"] for x in q["answers"]],
                             "answer_start": [x["answer_start"] for x in q["answers"]]}}
                for a in arts for p in a["paragraphs"] for q in p["qas"]]  # fmt: skip

    train, held = rows(articles[:40])[: 64 if smoke else 800], rows(articles[40:])[: 16 if smoke else 200]
    paths = []
    for name, data in (("qa_train.jsonl", train), ("qa_dev.jsonl", held)):
        paths.append(os.path.join(work, name))
        with open(paths[-1], "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in data)
    return paths, held


def build(work, smoke):
    """Every folder to measure: {name: (task, folder, kind)}, kind in pytorch | onnx fp32 | onnx int8."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

    from nlp_transfer.modeling import resolve_model_path

    sst2 = accuracy.prepare("sst2", work, 42)
    f = {k: os.path.join(work, k.replace(" ", "_")) for k in ("classify full", "classify lora", "distill student",
                                                              "qa full", "plain classify", "plain qa")}  # fmt: skip
    recipe("classify", *sst2, "--output_dir", f["classify full"], smoke=smoke)
    recipe("classify", *sst2, "--strategy", "lora", "--merge_lora", "true", "--output_dir", f["classify lora"],
           smoke=smoke)  # fmt: skip
    recipe("distill", *sst2, "--teacher_name_or_path", f["classify full"], "--student_layers", "0,2,4",
           "--output_dir", f["distill student"], smoke=smoke)  # fmt: skip
    (qa_train, qa_dev), _ = squad_splits(work, smoke)
    recipe("qa", "--model_name_or_path", accuracy.MODEL, "--train_file", qa_train, "--validation_file", qa_dev,
           "--max_seq_length", "384", "--doc_stride", "128", "--learning_rate", "1e-4",
           "--per_device_train_batch_size", "16", "--output_dir", f["qa full"], smoke=smoke)  # fmt: skip
    base = resolve_model_path(accuracy.MODEL)
    tok = AutoTokenizer.from_pretrained(base)
    for name, cls in (
        ("plain classify", AutoModelForSequenceClassification),
        ("plain qa", AutoModelForQuestionAnswering),
    ):
        kw = {"num_labels": 2} if cls is AutoModelForSequenceClassification else {}
        cls.from_pretrained(base, **kw).save_pretrained(f[name])
        tok.save_pretrained(f[name])
    export_seconds, refused = {}, {}
    for name in ("classify full", "classify lora", "distill student", "qa full"):
        t = time.perf_counter()
        # smoke: 2-step models sit on near-ties that int8 may flip, which the export rightly refuses: fp32 only
        cmd = [sys.executable, "-m", "nlp_transfer.cli", "export", f[name]]
        r = subprocess.run([*cmd, *([] if smoke else ["--quantize", "int8"])], capture_output=True, text=True)
        if r.returncode != 0:  # int8 refused (answers or labels changed too often): recorded, fp32 exported
            refused[name] = r.stderr.strip().splitlines()[-1]
            print(name, refused[name], flush=True)
            run(cmd)
        export_seconds[name] = round(time.perf_counter() - t, 1)
    clf, qa = "text-classification", "question-answering"
    folders = {"plain classify": (clf, f["plain classify"], "pytorch")}
    for name in ("classify full", "classify lora"):
        folders[name] = (clf, f[name], "pytorch")
        if name == "classify lora":
            folders["classify lora merged"] = (clf, os.path.join(f[name], "merged"), "pytorch")
        folders[f"{name} onnx fp32"] = (clf, f[name], "onnx fp32")
        if name not in refused and not smoke:
            folders[f"{name} onnx int8"] = (clf, f[name], "onnx int8")
    for name, task in (("distill student", clf), ("plain qa", qa), ("qa full", qa)):
        folders[name] = (task, f[name], "pytorch")
        if name != "plain qa":
            folders[f"{name} onnx fp32"] = (task, f[name], "onnx fp32")
            if name not in refused and not smoke:
                folders[f"{name} onnx int8"] = (task, f[name], "onnx int8")
    return folders, {"seconds": export_seconds, "int8_refused": refused}


def inputs(n, held_questions):
    with gzip.open(os.path.join(SST2, "dev.tsv.gz"), "rt", encoding="utf-8") as fh:
        rows = [ln.split("\t") for ln in fh.read().splitlines()[1:]]
    sentences = [r[0] for r in rows]
    labels = [int(r[1]) for r in rows]
    questions = [{"question": q["question"], "context": q["context"]} for q in held_questions]
    return {
        "speed": {"text-classification": sentences[:n], "question-answering": questions[: max(4, n // 4)]},
        "accuracy": {"text-classification": (sentences, labels), "question-answering": held_questions},
    }


def load(task, folder, kind, pipeline):
    if kind != "pytorch":
        file_name = "model.onnx" if kind == "onnx fp32" else "model_quantized.onnx"
        return pipeline(task, model=os.path.join(folder, "onnx"), trust_remote_code=True, device="cpu",
                        model_kwargs={"file_name": file_name})  # fmt: skip
    if task == "text-classification":
        return pipeline(task, model=folder, device="cpu")
    # transformers 5 ships no question-answering pipeline and HF's run_qa.py output names none: both QA folders run
    # nlp_transfer's, built the same way, so the comparison is of the models
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from nlp_transfer.qa_pipeline import ExtractiveQAPipeline

    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    return ExtractiveQAPipeline(model=model, tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu")


def size_mb(folder, kind):
    if kind == "onnx fp32":
        return os.path.getsize(os.path.join(folder, "onnx", "model.onnx")) / 1e6
    if kind == "onnx int8":
        return os.path.getsize(os.path.join(folder, "onnx", "model_quantized.onnx")) / 1e6
    names = ("model.safetensors", "adapter_model.safetensors")
    return (
        sum(os.path.getsize(os.path.join(folder, n)) for n in names if os.path.isfile(os.path.join(folder, n))) / 1e6
    )


def measure(pipe, task, rows, batch):
    """samples/s (and, at batch 1, each call's latency in ms)."""
    kw = {"truncation": True} if task == "text-classification" else {}
    pipe(rows[:4], batch_size=batch, **kw)  # warm-up
    if batch == 1:
        lat = []
        t = time.perf_counter()
        for x in rows:
            s = time.perf_counter()
            pipe(x, **kw)
            lat.append((time.perf_counter() - s) * 1e3)
        return len(rows) / (time.perf_counter() - t), lat
    t = time.perf_counter()
    pipe(rows, batch_size=batch, **kw)
    return len(rows) / (time.perf_counter() - t), []


def held_out_accuracy(pipe, task, data):
    if task == "text-classification":
        sentences, labels = data
        out = pipe(sentences, batch_size=32, truncation=True)
        label_ids = pipe.model.config.label2id
        return {"accuracy": 100 * statistics.fmean(label_ids[o["label"]] == y for o, y in zip(out, labels))}
    from nlp_transfer.metrics import squad_metrics

    out = pipe([{"question": q["question"], "context": q["context"]} for q in data], batch_size=32)
    m = squad_metrics({q["id"]: o["answer"] for q, o in zip(data, out)}, {q["id"]: q["answers"]["text"] for q in data})
    return {"exact_match": m["exact_match"], "f1": m["f1"]}


def batch1_breakdown(folder, sentences):
    """Where a batch-1 call's time goes for a PyTorch classifier: tokenisation, embeddings, encoder layers, head
    (mean ms per sentence; the rest of the pipeline call is pipeline overhead: pre/post-processing, softmax)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    body = getattr(model, model.base_model_prefix)
    times = {"tokenize": 0.0, "embeddings": 0.0, "encoder": 0.0, "head": 0.0}
    with torch.no_grad():
        for i, x in enumerate(sentences):
            t0 = time.perf_counter()
            enc = tok(x, truncation=True, return_tensors="pt")
            t1 = time.perf_counter()
            emb = body.embeddings(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"))
            t2 = time.perf_counter()
            hidden = body(**enc).last_hidden_state  # the whole body; the encoder share is body - embeddings
            t3 = time.perf_counter()
            pooled = body.pooler(hidden) if getattr(body, "pooler", None) is not None else hidden[:, 0]
            model.classifier(model.dropout(pooled) if hasattr(model, "dropout") else pooled)
            t4 = time.perf_counter()
            if i >= 8:  # warm-up excluded
                times["tokenize"] += t1 - t0
                times["embeddings"] += t2 - t1
                times["encoder"] += (t3 - t2) - (t2 - t1)
                times["head"] += t4 - t3
        del emb
    n = max(1, len(sentences) - 8)
    return {k: round(1e3 * v / n, 3) for k, v in times.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=256, help="classification inputs for speed (QA: n/4 questions)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=os.path.join(accuracy.HERE, "results"))
    a = p.parse_args()
    accuracy.require_shared()
    if a.smoke:
        a.n, a.rounds = 16, 1
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as work:
        folders, exports = build(work, a.smoke)
        _, held = squad_splits(work, a.smoke)
        data = inputs(a.n, held)
        if a.smoke:
            data["accuracy"]["text-classification"] = tuple(x[:16] for x in data["accuracy"]["text-classification"])
        pipes = {k: load(task, folder, kind, pipeline) for k, (task, folder, kind) in folders.items()}
        rows = {}
        for k, (task, folder, kind) in folders.items():
            rows[k] = {"task": task, "kind": kind, "size_mb": round(size_mb(folder, kind), 1)}
            if not k.startswith("plain"):
                rows[k].update(
                    {m: round(v, 2) for m, v in held_out_accuracy(pipes[k], task, data["accuracy"][task]).items()}
                )
        speed = {k: {b: [] for b in BATCHES} for k in pipes}
        latency = {k: [] for k in pipes}
        for _ in range(a.rounds):
            for k, pipe in pipes.items():
                task = folders[k][0]
                for batch in BATCHES:
                    sps, lat = measure(pipe, task, data["speed"][task], batch)
                    speed[k][batch].append(sps)
                    latency[k] += lat
                print(k, {b: round(v[-1], 1) for b, v in speed[k].items()}, flush=True)
        breakdown = {k: batch1_breakdown(folders[k][1], data["speed"]["text-classification"])
                     for k in ("classify full", "distill student")}  # fmt: skip
    for k, (task, _, _kind) in folders.items():
        plain = "plain classify" if task == "text-classification" else "plain qa"
        pytorch = k.replace(" onnx fp32", "").replace(" onnx int8", "")
        rows[k]["inputs"] = len(data["speed"][task])
        for batch in BATCHES:
            mean = statistics.fmean(speed[k][batch])
            rows[k][f"samples_per_second_batch{batch}"] = round(mean, 1)
            rows[k][f"ratio_to_plain_batch{batch}"] = round(mean / statistics.fmean(speed[plain][batch]), 3)
            rows[k][f"ratio_to_pytorch_batch{batch}"] = round(mean / statistics.fmean(speed[pytorch][batch]), 3)
        lat = sorted(latency[k])
        rows[k]["latency_ms_batch1_p50"] = round(lat[len(lat) // 2], 2)
        rows[k]["latency_ms_batch1_p95"] = round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 2)
    result = {
        "benchmark": "pipeline inference speed per recipe output: PyTorch vs ONNX Runtime fp32 vs int8, and vs plain "
        "HF-example output",
        "command": "python benchmarks/inference_speed.py" + (" --smoke" if a.smoke else ""),
        "model": accuracy.MODEL,
        "machine": accuracy.machine(),
        "threads": {"torch": torch.get_num_threads(), "onnxruntime": "default (physical cores)"},
        "rounds": a.rounds,
        "export": exports,
        "batch1_breakdown_ms": breakdown,
        "results": rows,
    }
    print(json.dumps(rows, indent=1))
    if not a.smoke:
        os.makedirs(a.results, exist_ok=True)
        with open(os.path.join(a.results, "inference_speed.json"), "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    sys.exit(main())
