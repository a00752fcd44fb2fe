"""Accuracy benchmarks on the copies in ../shared/datasets, each a real recipe run in a fresh process.

    python benchmarks/accuracy.py trec                     # one task, its default budget
    python benchmarks/accuracy.py cola mrpc --seeds 42 43   # several tasks / seeds (mean +- std when > 1 seed)
    python benchmarks/accuracy.py trec --smoke             # tiny budget: proves the script runs (tests/slow)

Tasks (model: MiniLM-L6 from its packaged offline copy; full fine-tuning unless --strategy):

| task    | data (../shared/datasets)            | train / evaluation                        | metric           |
|---------|--------------------------------------|-------------------------------------------|------------------|
| trec    | trec/train_5500.label, TREC_10.label | 5,452 / the 500-question test, 6 classes  | accuracy         |
| cola    | glue_cola/train.tsv, dev.tsv         | 8,551 / 1,043 dev                         | MCC              |
| mrpc    | glue_mrpc/train.tsv, dev.tsv         | 3,668 / 408 dev (sentence pairs)          | F1 (pos.), acc.  |
| rte     | glue_rte/train.tsv, dev.tsv          | 2,490 / 277 dev (sentence pairs)          | accuracy         |
| ag_news | ag_news/test.csv (train set absent)  | seeded 80/20 split of the 7,600 test rows | accuracy         |
| sst2    | sst2/train.tsv, dev.tsv              | 67,349 (use --max_train_samples) / 872 dev | accuracy        |

The raw files are converted to csv in a temporary folder at run time (TREC's "LABEL:fine question" lines, GLUE tsv
with stray quotes, header-less CoLA and AG News); nothing from the datasets is written into the repository. SST-2,
IMDB and SQuAD have shipped recipe configs (recipes/sentiment, recipes/qa) with results in recipes/README.md.

Each run records metric, wall time, the recipe's peak resident memory, machine and the exact recipe command in
benchmarks/results/accuracy_<task>.json.
"""

import argparse
import csv
import gzip
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "datasets"))
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def require_shared():
    """One line and a non-zero exit when the benchmark copies are not beside the repository."""
    if not os.path.isdir(SHARED):
        sys.exit(f"benchmarks: {SHARED} not found: the benchmark datasets live in ../shared beside the repo")


def _lines(path):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read().lstrip("\ufeff").splitlines()


