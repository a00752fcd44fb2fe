"""What the everyday options buy on real data: search, early stopping, calibration vs the classify defaults.

    python benchmarks/training_options.py            # SST-2, 2,000 training rows, MiniLM-L6: ~15 min on 2 cores
    python benchmarks/training_options.py --smoke    # 64 rows, a few steps: proves the script runs

Every variant is the classify recipe in its own process on the same data: GLUE SST-2 train (64 tokens) split 90/10
(seeded, stratified; the recipe's --validation_split), a seeded 2,000 rows of the 90 % to train on and 250 of the
10 % as the validation split the options select and calibrate on; the 872-sentence GLUE dev set is the *test*
split, never seen by any choice, so its figures are honest:

    defaults          2 epochs, lr 5e-5
    early stopping    up to 8 epochs, --early_stopping_patience 2 (validation accuracy), best epoch kept
                      (and the same with patience 1)
    search            --hpo_trials 6 --hpo_timeout 600 (the README's space for full fine-tuning), best retrained
    calibrated        the defaults + --calibrate (temperature on the validation split, folded into the head)
    lora defaults     --strategy lora (r 8, alpha 16, its default lr 1e-3), 2 epochs
    lora search       --strategy lora --hpo_trials 6 --hpo_timeout 600 (LoRA's space: lr, epochs, batch, warmup,
                      r and alpha)

``--only NAME ...`` runs some variants and merges them into an existing results file (same variant replaced).

Reports test accuracy, test ECE (and before calibration), wall time of the whole command. Writes
benchmarks/results/training_options.json with the CPU's lscpu flags.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import accuracy

VARIANTS = {
    "defaults": [],
    "early stopping": ["--num_train_epochs", "8", "--early_stopping_patience", "2"],
    "early stopping, patience 1": ["--num_train_epochs", "8", "--early_stopping_patience", "1"],
    "search": ["--hpo_trials", "6", "--hpo_timeout", "600"],
    "calibrated": ["--calibrate"],
    "lora defaults": ["--strategy", "lora"],
    "lora search": ["--strategy", "lora", "--hpo_trials", "6", "--hpo_timeout", "600"],
}
SMOKE = {"early stopping": ["--num_train_epochs", "3", "--early_stopping_patience", "1"],
         "search": ["--hpo_trials", "2", "--num_train_epochs", "1"],
         "lora search": ["--strategy", "lora", "--hpo_trials", "2", "--num_train_epochs", "1"]}  # fmt: skip


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=os.path.join(accuracy.HERE, "results"))
    a = p.parse_args()
    accuracy.require_shared()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-options-") as work:
        data = accuracy.prepare("sst2", work, 42)
        data[data.index("--validation_file")] = "--test_file"  # GLUE dev is the untouched test split
        size = (
            ["--max_train_samples", "64", "--max_eval_samples", "32", "--max_test_samples", "64"]
            if a.smoke
            else ["--max_train_samples", "2000", "--max_eval_samples", "250"]
        )
        for name, extra in VARIANTS.items():
            if a.only and name not in a.only:
                continue
            extra = (
                SMOKE.get(name, extra + (["--max_steps", "4"] if "early" not in name else [])) if a.smoke else extra
            )
            out = os.path.join(work, name.replace(" ", "_"))
            cmd = [sys.executable, "-m", "nlp_transfer.recipes.classify", *data, *size, "--output_dir", out,
                   "--seed", str(a.seed), *extra]  # fmt: skip
            t0 = time.time()
            r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            wall = time.time() - t0
            if r.returncode != 0:
                sys.exit(f"{name} failed: {(r.stdout + r.stderr).strip().splitlines()[-1]}")
            with open(os.path.join(out, "metrics.json")) as f:
                m = json.load(f)
            keep = ("test_accuracy", "test_f1", "test_ece", "test_ece_uncalibrated", "eval_accuracy", "eval_ece",
                    "eval_ece_uncalibrated", "calibration_temperature", "train_runtime", "train_early_stopped",
                    "train_stopped_at_step", "train_planned_steps", "train_best_step", "hpo_trials", "hpo_best_trial",
                    "hpo_seconds", "hpo_best_objective", "trainable_params")  # fmt: skip
            run = {"variant": name, "wall_seconds": round(wall, 1), **{k: m[k] for k in keep if k in m}}
            if "search" in name:
                with open(os.path.join(out, "hpo_trials.csv")) as f:
                    run["trials_csv"] = f.read()
            run["command"] = " ".join("<tmp>" + x[len(work) :] if x.startswith(work) else x for x in cmd)
            runs.append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "trials_csv"}), flush=True)
    if not a.smoke:
        os.makedirs(a.results, exist_ok=True)
        path = os.path.join(a.results, "training_options.json")
        if a.only and os.path.isfile(path):  # merge: the other variants' runs (and their machine) stay
            with open(path) as f:
                old = json.load(f)
            for r in runs:
                r["machine"] = accuracy.machine()
            runs = [r for r in old["runs"] if r["variant"] not in {x["variant"] for x in runs}] + runs
            machine = old["machine"]
        else:
            machine = accuracy.machine()
        with open(path, "w") as f:
            json.dump({"machine": machine, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
