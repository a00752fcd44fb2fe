"""Where the QA recipe's peak memory goes, and what cuts it: peak RSS of short QA runs that differ in one setting.

    python benchmarks/qa_memory.py                 # 6 variants x 24 steps on SQuAD windows: ~12 min on 2 cores
    python benchmarks/qa_memory.py --smoke         # 2 steps each: proves the script runs

Each variant is the QA recipe in its own process (MiniLM-L6, 384-token windows, stride 128, lr 1e-4, fp32) on the
first 600 questions of the SQuAD split benchmarks/inference_speed.py uses, --max_steps 24, no evaluation during
training, 100 held-out questions evaluated at the end. Peak RSS is sampled from /proc every 0.2 s; the RSS series
is summarised per quarter of the run (a steady climb would mean allocator fragmentation, a plateau reached at the
first step means activations). Writes benchmarks/results/qa_memory.json with the CPU's lscpu flags.
"""

import argparse
import json
import os
import sys
import tempfile

import accuracy
from inference_speed import squad_splits

VARIANTS = {
    "batch 16 (default)": ([], {}),
    "batch 8 x accumulation 2": (["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2"], {}),
    "batch 4 x accumulation 4": (["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "4"], {}),
    "eval batch 16 (default 64)": (["--per_device_eval_batch_size", "16"], {}),
    "gradient checkpointing": (["--gradient_checkpointing", "true"], {}),
    "glibc mmap threshold 1 MB": ([], {"MALLOC_MMAP_THRESHOLD_": "1048576"}),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=os.path.join(accuracy.HERE, "results"))
    a = p.parse_args()
    accuracy.require_shared()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-qa-memory-") as work:
        (train, dev), _ = squad_splits(work, a.smoke)
        for name, (extra, env) in VARIANTS.items():
            if a.only and name not in a.only:
                continue
            out = os.path.join(work, str(len(runs)))
            cmd = [sys.executable, "-m", "nlp_transfer.recipes.qa", "--model_name_or_path", accuracy.MODEL,
                   "--train_file", train, "--validation_file", dev, "--max_train_samples", "600",
                   "--max_eval_samples", "100", "--max_seq_length", "384", "--doc_stride", "128",
                   "--learning_rate", "1e-4", "--max_steps", str(2 if a.smoke else a.steps), "--seed", "42",
                   "--save_strategy", "no", "--eval_strategy", "no", "--output_dir", out, *extra]  # fmt: skip
            rc, log, series = accuracy.rss_series(cmd, env)
            if rc != 0:
                sys.exit(f"{name} failed: {log.strip().splitlines()[-1]}")
            with open(os.path.join(out, "metrics.json")) as f:
                m = json.load(f)
            n = len(series)
            quarters = [
                round(max(r for _, r in series[i * n // 4 : max((i + 1) * n // 4, i * n // 4 + 1)])) for i in range(4)
            ]
            runs.append({
                "variant": name, "peak_rss_mb": round(max(r for _, r in series)), "peak_rss_by_quarter_mb": quarters,
                "train_windows_per_second": m["train_samples_per_second"], "train_loop_seconds": m["train_runtime"],
                "wall_seconds": round(series[-1][0], 1), "eval_f1": round(m["eval_f1"], 2),
                "command": " ".join(x if not x.startswith(work) else "<tmp>" + x[len(work):] for x in cmd),
                "env": env,
            })  # fmt: skip
            print(json.dumps(runs[-1]), flush=True)
    result = {"machine": accuracy.machine(), "runs": runs}
    if not a.smoke:
        os.makedirs(a.results, exist_ok=True)
        with open(os.path.join(a.results, "qa_memory.json"), "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
