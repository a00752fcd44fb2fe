"""Training throughput of the classify recipe: 1 process vs 2 DDP processes (torchrun), and fp32 vs bf16 vs fp16.

    python benchmarks/scale_speed.py                       # CPU: MiniLM-L6 (packaged copy) on BBC News
    python benchmarks/scale_speed.py --precisions fp32 bf16 fp16 --no-ddp   # e.g. on a GPU

Each variant is a real `python -m nlp_transfer.recipes.classify` run (full fine-tuning, 1 epoch over
--max_train_samples rows, 128 tokens, no evaluation or checkpoints) in a fresh process; the figure is Trainer's
`train_samples_per_second` (data loading, forward, backward and optimizer step; model loading and export excluded).
The two-process run keeps the global batch (2 x 8 = 16) and gives each process one thread; the one-process run uses
all cores. Where the packaged MiniLM is not installed (e.g. a GPU box without it), a randomly initialised model of
MiniLM-L6's shape (6 layers, hidden 384, 12 heads) with a small word-level tokenizer stands in, on synthetic text:
the speed of the shape, not of the weights. Results: benchmarks/results/scale_speed*.json (with the machine).
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def minilm_or_stand_in(work):
    from nlp_transfer import assets

    path = assets.packaged_model_path("sentence-transformers/all-MiniLM-L6-v2")
    if path:
        return "sentence-transformers/all-MiniLM-L6-v2", None
    import helpers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    src = helpers.make_tiny_bert(os.path.join(work, "tok"))
    tok = PreTrainedTokenizerFast.from_pretrained(src)
    tok.model_max_length = 512
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536, max_position_embeddings=512)  # fmt: skip
    out = os.path.join(work, "minilm-shape")
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    rows = helpers.sentiment_rows(4000, seed=5)
    for r in rows:  # ~100 words, so 128-token inputs are full
        r["text"] = " ".join([r["text"]] * 12)
    return out, helpers.write_rows(os.path.join(work, "train.csv"), rows)


def run(model, train_file, out, precision, nproc, samples, batch):
    args = ["--model_name_or_path", model, "--output_dir", out, "--num_train_epochs", "1",
            "--max_train_samples", str(samples), "--max_seq_length", "128", "--eval_strategy", "no",
            "--save_strategy", "no", "--per_device_train_batch_size", str(batch), "--logging_steps", "50",
            "--train_sampling_strategy", "random", "--overwrite_output_dir"]  # fmt: skip
    if train_file:
        args += ["--train_file", train_file]
    if precision != "fp32":
        args.append(f"--{precision}")
    env = dict(os.environ)
    if nproc > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
               str(port), "-m", "nlp_transfer.recipes.classify"]  # fmt: skip
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // nproc))
    else:
        cmd = [sys.executable, "-m", "nlp_transfer.recipes.classify"]
    t = time.time()
    log = out + ".log"
    with open(log, "w") as f:
        r = subprocess.run(cmd + args, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        with open(log) as f:
            lines = f.read().strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {r.returncode}"}
    with open(os.path.join(out, "metrics.json")) as f:
        m = json.load(f)
    return {
        "train_samples_per_second": round(m["train_samples_per_second"], 2),
        "train_runtime_s": round(m["train_runtime"], 1),
        "wall_s": round(time.time() - t, 1),
    }


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--batch", type=int, default=16, help="global batch (the 2-process run: half per process)")
    p.add_argument("--no-ddp", action="store_true")
    p.add_argument("--out", default=os.path.join(HERE, "results", "scale_speed.json"))
    a = p.parse_args()
    import torch

    work = tempfile.mkdtemp(prefix="scale-speed-")
    model, train_file = minilm_or_stand_in(work)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else _cpu_name()
    results = {
        "command": " ".join(["python", "benchmarks/scale_speed.py", *sys.argv[1:]]),
        "machine": f"{device}; {os.cpu_count()} CPU cores; torch {torch.__version__}",
        "model": model if train_file is None else "random MiniLM-L6-shaped BERT (stand-in)",
        "data": "BBC News (builtin)" if train_file is None else "synthetic ~100-word texts",
        "rows": a.samples,
        "runs": {},
    }
    variants = [(prec, 1, a.batch) for prec in a.precisions]
    if not a.no_ddp and not torch.cuda.is_available():
        variants.append(("fp32", 2, a.batch // 2))
    for prec, nproc, batch in variants:
        name = f"{prec} {nproc}proc x batch {batch}"
        results["runs"][name] = run(model, train_file, os.path.join(work, "out"), prec, nproc, a.samples, batch)
        print(name, results["runs"][name], flush=True)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