def _write(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def prepare(task, work, seed):
    """Convert the raw copy into csv files; returns the recipe's data options."""
    d = os.path.join(SHARED, {"trec": "trec", "cola": "glue_cola", "mrpc": "glue_mrpc", "rte": "glue_rte",
                              "ag_news": "ag_news", "sst2": "sst2"}[task])  # fmt: skip
    if not os.path.isdir(d):
        sys.exit(f"benchmarks/accuracy.py: {d} not found (the benchmark copies live in ../shared beside the repo)")
    if task == "trec":

        def rows(name):
            out = []
            for line in _lines(os.path.join(d, name)):
                label, text = line.split(" ", 1)
                out.append((text.strip(), label.split(":")[0]))
            return out

        tr = _write(os.path.join(work, "train.csv"), ["text", "label"], rows("train_5500.label.gz"))
        te = _write(os.path.join(work, "test.csv"), ["text", "label"], rows("TREC_10.label.gz"))
        return ["--train_file", tr, "--validation_file", te, "--max_seq_length", "64"]
    if task == "cola":  # no header: source, label, original label, sentence

        def rows(name):
            return [(p[3], p[1]) for p in (line.split("\t") for line in _lines(os.path.join(d, name))) if len(p) == 4]

        tr = _write(os.path.join(work, "train.csv"), ["text", "label"], rows("train.tsv.gz"))
        dv = _write(os.path.join(work, "dev.csv"), ["text", "label"], rows("dev.tsv.gz"))
        return ["--train_file", tr, "--validation_file", dv, "--max_seq_length", "64",
                "--class_names", "unacceptable", "acceptable"]  # fmt: skip
    if task in ("mrpc", "rte"):
        cols = {"mrpc": (3, 4, 0), "rte": (1, 2, 3)}[task]

        def rows(name):
            lines = _lines(os.path.join(d, name))[1:]
            return [(p[cols[0]], p[cols[1]], p[cols[2]]) for p in (x.split("\t") for x in lines) if len(p) > max(cols)]

        tr = _write(os.path.join(work, "train.csv"), ["text", "text_pair", "label"], rows("train.tsv.gz"))
        dv = _write(os.path.join(work, "dev.csv"), ["text", "text_pair", "label"], rows("dev.tsv.gz"))
        extra = ["--class_names", "not_equivalent", "equivalent"] if task == "mrpc" else []
        return ["--train_file", tr, "--validation_file", dv, "--text_pair_column", "text_pair",
                "--max_seq_length", "128", *extra]  # fmt: skip
    if task == "ag_news":
        with open(os.path.join(d, "classes.txt"), encoding="utf-8") as f:
            names = [x.strip() for x in f if x.strip()]
        with gzip.open(os.path.join(d, "test.csv.gz"), "rt", encoding="utf-8") as f:
            data = [(f"{r[1]}. {r[2]}".replace("\\", " "), names[int(r[0]) - 1]) for r in csv.reader(f)]
        random.Random(seed).shuffle(data)
        cut = int(0.8 * len(data))
        tr = _write(os.path.join(work, "train.csv"), ["text", "label"], data[:cut])
        te = _write(os.path.join(work, "test.csv"), ["text", "label"], data[cut:])
        return ["--train_file", tr, "--validation_file", te, "--max_seq_length", "128"]
    if task == "sst2":  # the GLUE tsv files load as they are
        files = ["--train_file", os.path.join(d, "train.tsv.gz"), "--validation_file", os.path.join(d, "dev.tsv.gz")]
        return [*files, "--text_column", "sentence", "--max_seq_length", "64", "--class_names", "negative", "positive"]
    raise ValueError(task)


BUDGET = {  # epochs, batch, learning rate (full fine-tuning)
    "trec": ["--num_train_epochs", "3", "--per_device_train_batch_size", "32", "--learning_rate", "1e-4"],
    "cola": ["--num_train_epochs", "3", "--per_device_train_batch_size", "32", "--learning_rate", "5e-5"],
    "mrpc": ["--num_train_epochs", "3", "--per_device_train_batch_size", "16", "--learning_rate", "5e-5"],
    "rte": ["--num_train_epochs", "3", "--per_device_train_batch_size", "16", "--learning_rate", "5e-5"],
    "ag_news": ["--num_train_epochs", "2", "--per_device_train_batch_size", "32", "--learning_rate", "5e-5"],
    "sst2": ["--num_train_epochs", "2", "--per_device_train_batch_size", "32", "--learning_rate", "5e-5"],
}
METRICS = {"trec": ["accuracy"], "cola": ["mcc", "accuracy"], "mrpc": ["f1_positive", "accuracy"],
           "rte": ["accuracy"], "ag_news": ["accuracy"], "sst2": ["accuracy"]}  # fmt: skip


def rss_series(cmd, env=None):
    """Run ``cmd`` (offline); return (returncode, output, [(seconds, RSS MB)] sampled from /proc every 0.2 s)."""
    import threading

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})  # fmt: skip
    out, series, t0 = [], [], time.time()
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 1024
            series.append((time.time() - t0, rss))
        except (OSError, StopIteration):
            pass
        time.sleep(0.2)
    reader.join(timeout=5)
    return proc.returncode, "".join(out), series or [(0.0, 0.0)]


