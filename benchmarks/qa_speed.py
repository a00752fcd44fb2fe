"""Training speed of the QA recipe's defaults vs HF ``run_qa.py``'s (every window padded to 384, random batches).

    python benchmarks/qa_speed.py                 # 400 SQuAD questions, 1 epoch, seeds 42 43: ~15 min on 2 cores
    python benchmarks/qa_speed.py --smoke         # 32 questions, 2 steps: proves the script runs

Every variant is the QA recipe itself on the same questions (the first --questions of the first 40 SQuAD v1.1 dev
articles; 100 held-out questions of the last 8), MiniLM-L6, 384-token windows, stride 128, 16 windows per optimizer
step, lr 1e-4, fp32:

    run_qa defaults                  --pad_to_max_length true --train_sampling_strategy random, batch 16 (run_qa.py)
    recipe, batch 16                 windows padded per batch to the longest, length-grouped batches
    recipe, batch 8 x accumulation 2 the same 16-window steps in two forward/backward passes of 8

Each run is its own process (peak RSS is its own, sampled from /proc every 0.2 s); per seed the variants run back
to back.
Reports train windows/s (Trainer's train_samples_per_second), training-loop seconds, peak RSS, EM/F1. Writes
benchmarks/results/qa_speed.json with the CPU's lscpu flags.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

import accuracy
from inference_speed import squad_splits

VARIANTS = {
    "run_qa defaults": ["--pad_to_max_length", "true", "--train_sampling_strategy", "random"],
    "recipe, batch 16": ["--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "1"],
    "recipe, batch 8 x accumulation 2": ["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2"],
}


def peak_rss_run(cmd):
    """Run ``cmd``; return (returncode, output, peak RSS in MB of the process)."""
    rc, out, series = accuracy.rss_series(cmd)
    return rc, out, max(r for _, r in series)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--questions", type=int, default=400)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=os.path.join(accuracy.HERE, "results"))
    a = p.parse_args()
    accuracy.require_shared()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-qa-speed-") as work:
        (train, dev), _ = squad_splits(work, a.smoke)
        size = ["--max_steps", "2"] if a.smoke else ["--max_train_samples", str(a.questions)]
        for seed in a.seeds[:1] if a.smoke else a.seeds:
            for i, (name, extra) in enumerate(VARIANTS.items()):
                out = os.path.join(work, f"{seed}-{i}")
                cmd = [sys.executable, "-m", "nlp_transfer.recipes.qa", "--model_name_or_path", accuracy.MODEL,
                       "--train_file", train, "--validation_file", dev, "--max_eval_samples", "100",
                       "--max_seq_length", "384", "--doc_stride", "128", "--learning_rate", "1e-4",
                       "--per_device_train_batch_size", "16", "--num_train_epochs", "1", "--seed", str(seed),
                       "--save_strategy", "no", "--eval_strategy", "no", "--output_dir", out,
                       *size, *extra]  # fmt: skip
                rc, log, peak = peak_rss_run(cmd)
                if rc != 0:
                    sys.exit(f"{name} failed: {log.strip().splitlines()[-1]}")
                with open(os.path.join(out, "metrics.json")) as f:
                    m = json.load(f)
                runs.append({
                    "variant": name, "seed": seed, "train_windows_per_second": m["train_samples_per_second"],
                    "train_loop_seconds": m["train_runtime"], "peak_rss_mb": round(peak),
                    "eval_exact_match": round(m["eval_exact_match"], 2), "eval_f1": round(m["eval_f1"], 2),
                })  # fmt: skip
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for name in VARIANTS:
        rs = [r for r in runs if r["variant"] == name]
        summary[name] = {
            k: round(statistics.fmean(r[k] for r in rs), 2) for k in rs[0] if k not in ("variant", "seed")
        }
    base = summary["run_qa defaults"]["train_windows_per_second"]
    summary["speedup_vs_run_qa"] = {
        name: round(summary[name]["train_windows_per_second"] / base, 2)
        for name in VARIANTS
        if name != "run_qa defaults"
    }
    result = {
        "benchmark": "QA recipe training: run_qa.py defaults (pad to 384, random batches) vs recipe defaults",
        "command": "python benchmarks/qa_speed.py" + (" --smoke" if a.smoke else ""),
        "machine": accuracy.machine(),
        "runs": runs,
        "summary": summary,
    }
    print(json.dumps(summary, indent=1))
    if not a.smoke:
        accuracy.save(result, os.path.join(a.results, "qa_speed.json"))


if __name__ == "__main__":
    sys.exit(main())
