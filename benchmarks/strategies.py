"""Transfer strategies side by side on SST-2: same model, data, epochs, batch and seed; only what trains differs.

    python benchmarks/strategies.py                      # every strategy below, seed 42 (~30 min on 2 cores)
    python benchmarks/strategies.py --only lora_r8 full  # a subset
    python benchmarks/strategies.py --smoke              # tiny budget: proves the script runs (tests/slow)

Budget (the shipped recipes/sentiment/minilm_sst2_*.yaml one): MiniLM-L6, a seeded 8,000 of the 67,349 SST-2
training phrases, 2 epochs, batch 32, 64 tokens; scored on the 872-sentence GLUE dev set. Learning rates are each
strategy's own (a strategy is only fairly compared at a learning rate that suits it; the LoRA paper tunes it too):
full and partial 5e-5, the frozen backbone's head 1e-1 and LoRA 2e-3, the rates measured on BBC News and SST-2
(docs/DESIGN_NOTES.md). LoRA keeps alpha = 2r, so the scale alpha/r is the same at every rank and only the rank
varies; PEFT's default targets for BERT (query, value), as in the LoRA paper.

Frozen rows: ``frozen_stepwise`` runs the frozen backbone every step (``--cache_features false``, the only frozen
mode before cached features); ``frozen`` trains the same head, same settings, on features computed once (a cold
cache: the one feature pass is in its time); ``frozen_mean_lbfgs`` / ``frozen_mean4_lbfgs`` read mean-pooled token
states of the last layer / the last 4 layers concatenated, with an L-BFGS logistic-regression head.

Per strategy: dev accuracy, trainable / total parameters, training time per step and samples/s (Trainer's own
train_runtime, i.e. the training loop only), and the recipe process's peak resident memory (whole run). Writes
benchmarks/results/strategies_sst2.json.
"""

import argparse
import json
import os
import sys
import tempfile

import accuracy  # benchmarks/accuracy.py: the recipe runner and the data preparation

STRATEGIES = {  # name: (--strategy, its options)
    "full": ("full", ["--learning_rate", "5e-5"]),
    "partial": ("partial", ["--learning_rate", "5e-5"]),  # embeddings + bottom 3 of 6 layers frozen
    "frozen_stepwise": ("frozen", ["--learning_rate", "1e-1", "--cache_features", "false"]),  # before caching
    "frozen": ("frozen", ["--learning_rate", "1e-1"]),  # cached features, the same head training
    "frozen_mean_lbfgs": ("frozen", ["--pooling", "mean", "--head_solver", "lbfgs"]),
    "frozen_mean4_lbfgs": ("frozen", ["--pooling", "mean", "--pool_layers", "4", "--head_solver", "lbfgs"]),
    "lora_r2": ("lora", ["--lora_r", "2", "--lora_alpha", "4", "--learning_rate", "2e-3"]),
    "lora_r8": ("lora", ["--lora_r", "8", "--lora_alpha", "16", "--learning_rate", "2e-3"]),
    "lora_r32": ("lora", ["--lora_r", "32", "--lora_alpha", "64", "--learning_rate", "2e-3"]),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--only", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max_train_samples", type=int, default=8000)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=os.path.join(accuracy.HERE, "results"))
    a = p.parse_args()
    accuracy.require_shared()

    rows = {}
    for name in a.only:
        with tempfile.TemporaryDirectory(prefix=f"bench-strategy-{name}-") as work:
            strategy, options = STRATEGIES[name]
            extra = [*options, "--eval_strategy", "no"]
            if strategy == "frozen":  # a cold feature cache of its own: the one feature pass is in the time
                extra += ["--feature_cache_dir", os.path.join(work, "features")]
            r = accuracy.run("sst2", a.seed, strategy, a.smoke, work, a.max_train_samples, extra=extra)
        steps = r["train_steps_per_second"]
        r["seconds_per_step"] = round(1 / steps, 3) if steps else None
        r["trainable_percent"] = round(100 * r["trainable_params"] / r["total_params"], 3)
        rows[name] = r
        print(name, json.dumps(r), flush=True)
    result = {
        "benchmark": "strategies on SST-2",
        "model": accuracy.MODEL,
        "smoke": a.smoke,
        "machine": accuracy.machine(),
        "runs": rows,
    }
    if not a.smoke:
        os.makedirs(a.results, exist_ok=True)
        path = os.path.join(a.results, "strategies_sst2.json")
        old = json.load(open(path)) if os.path.exists(path) else {"runs": {}}
        result["runs"] = {**old["runs"], **rows}  # --only refreshes some rows, keeps the others
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
    print(json.dumps({k: v["accuracy"] for k, v in rows.items()}))


if __name__ == "__main__":
    sys.exit(main())