def run(task, seed, strategy, smoke, work, max_train=None, extra=(), data=None, model=MODEL, name=None):
    """One recipe run in its own process. ``extra`` options override the task's budget (later flags win);
    ``data`` replaces the task's converted files (few_shot.py); ``name`` names the output folder in ``work``."""
    data = data or prepare(task, work, seed)
    out = os.path.join(work, name or f"out-{seed}")
    args = ["--model_name_or_path", model, *data, *BUDGET[task], "--strategy", strategy, "--seed", str(seed),
            "--output_dir", out, "--save_strategy", "no", "--eval_strategy", "epoch", "--logging_steps", "20",
            "--overwrite_output_dir", *extra]  # fmt: skip
    if smoke:
        args += ["--max_train_samples", "64", "--max_eval_samples", "32", "--num_train_epochs", "1"]
    elif max_train:
        args += ["--max_train_samples", str(max_train)]
    cmd = [sys.executable, "-m", "nlp_transfer.recipes.classify", *args]
    t = time.time()
    with open(out + ".log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (KiB on Linux)
    wall = time.time() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        with open(out + ".log") as f:
            sys.exit(f"{task}: the recipe failed: {f.read().strip().splitlines()[-1]}")
    with open(os.path.join(out, "metrics.json")) as f:
        m = json.load(f)
    if task == "mrpc":  # F1 of the positive (equivalent) class, as GLUE reports it
        m["eval_f1_positive"] = _positive_f1(out, data)
    return {
        "seed": seed,
        **{k: round(m[f"eval_{k}"], 4) for k in METRICS[task] if f"eval_{k}" in m},
        "train_rows": _count_rows(data[data.index("--train_file") + 1], 64 if smoke else max_train),
        "wall_s": round(wall, 1),
        "train_runtime_s": m.get("train_runtime"),
        "train_samples_per_second": m.get("train_samples_per_second"),
        "train_steps_per_second": m.get("train_steps_per_second"),
        "trainable_params": m.get("trainable_params"),
        "total_params": m.get("total_params"),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "command": "python -m nlp_transfer.recipes.classify " + " ".join(_shown(a, work) for a in args),
    }


def _shown(arg, work):
    if arg.startswith(work):
        return "<converted>/" + os.path.basename(arg)
    if arg.startswith(SHARED):
        return "../shared/datasets/" + os.path.relpath(arg, SHARED)
    return arg


def mean_std(vals):
    return {"mean": round(statistics.mean(vals), 4),
            "std": round(statistics.stdev(vals), 4) if len(vals) > 1 else None, "n": len(vals)}  # fmt: skip


SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags():
    """The lscpu flags that decide bf16 / int8 speed on this CPU (empty off Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return []
    return [x for x in SPEED_FLAGS if x in flags]


def machine():
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, cpu flags: {' '.join(cpu_flags())}"
    )


def save(result, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


def _count_rows(path, cap):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        n = sum(1 for _ in csv.reader(f)) - 1
    return min(n, cap) if cap else n


def _positive_f1(out, data):
    """GLUE's MRPC F1: of the 'equivalent' class, from the run's own model on the dev file."""
    from transformers import pipeline

    dev = data[data.index("--validation_file") + 1]
    with open(dev, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    clf = pipeline("text-classification", model=out, device="cpu")
    pred = clf([{"text": r["text"], "text_pair": r["text_pair"]} for r in rows], truncation=True, batch_size=32)
    gold = [r["label"] == "1" for r in rows]
    got = [p["label"] == "equivalent" for p in pred]
    tp = sum(g and p for g, p in zip(gold, got))
    prec = tp / max(1, sum(got))
    rec = tp / max(1, sum(gold))
    return 2 * prec * rec / max(1e-9, prec + rec)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("tasks", nargs="+", choices=sorted(BUDGET))
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--strategy", default="full")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--max_train_samples", type=int, default=None, help="a CPU budget: N seeded rows")
    p.add_argument("--results", default=os.path.join(HERE, "results"))
    a = p.parse_args()

    for task in a.tasks:
        path = os.path.join(a.results, f"accuracy_{task}.json")
        runs = []
        if os.path.exists(path) and not a.smoke:  # keep earlier seeds run with the same strategy and budget
            with open(path) as f:
                old = json.load(f)
            budget = f"--max_train_samples {a.max_train_samples} " if a.max_train_samples else "--max_train_samples"
            runs = [r for r in old["runs"] if old["strategy"] == a.strategy and r["seed"] not in a.seeds
                    and (budget in r["command"] + " ") == bool(a.max_train_samples)]  # fmt: skip
        for seed in a.seeds:
            with tempfile.TemporaryDirectory(prefix=f"bench-{task}-") as work:
                runs.append(run(task, seed, a.strategy, a.smoke, work, a.max_train_samples))
            print(task, runs[-1], flush=True)
        summary = {}
        for k in METRICS[task]:
            vals = [r[k] for r in runs if k in r]
            if vals:
                summary[k] = mean_std(vals)
        result = {
            "task": task,
            "model": MODEL,
            "strategy": a.strategy,
            "smoke": a.smoke,
            "machine": machine(),
            "summary": summary,
            "runs": runs,
        }
        if not a.smoke:
            runs.sort(key=lambda r: r["seed"])
            save(result, path)
        print(json.dumps(result["summary"]), flush=True)


if __name__ == "__main__":
    main()
