"""Training speed of the classify recipe's defaults vs a plain Trainer set up as HF's text-classification example.

Both train the same model on the same rows with the same batch size, learning rate, epochs and seed; what differs
is what the recipe does by default:

    plain    every row padded to max_seq_length=128 (run_classification.py's pad_to_max_length default),
             random batches, fp32, default_data_collator
    dynamic  dynamic padding only (each batch padded to its longest row), random batches: same batches in the same
             order as plain, so any accuracy difference is float noise; isolates what padding alone buys
    recipe   the recipe's defaults: dynamic padding + length-grouped batches
             (train_sampling_strategy="group_by_length"), fp32

Each variant runs in its own subprocess (so peak RSS is its own); for each seed in --seeds the two variants run
back to back (interleaved), so machine drift hits both. Seeds change the model's head init and the batch order.
Prints training samples/s, wall time of the training loop, peak RSS and validation accuracy (mean and std over
seeds) and the ratios of the means.

    python benchmarks/classify_speed.py                       # SST-2 from ../shared (2,000 train rows, dev 872)
    python benchmarks/classify_speed.py --dataset bbc_news    # offline BBC News (long texts: little to gain)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SST2 = os.path.join(REPO, "..", "shared", "datasets", "sst2")
VARIANTS = ("plain", "dynamic", "recipe")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")) + f" ({cpu})"
    except (OSError, StopIteration):
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, torch {torch.__version__}"


def load_data(dataset: str, n_train: int, seed: int):
    from nlp_transfer.data import load_raw_datasets, prepare_classification

    if dataset == "sst2":
        raw = load_raw_datasets(
            train_file=os.path.join(SST2, "train.tsv.gz"), validation_file=os.path.join(SST2, "dev.tsv.gz")
        )
        return prepare_classification(raw, text_column="sentence", max_train_samples=n_train, seed=seed)
    raw = load_raw_datasets(dataset_name="builtin:bbc_news")
    return prepare_classification(raw, max_train_samples=n_train, seed=seed)


def child(variant: str, args) -> dict:
    import torch
    from transformers import (
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )
    from transformers import logging as hf_logging

    from nlp_transfer.data import tokenize_classification
    from nlp_transfer.metrics import make_compute_metrics
    from nlp_transfer.modeling import load_sequence_classifier, load_tokenizer, resolve_model_path

    hf_logging.set_verbosity_error()
    torch.set_num_threads(os.cpu_count() or 1)
    set_seed(args.seed)
    dd, labels = load_data(args.dataset, args.train_samples, args.seed)
    path = resolve_model_path(args.model)
    tok = load_tokenizer(path)
    model = load_sequence_classifier(
        path,
        num_labels=labels.num_labels,
        id2label=labels.id2label,
        label2id=labels.label2id,
        problem_type=labels.problem_type,
        pad_token_id=tok.pad_token_id,
    )
    dynamic = variant in ("dynamic", "recipe")
    data = tokenize_classification(dd, tok, max_seq_length=args.max_seq_length, pad_to_max_length=not dynamic)
    targs = TrainingArguments(
        output_dir=os.path.join("/tmp", f"classify_speed_{variant}"),
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=5e-5,
        num_train_epochs=args.epochs,
        seed=args.seed,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        logging_steps=50,
        disable_tqdm=True,
        dataloader_pin_memory=False,
        train_sampling_strategy="group_by_length" if variant == "recipe" else "random",
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=DataCollatorWithPadding(tok) if dynamic else default_data_collator,
        compute_metrics=make_compute_metrics(labels.problem_type),
    )
    t0 = time.perf_counter()
    out = trainer.train()
    wall = time.perf_counter() - t0
    ev = trainer.evaluate()
    if variant == "plain":
        tokens = len(data["train"]) * args.max_seq_length
    else:  # what the collator pads to: the longest row of each batch, in the sampler's order
        lengths = data["train"]["length"]
        order = list(trainer._get_train_sampler(data["train"]))
        bs = args.batch_size
        tokens = sum(
            max(lengths[i] for i in order[k : k + bs]) * len(order[k : k + bs]) for k in range(0, len(order), bs)
        )
    return {
        "variant": variant,
        "train_samples_per_second": out.metrics["train_samples_per_second"],
        "train_wall_s": wall,
        "padded_tokens_per_epoch": tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "eval_accuracy": ev["eval_accuracy"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["sst2", "bbc_news"], default="sst2")
    p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--train_samples", type=int, default=2000)
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--seeds", type=int, nargs="+", default=[42], help="one (plain, recipe) pair per seed")
    p.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)  # set per child run
    p.add_argument("--json", default=os.path.join(REPO, "benchmarks", "classify_speed.json"))
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)), flush=True)
        return
    if args.dataset == "sst2" and not os.path.isdir(SST2):
        sys.exit(f"SST-2 not found at {SST2}: use --dataset bbc_news")

    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    common = [
        f"--{k}={v}" for k, v in vars(args).items() if k not in ("child", "json", "seeds", "seed") and v is not None
    ]
    for seed in args.seeds:
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--child", variant, f"--seed={seed}", *common]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                sys.exit(f"{variant} run failed:\n{proc.stderr[-3000:]}")
            runs[variant].append(json.loads(line[0][7:]))
            print(f"{variant:>6}: {runs[variant][-1]}", flush=True)

    def mean(v, k):
        return statistics.fmean(r[k] for r in runs[v])

    def std(v, k):
        return statistics.stdev(r[k] for r in runs[v]) if len(runs[v]) > 1 else 0.0

    keys = ["train_samples_per_second", "train_wall_s", "peak_rss_mb", "eval_accuracy", "padded_tokens_per_epoch"]
    summary = {v: {k: mean(v, k) for k in keys} | {"eval_accuracy_std": std(v, "eval_accuracy")} for v in runs}
    plain = summary["plain"]
    ratio = {}
    for v in ("dynamic", "recipe"):
        ratio[f"speedup_samples_per_second_{v}"] = (
            summary[v]["train_samples_per_second"] / plain["train_samples_per_second"]
        )
        ratio[f"wall_time_ratio_plain_over_{v}"] = plain["train_wall_s"] / summary[v]["train_wall_s"]
        ratio[f"peak_rss_ratio_{v}_over_plain"] = summary[v]["peak_rss_mb"] / plain["peak_rss_mb"]
        ratio[f"accuracy_difference_{v}_minus_plain"] = summary[v]["eval_accuracy"] - plain["eval_accuracy"]
    print(f"\nmeans over seeds {args.seeds}:")
    print(f"{'':>8} {'samples/s':>10} {'train wall s':>13} {'peak RSS MB':>12} {'accuracy':>16} {'tokens/epoch':>13}")
    for v in VARIANTS:
        s = summary[v]
        acc = f"{s['eval_accuracy']:.4f}+-{s['eval_accuracy_std']:.4f}"
        print(
            f"{v:>8} {s['train_samples_per_second']:>10.1f} {s['train_wall_s']:>13.1f} {s['peak_rss_mb']:>12.0f} "
            f"{acc:>16} {s['padded_tokens_per_epoch']:>13.0f}"
        )
    print("\n" + "\n".join(f"{k}: {v:.3f}" for k, v in ratio.items()))
    record = {
        "command": "python " + " ".join([os.path.relpath(os.path.abspath(__file__), REPO)] + sys.argv[1:]),
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items() if k not in ("child", "json", "seed")},
        "runs": runs,
        "summary": summary,
        "ratios": ratio,
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
