"""Few-shot transfer: K labelled examples per class, pretrained MiniLM vs the same architecture from random init,
and the few-shot methods (``--methods``) against the `setfit` library as the peer row.

    python benchmarks/few_shot.py                            # SST-2 and AG News, K = 8/16/64, seeds 42-44 (~25 min)
    python benchmarks/few_shot.py --datasets sst2 --shots 8  # a subset
    python benchmarks/few_shot.py --smoke                    # tiny budget: proves the script runs (tests/slow)
    python benchmarks/few_shot.py --methods frozen_model frozen_mean contrastive setfit --shots 8
                                                             # -> results/few_shot_methods.json
    python benchmarks/few_shot.py --methods contrastive setfit --datasets ag_news --shots 8 --add
                                                             # merged into it (a rerun replaces its own rows)
    python benchmarks/few_shot.py --methods frozen_mean contrastive setfit --model <all-mpnet-base-v2 folder> --add
                                                             # another body (OFFLINE_ASSETS.md: MPNet), its own rows

Methods (every one sees the same K-per-class sample for a (dataset, K, seed)):

    plain          full fine-tuning, 100 steps (the rows below), pretrained and random-init ("scratch")
    frozen_model   --strategy frozen, the architecture's own head (BERT's [CLS] pooler), L-BFGS head on cached features
    frozen_mean    --strategy frozen --pooling mean: the same on mean-pooled token states
    contrastive    frozen_mean after --contrastive_iterations 20 (SetFit's method, in the classify recipe)
    setfit         the setfit library itself (1.2.0, its defaults: oversampled pairs, 1 epoch, body lr 2e-5,
                   logistic-regression head), same body, max_length and seed; skipped with a note if not installed
    setfit_pairs20 setfit with num_iterations=20: the pair budget of `contrastive` (per example 20 rounds of
                   one same-label and one other-label partner)

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
import itertools
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
    short = {label: len(v) for label, v in by_class.items() if len(v) < k}
    if short:
        print(f"K={k}: class(es) {short} have fewer examples; using all of theirs", flush=True)
    rows = [
        (t, label) for label in sorted(by_class) for t in rng.sample(by_class[label], min(k, len(by_class[label])))
    ]
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


def name_of(body) -> str:
    """A body's name in the results: MiniLM-L6 by default, else the folder's name (no local path)."""
    return "all-MiniLM-L6-v2" if body is None else os.path.basename(os.path.normpath(body))


METHODS = ("plain", "frozen_model", "frozen_mean", "contrastive", "setfit", "setfit_pairs20")
OURS = {
    "frozen_model": ["--strategy", "frozen", "--head_solver", "lbfgs"],
    "frozen_mean": ["--strategy", "frozen", "--head_solver", "lbfgs", "--pooling", "mean"],
    "contrastive": ["--strategy", "frozen", "--head_solver", "lbfgs", "--pooling", "mean",
                    "--contrastive_iterations", "20", "--per_device_train_batch_size", "16"],
}  # fmt: skip


def run_setfit(train, ev, max_length, seed, smoke, body=None, num_iterations=None):
    """The peer row: setfit's own trainer on the same csv files, scored on the same evaluation rows
    (``num_iterations``: setfit's pair count per example instead of its default oversampling)."""
    import time

    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from nlp_transfer.modeling import resolve_model_path

    def load(path):
        with open(path, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return Dataset.from_dict({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})

    t = time.time()
    train_ds, eval_ds = load(train), load(ev)
    if smoke:
        eval_ds = eval_ds.select(range(32))
    body = body or accuracy.MODEL
    model = SetFitModel.from_pretrained(resolve_model_path(body), labels=sorted(set(train_ds["label"])))
    extra = {"num_iterations": num_iterations} if num_iterations else {}
    args = TrainingArguments(seed=seed, max_length=max_length, report_to="none", save_strategy="no",
                             max_steps=4 if smoke else -1, show_progress_bar=False, **extra)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds)
    trainer.train()
    pred = model.predict(eval_ds["text"])
    acc = sum(p == y for p, y in zip(pred, eval_ds["label"])) / len(eval_ds)
    return {"seed": seed, "accuracy": round(acc, 4), "wall_s": round(time.time() - t, 1),
            "command": f"setfit {__import__('setfit').__version__}: SetFitModel.from_pretrained({name_of(body)}) + "
                       f"setfit.Trainer(TrainingArguments(seed={seed}, max_length={max_length}"
                       + "".join(f", {k}={v}" for k, v in extra.items()) + "))"}  # fmt: skip


def methods_main(a):
    """--methods without plain: the few-shot methods and the setfit peer; writes results/few_shot_methods.json."""
    runs = []
    for dataset in a.datasets:
        with tempfile.TemporaryDirectory(prefix=f"bench-fewshot-{dataset}-") as work:
            by_class, ev, opts = pools(dataset, work)
            max_length = int(opts[opts.index("--max_seq_length") + 1])
            for seed in a.seeds:
                for k in a.shots:
                    train = sample(by_class, k, seed, os.path.join(work, f"train-{k}-{seed}.csv"))
                    for method in a.methods:
                        if method.startswith("setfit"):
                            try:
                                import setfit  # noqa: F401
                            except ImportError:
                                print("setfit is not installed (pip install setfit==1.2.0): no peer row", flush=True)
                                continue
                            r = run_setfit(
                                train,
                                ev,
                                max_length,
                                seed,
                                a.smoke,
                                a.model,
                                num_iterations=20 if method == "setfit_pairs20" else None,
                            )
                        else:
                            data = ["--train_file", train, "--validation_file", ev, *opts]
                            extra = [*OURS[method], "--eval_strategy", "no"]
                            if a.smoke:  # a tiny budget: 32 evaluation rows, one round of pairs
                                extra += ["--max_eval_samples", "32"]
                                extra += ["--contrastive_iterations", "1"] if method == "contrastive" else []
                            body = a.model or accuracy.MODEL
                            r = accuracy.run("sst2", seed, OURS[method][1], False, work, extra=extra, data=data,
                                             name=f"out-{k}-{seed}-{method}", model=body)  # fmt: skip
                            if a.model:
                                r["command"] = r["command"].replace(a.model, name_of(a.model))
                        r.update(dataset=dataset, shots_per_class=k, method=method, model=name_of(a.model))
                        runs.append(r)
                        print(dataset, k, seed, method, r["accuracy"], f"{r['wall_s']} s", flush=True)
    out = os.path.join(a.results, "few_shot_methods.json")
    if a.add and os.path.isfile(out):  # keep the earlier runs; a (dataset, K, seed, method) run now replaces its own
        key = ("dataset", "shots_per_class", "seed", "method", "model")
        with open(out) as f:
            old = json.load(f)["runs"]
        for r in old:  # rows from before --model: MiniLM-L6
            r.setdefault("model", name_of(None))
        new = {tuple(r[k] for k in key) for r in runs}
        runs = [r for r in old if tuple(r[k] for k in key) not in new] + runs
    summary = {}
    for dataset in sorted({r["dataset"] for r in runs}):
        for k in sorted({r["shots_per_class"] for r in runs}):
            for method, body in itertools.product(METHODS, sorted({r["model"] for r in runs})):
                rs = [
                    r
                    for r in runs
                    if (r["dataset"], r["shots_per_class"], r["method"], r["model"]) == (dataset, k, method, body)
                ]
                if rs:
                    summary[f"{dataset} K={k} {method}" + ("" if body == name_of(None) else f" {body}")] = {
                        **accuracy.mean_std([r["accuracy"] for r in rs]),
                        "wall_s": round(sum(r["wall_s"] for r in rs) / len(rs), 1),
                    }
    result = {"benchmark": "few-shot methods vs setfit", "model": "per row (`model`; default all-MiniLM-L6-v2)",
              "smoke": a.smoke,
              "machine": accuracy.machine(), "summary": summary, "runs": runs}  # fmt: skip
    if not a.smoke:
        accuracy.save(result, out)
    print(json.dumps(summary))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", choices=["sst2", "ag_news"], default=["sst2", "ag_news"])
    p.add_argument("--shots", type=int, nargs="+", default=[8, 16, 64])
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=os.path.join(accuracy.HERE, "results"))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=["plain"])
    p.add_argument("--add", action="store_true", help="--methods: merge into results/few_shot_methods.json")
    p.add_argument("--model", default=None, help="--methods: the body (a local folder; default MiniLM-L6)")
    a = p.parse_args()
    accuracy.require_shared()
    if a.methods != ["plain"]:
        if "plain" in a.methods:
            sys.exit("few_shot.py: run --methods plain on its own (it writes results/few_shot.json)")
        return methods_main(a)

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
