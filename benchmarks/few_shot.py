"""Few-shot transfer: K labelled examples per class, pretrained MiniLM vs the same architecture from random init.

    python benchmarks/few_shot.py                            # SST-2 and AG News, K = 8/16/64, seeds 42-44 (~25 min)
    python benchmarks/few_shot.py --datasets sst2 --shots 8  # a subset
    python benchmarks/few_shot.py --smoke                    # tiny budget: proves the script runs (tests/slow)

For every (dataset, K, seed) two classify-recipe runs see the same K-per-class sample (drawn with that seed):
``pretrained`` starts from sentence-transformers/all-MiniLM-L6-v2, ``scratch`` from a copy of its architecture and
tokenizer with freshly initialised weights (transformers' own init, seeded). Both: full fine-tuning, batch 8,
100 optimizer steps (so every K gets the same compute; K=8 on 2 classes is 50 epochs), lr 1e-4, linear decay,
evaluated once at the end on data no sample is drawn from:

    sst2     K per class from the 67,349 training phrases; scored on the 872-sentence GLUE dev set
    ag_news  K per class from the train part of accuracy.py's seeded (42) 80/20 split of the 7,600-row test set
             (the train set is not in ../shared); scored on the other 1,520 rows

Same learning rate for both is a choice: from-scratch training would like a larger one, but at 100 steps on
<= 256 examples no rate gives a 22M-parameter transformer anything to generalise from (see the results: it stays
near the majority-class rate). Writes benchmarks/results/few_shot.json with every run and mean +- std over seeds.
"""

import argparse
import csv
import gzip
import json
import os
import random
import sys
import tempfile

import accuracy  # benchmarks/accuracy.py: the recipe runner and the data preparation

BUDGET = ["--per_device_train_batch_size", "8", "--max_steps", "100", "--learning_rate", "1e-4",
          "--eval_strategy", "no", "--logging_steps", "10"]  # fmt: skip


def pools(dataset, work):
    """(train rows by class, evaluation csv path, extra recipe options) for one dataset."""
    if dataset == "sst2":
        with gzip.open(os.path.join(accuracy.SHARED, "sst2", "train.tsv.gz"), "rt", encoding="utf-8") as f:
            rows = [ln.rstrip("\n").split("\t") for ln in f][1:]
        by_class = {"negative": [], "positive": []}
        for text, label in rows:
            by_class["positive" if label == "1" else "negative"].append(text.strip())
        with gzip.open(os.path.join(accuracy.SHARED, "sst2", "dev.tsv.gz"), "rt", encoding="utf-8") as f:
            dev = [ln.rstrip("\n").split("\t") for ln in f][1:]
        ev = accuracy._write(os.path.join(work, "eval.csv"), ["text", "label"],
                             [(t, "positive" if y == "1" else "negative") for t, y in dev])  # fmt: skip
        return by_class, ev, ["--max_seq_length", "64"]
    data = accuracy.prepare("ag_news", work, 42)  # the fixed 80/20 split: train.csv / test.csv in work
    by_class = {}
    with open(data[data.index("--train_file") + 1], encoding="utf-8") as f:
        for r in csv.DictReader(f):
            by_class.setdefault(r["label"], []).append(r["text"])
    return by_class, data[data.index("--validation_file") + 1], ["--max_seq_length", "128"]


def sample(by_class, k, seed, path):
    rng = random.Random(seed)
    rows = [(t, label) for label in sorted(by_class) for t in rng.sample(by_class[label], k)]
    rng.shuffle(rows)
    return accuracy._write(path, ["text", "label"], rows)


def random_init_copy(folder, seed):
    """The pretrained checkpoint's architecture and tokenizer with fresh weights (seeded)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from nlp_transfer.modeling import resolve_model_path

    path = resolve_model_path(accuracy.MODEL)
    torch.manual_seed(seed)
    AutoModel.from_config(AutoConfig.from_pretrained(path)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", choices=["sst2", "ag_news"], default=["sst2", "ag_news"])
    p.add_argument("--shots", type=int, nargs="+", default=[8, 16, 64])
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=os.path.join(accuracy.HERE, "results"))
    a = p.parse_args()
    accuracy.require_shared()

    runs = []
    for dataset in a.datasets:
        with tempfile.TemporaryDirectory(prefix=f"bench-fewshot-{dataset}-") as work:
            by_class, ev, opts = pools(dataset, work)
            for seed in a.seeds:
                scratch = random_init_copy(os.path.join(work, f"scratch-{seed}"), seed)
                for k in a.shots:
                    train = sample(by_class, k, seed, os.path.join(work, f"train-{k}-{seed}.csv"))
                    data = ["--train_file", train, "--validation_file", ev, *opts]
                    for init, model in (("pretrained", accuracy.MODEL), ("scratch", scratch)):
                        extra = [*BUDGET, *(["--max_steps", "4", "--max_eval_samples", "32"] if a.smoke else [])]
                        r = accuracy.run("sst2", seed, "full", False, work, extra=extra, data=data, model=model,
                                         name=f"out-{k}-{seed}-{init}")  # fmt: skip
                        r.update(dataset=dataset, shots_per_class=k, init=init)
                        r["command"] = r["command"].replace(scratch, "<random-init copy of MiniLM-L6>")
                        runs.append(r)
                        print(dataset, k, seed, init, r["accuracy"], f"{r['wall_s']} s", flush=True)
    summary = {}
    for dataset in a.datasets:
        for k in a.shots:
            for init in ("pretrained", "scratch"):
                key = (dataset, k, init)
                vals = [r["accuracy"] for r in runs if (r["dataset"], r["shots_per_class"], r["init"]) == key]
                summary[f"{dataset} K={k} {init}"] = accuracy.mean_std(vals)
    result = {
        "benchmark": "few-shot transfer vs random init",
        "model": accuracy.MODEL,
        "budget": " ".join(BUDGET),
        "smoke": a.smoke,
        "machine": accuracy.machine(),
        "summary": summary,
        "runs": runs,
    }
    if not a.smoke:
        accuracy.save(result, os.path.join(a.results, "few_shot.json"))
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
