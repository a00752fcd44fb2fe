"""Multi-task and intermediate-task transfer on GLUE RTE, MRPC, CoLA, SST-2 and TREC-6 (MiniLM-L6, full fine-tuning).

    python benchmarks/multitask.py                                  # every route, seed 42 (~50 min on 2 CPU cores)
    python benchmarks/multitask.py --routes alone mrpc_rte --seeds 43 44 --add   # more seeds, merged into the file
    python benchmarks/multitask.py --smoke                          # tiny budget: proves the script runs

Data (``../shared/datasets``, converted by benchmarks/accuracy.py's `prepare`): RTE's 2,490 training pairs in full;
MRPC, CoLA, SST-2 and TREC-6 each a seeded (the run's seed) subset of 1,000 training rows — the budget of 2 CPU
cores, and the small-data regime multi-task transfer is for. Every task is scored on its official dev set (TREC:
the 500-question test set). One budget for every run: batch 16, lr 5e-5, 3 epochs, linear decay with 10 % warm-up,
max length 128 for pairs, 64 for single sentences.

Routes (one seed's runs):

    alone        each task fine-tuned on its own (5 classify runs)
    joint        one encoder, five heads, trained together with the multitask recipe (proportional sampling: every
                 example once per epoch, so the same total steps as the five alone runs together)
    joint_t2     the same with --sampling temperature --sampling_temperature 2 (batch shares ~ sqrt(size): here RTE,
                 the largest task, gets 28 % of the batches instead of 38 %; the same total number of steps)
    mrpc_rte     intermediate-task transfer (STILTs): the MRPC classifier of ``alone`` fine-tuned on RTE (a new head)
    sst2_rte     the same from the SST-2 classifier

Writes benchmarks/results/multitask.json: every run (command, metrics, wall time) and mean +- std over seeds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import accuracy  # benchmarks/accuracy.py: data conversion, the recipe runner
import yaml

TASKS = ("rte", "mrpc", "cola", "sst2", "trec")
MAIN = {"rte": "accuracy", "mrpc": "accuracy", "cola": "mcc", "sst2": "accuracy", "trec": "accuracy"}
CAP = 1000  # training rows of every task but RTE
BUDGET = ["--num_train_epochs", "3", "--per_device_train_batch_size", "16", "--learning_rate", "5e-5",
          "--save_strategy", "no", "--eval_strategy", "no", "--logging_steps", "20"]  # fmt: skip
ROUTES = ("alone", "joint", "joint_t2", "mrpc_rte", "sst2_rte")


def data_options(task, work, seed):
    """The classify data flags for ``task`` (converted into ``work/<task>``) and the same as a multitask entry."""
    d = os.path.join(work, task)
    os.makedirs(d, exist_ok=True)
    flags = accuracy.prepare(task, d, seed)
    entry, i = {"name": task}, 0
    while i < len(flags):
        key, values = flags[i][2:], []
        i += 1
        while i < len(flags) and not flags[i].startswith("--"):
            values.append(flags[i])
            i += 1
        entry[key] = values if key == "class_names" else (int(values[0]) if key == "max_seq_length" else values[0])
    if task != "rte":
        flags, entry = [*flags, "--max_train_samples", str(CAP)], {**entry, "max_train_samples": CAP}
    return flags, entry


def _run(module, args, out, smoke):
    if smoke:  # (multitask: its tasks' max_eval_samples are in their entries)
        args = [*args, "--max_steps", "4"] + (["--max_eval_samples", "32"] if module == "classify" else [])
    cmd = [sys.executable, "-m", f"nlp_transfer.recipes.{module}", *args, "--output_dir", out]
    cmd.append("--overwrite_output_dir")
    t = time.time()
    with open(out + ".log", "w") as log:
        r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        with open(out + ".log") as f:
            sys.exit(f"{module} failed ({out}.log): {f.read().strip().splitlines()[-1]}")
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f), round(time.time() - t, 1), cmd


def shown(cmd, work):
    shown_args = ("<converted>/" + os.path.relpath(a, work) if a.startswith(work) else a for a in cmd[1:])
    return "python " + " ".join(shown_args)


def run_seed(routes, seed, work, smoke):
    opts = {t: data_options(t, work, seed) for t in TASKS}
    model = ["--model_name_or_path", accuracy.MODEL, "--seed", str(seed)]
    runs = []

    def record(route, task, m, wall, cmd, steps=None):
        runs.append({"route": route, "task": task, "seed": seed, MAIN[task]: round(m[f"eval_{MAIN[task]}"], 4),
                     "accuracy": round(m["eval_accuracy"], 4), "wall_s": wall, "train_steps": steps,
                     "command": shown(cmd, work)})  # fmt: skip
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "command"}), flush=True)

    def steps_of(out):
        with open(os.path.join(out, "metrics.json")) as f:
            m = json.load(f)
        return round(m.get("train_runtime", 0) * m.get("train_steps_per_second", 0))

    if "alone" in routes or {"mrpc_rte", "sst2_rte"} & set(routes):
        for task in TASKS:
            if "alone" not in routes and task not in ("mrpc", "sst2"):
                continue
            out = os.path.join(work, f"alone-{task}-{seed}")
            m, wall, cmd = _run("classify", [*model, *opts[task][0], *BUDGET], out, smoke)
            record("alone", task, m, wall, cmd, steps_of(out))
    for route, sampling in (("joint", ["--sampling", "proportional"]),
                            ("joint_t2", ["--sampling", "temperature", "--sampling_temperature", "2"])):  # fmt: skip
        if route not in routes:
            continue
        out = os.path.join(work, f"{route}-{seed}")
        cfg = os.path.join(work, f"{route}-{seed}.yaml")
        with open(cfg, "w") as f:
            entries = [{**opts[t][1], **({"max_eval_samples": 32} if smoke else {})} for t in TASKS]
            yaml.safe_dump({"tasks": entries}, f, sort_keys=False)
        m, wall, cmd = _run("multitask", [*model, "--config", cfg, *sampling, *BUDGET], out, smoke)
        for task in TASKS:
            record(route, task, m["tasks"][task], wall, cmd, steps_of(out))
    for route, first in (("mrpc_rte", "mrpc"), ("sst2_rte", "sst2")):
        if route not in routes:
            continue
        out = os.path.join(work, f"{route}-{seed}")
        start = ["--model_name_or_path", os.path.join(work, f"alone-{first}-{seed}"), "--seed", str(seed)]
        m, wall, cmd = _run("classify", [*start, *opts["rte"][0], *BUDGET], out, smoke)
        record(route, "rte", m, wall, cmd, steps_of(out))
    return runs


def summarise(runs):
    out = {}
    for route in ROUTES:
        for task in TASKS:
            rs = [r for r in runs if r["route"] == route and r["task"] == task]
            if rs:
                vals = [r[MAIN[task]] for r in rs]
                out[f"{route} {task} {MAIN[task]}"] = {
                    "mean": round(statistics.mean(vals), 4),
                    "std": round(statistics.stdev(vals), 4) if len(vals) > 1 else None,
                    "n": len(vals),
                    "seeds": sorted(r["seed"] for r in rs),
                }
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES))
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", default=os.path.join(accuracy.HERE, "results", "multitask.json"))
    p.add_argument("--add", action="store_true", help="keep --out's runs, replacing those of a (route, seed) rerun")
    a = p.parse_args()
    accuracy.require_shared()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-multitask-") as work:
        for seed in a.seeds:
            runs += run_seed(a.routes, seed, work, a.smoke)
    if a.add and os.path.isfile(a.out):
        with open(a.out) as f:
            new = {(r["route"], r["task"], r["seed"]) for r in runs}
            runs = [r for r in json.load(f)["runs"] if (r["route"], r["task"], r["seed"]) not in new] + runs
    result = {"benchmark": "multi-task and intermediate-task transfer", "model": accuracy.MODEL,
              "machine": accuracy.machine(), "smoke": a.smoke, "summary": summarise(runs), "runs": runs}  # fmt: skip
    if not a.smoke:
        accuracy.save(result, a.out)
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
