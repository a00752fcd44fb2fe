"""Training precision on the machine at hand: the classify recipe in fp32 vs ``--precision auto`` (and, on a CPU
with native bf16, what auto picks: bf16 autocast), same data, same seeds, interleaved in one run.

    python benchmarks/precision.py                    # SST-2, 2,000 rows, 1 epoch, seeds 42 43: ~6 min on 2 cores
    python benchmarks/precision.py --smoke            # 64 rows, 2 steps: proves the script runs

Reports per run: what ``auto`` resolved to (and why, from the run's card), train samples/s (Trainer's
``train_samples_per_second``), dev accuracy; then the mean ratio auto / fp32. Writes
benchmarks/results/precision.json with the CPU's lscpu flags (bf16 speed depends on AVX-512-BF16 / AMX). On a GPU
machine the same command measures the GPU (auto: bf16 where supported).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import accuracy  # benchmarks/accuracy.py: data preparation, machine description


def train(data, out, precision, seed, smoke):
    size = ["--max_steps", "2", "--max_train_samples", "64"] if smoke else ["--max_train_samples", "2000"]
    cmd = [sys.executable, "-m", "nlp_transfer.recipes.classify", *data, "--output_dir", out, "--seed", str(seed),
           "--precision", precision, "--num_train_epochs", "1", "--save_strategy", "no", "--eval_strategy", "no",
           "--overwrite_output_dir", *size]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if r.returncode != 0:
        sys.exit(f"classify --precision {precision} failed: {(r.stdout + r.stderr).strip().splitlines()[-1]}")
    with open(os.path.join(out, "metrics.json")) as f:
        m = json.load(f)
    with open(os.path.join(out, "README.md")) as f:
        line = next((ln for ln in f if ln.startswith("- precision:")), "- precision: ?")
    return {
        "precision": precision,
        "resolved": line.split(":", 1)[1].strip(),
        "seed": seed,
        "train_samples_per_second": m["train_samples_per_second"],
        "eval_accuracy": round(100 * m["eval_accuracy"], 2),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=os.path.join(accuracy.HERE, "results"))
    a = p.parse_args()
    accuracy.require_shared()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as work:
        data = accuracy.prepare("sst2", work, 42)
        for seed in a.seeds[:1] if a.smoke else a.seeds:
            for precision in ("fp32", "auto"):
                runs.append(train(data, os.path.join(work, f"{precision}-{seed}"), precision, seed, a.smoke))
                print(json.dumps(runs[-1]), flush=True)

    def mean(precision, key):
        return statistics.fmean(r[key] for r in runs if r["precision"] == precision)

    summary = {
        k: {"fp32": round(mean("fp32", k), 2), "auto": round(mean("auto", k), 2)}
        for k in ("train_samples_per_second", "eval_accuracy")
    }
    summary["speed_ratio_auto_to_fp32"] = round(
        summary["train_samples_per_second"]["auto"] / summary["train_samples_per_second"]["fp32"], 3
    )
    result = {
        "benchmark": "classify recipe training: fp32 vs --precision auto (SST-2, 2,000 rows, 1 epoch, MiniLM-L6)",
        "command": "python benchmarks/precision.py" + (" --smoke" if a.smoke else ""),
        "machine": accuracy.machine(),
        "runs": runs,
        "summary": summary,
    }
    print(json.dumps(summary, indent=1))
    if not a.smoke:
        accuracy.save(result, os.path.join(a.results, "precision.json"))


if __name__ == "__main__":
    sys.exit(main())
