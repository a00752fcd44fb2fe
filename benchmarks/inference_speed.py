"""Inference speed of what each recipe writes, through plain ``pipeline(...)``, vs what HF's example scripts write.

    python benchmarks/inference_speed.py             # ~10 min on 2 cores
    python benchmarks/inference_speed.py --smoke     # a few inputs: proves the script runs (tests/slow)

Inference speed is a property of the saved folder (architecture, adapter or not, layers), not of how long it was
trained, so every folder here comes from a 2-step run of its recipe (accuracy is not the point; those figures are in
the other benchmarks):

    classify full      python -m nlp_transfer.recipes.classify (defaults: full fine-tuning) on SST-2 rows
    classify lora      the same with --strategy lora: adapter + head + the embedded base, loaded by pipeline's
                       PEFT integration (the adapter stays a separate branch at inference)
    classify lora merged  the same run's --merge_lora true copy (<out>/merged), the adapter folded into the weights
    distill student    python -m nlp_transfer.recipes.distill, 3-layer student (layers 0,2,4) of the full model
    qa full            python -m nlp_transfer.recipes.qa on SQuAD questions (384-token windows, stride 128)
    plain classify     AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).save_pretrained():
                       what run_classification.py's trainer.save_model() writes
    plain qa           AutoModelForQuestionAnswering likewise (run_qa.py); transformers 5 has no QA pipeline, so
                       both QA folders run through nlp_transfer.qa_pipeline.ExtractiveQAPipeline

Each classifier scores the first --n SST-2 dev sentences, QA models the first --n/4 SQuAD dev questions, in file
order, with ``pipeline(..., batch_size=1)`` and ``batch_size=32``, after a warm-up; the folders are measured in turn,
--rounds times (interleaved, so machine drift hits all), and the mean is reported with the ratio to the plain model
of the same task. Writes benchmarks/results/inference_speed.json.
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
TINY = ["--max_steps", "2", "--max_train_samples", "64", "--max_eval_samples", "16", "--save_strategy", "no",
        "--eval_strategy", "no", "--overwrite_output_dir"]  # fmt: skip


def recipe(name, *args):
    cmd = [sys.executable, "-m", f"nlp_transfer.recipes.{name}", *args, *TINY]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if r.returncode != 0:
        sys.exit(f"{name} failed: {(r.stdout + r.stderr).strip().splitlines()[-1]}")


def build(work):
    """Every folder to measure: {name: (task, folder)}."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

    from nlp_transfer.modeling import resolve_model_path

    sst2 = accuracy.prepare("sst2", work, 42)
    f = {k: os.path.join(work, k.replace(" ", "_")) for k in ("classify full", "classify lora", "distill student",
                                                              "qa full", "plain classify", "plain qa")}  # fmt: skip
    recipe("classify", *sst2, "--output_dir", f["classify full"])
    recipe("classify", *sst2, "--strategy", "lora", "--merge_lora", "true", "--output_dir", f["classify lora"])
    recipe("distill", *sst2, "--teacher_name_or_path", f["classify full"], "--student_layers", "0,2,4",
           "--output_dir", f["distill student"])  # fmt: skip
    recipe("qa", "--config", os.path.join(accuracy.HERE, "..", "recipes", "qa", "minilm_squad_v1_split_smoke.yaml"),
           "--train_file", SQUAD, "--output_dir", f["qa full"])  # fmt: skip
    base = resolve_model_path(accuracy.MODEL)
    tok = AutoTokenizer.from_pretrained(base)
    for name, cls in (
        ("plain classify", AutoModelForSequenceClassification),
        ("plain qa", AutoModelForQuestionAnswering),
    ):
        kw = {"num_labels": 2} if cls is AutoModelForSequenceClassification else {}
        cls.from_pretrained(base, **kw).save_pretrained(f[name])
        tok.save_pretrained(f[name])
    return {
        "plain classify": ("text-classification", f["plain classify"]),
        "classify full": ("text-classification", f["classify full"]),
        "classify lora": ("text-classification", f["classify lora"]),
        "classify lora merged": ("text-classification", os.path.join(f["classify lora"], "merged")),
        "distill student": ("text-classification", f["distill student"]),
        "plain qa": ("question-answering", f["plain qa"]),
        "qa full": ("question-answering", f["qa full"]),
    }


def inputs(n):
    with gzip.open(os.path.join(SST2, "dev.tsv.gz"), "rt", encoding="utf-8") as fh:
        sentences = [ln.split("\t")[0] for ln in fh.read().splitlines()[1:]][:n]
    with gzip.open(SQUAD, "rt", encoding="utf-8") as fh:
        squad = json.load(fh)["data"]
    questions = [{"question": q["question"], "context": p["context"]}
                 for a in squad for p in a["paragraphs"] for q in p["qas"]][: max(4, n // 4)]  # fmt: skip
    return {"text-classification": sentences, "question-answering": questions}


def load(task, folder, pipeline):
    if task == "text-classification":
        return pipeline(task, model=folder, device="cpu")
    # transformers 5 ships no question-answering pipeline and HF's run_qa.py output names none: both QA folders run
    # nlp_transfer's, built the same way, so the comparison is of the models
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from nlp_transfer.qa_pipeline import ExtractiveQAPipeline

    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    return ExtractiveQAPipeline(model=model, tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu")


def measure(pipe, task, rows, batch):
    kw = {"truncation": True} if task == "text-classification" else {}
    pipe(rows[:4], batch_size=batch, **kw)  # warm-up
    t = time.perf_counter()
    pipe(rows, batch_size=batch, **kw)
    return len(rows) / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=256, help="classification inputs (QA: n/4 questions)")
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
    data = inputs(a.n)
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as work:
        folders = build(work)
        pipes = {k: load(task, folder, pipeline) for k, (task, folder) in folders.items()}
        speed = {k: {1: [], 32: []} for k in pipes}
        for _ in range(a.rounds):
            for k, pipe in pipes.items():
                for batch in (1, 32):
                    task = folders[k][0]
                    speed[k][batch].append(measure(pipe, task, data[task], batch))
                print(k, {b: round(v[-1], 1) for b, v in speed[k].items()}, flush=True)
    rows = {}
    for k, (task, _) in folders.items():
        plain = "plain classify" if task == "text-classification" else "plain qa"
        rows[k] = {"task": task, "inputs": len(data[task])}
        for batch in (1, 32):
            mean = statistics.fmean(speed[k][batch])
            rows[k][f"samples_per_second_batch{batch}"] = round(mean, 1)
            rows[k][f"ratio_to_plain_batch{batch}"] = round(mean / statistics.fmean(speed[plain][batch]), 3)
    result = {
        "benchmark": "pipeline inference speed per recipe output vs plain HF-example output",
        "command": "python benchmarks/inference_speed.py" + (" --smoke" if a.smoke else ""),
        "model": accuracy.MODEL,
        "machine": accuracy.machine(),
        "rounds": a.rounds,
        "results": rows,
    }
    print(json.dumps(rows, indent=1))
    if not a.smoke:
        os.makedirs(a.results, exist_ok=True)
        with open(os.path.join(a.results, "inference_speed.json"), "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    sys.exit(main())
