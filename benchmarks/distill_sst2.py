"""Distillation benchmark on SST-2 (reads ../shared/datasets/sst2; never copies its text into the repo).

1. fine-tune a teacher (MiniLM-L6, full) on N labelled training phrases;
2. distil it into students cut from it, all on the same labelled rows, epochs and batch size:
     kd_l3        layers 0,2,4, KD (T=2, alpha=0.5)
     nokd_l3      layers 0,2,4, the same student with alpha=0 (plain fine-tuning, no teacher)
     kd_l3_unlab  layers 0,2,4, KD + M unlabelled phrases (teacher soft labels only)
     kd_l2_unlab  layers 0,3,   KD + M unlabelled phrases
   With --mpnet_teacher <folder> (all-mpnet-base-v2, see ../shared/docs/OFFLINE_ASSETS.md) it also fine-tunes that
   12-layer teacher on the same rows and distils it into MiniLM-L6 (another tokenizer: per-example logits), with
   and without the unlabelled phrases; the MiniLM-L6 "teacher" above is then the no-KD baseline for that student.
   It prints accuracy on the official dev set (872 sentences), the share of the teacher's accuracy each keeps, and
   CPU latency (batch 1) / throughput (batch 32) ratios measured in each run (compression_report.json).

Usage (from the repo root):
    python benchmarks/distill_sst2.py                      # ~20 min on 2 CPU cores
    python benchmarks/distill_sst2.py --smoke              # tiny budget: proves the script runs (~1 min)
    python benchmarks/distill_sst2.py --runs kd_l3 nokd_l3 # a subset

Results: printed, and written to benchmarks/results/distill_sst2.json (or --results). The labelled rows are the first
N of the training file shuffled with --seed, the unlabelled ones the next M (their labels are dropped).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RUNS = {
    "kd_l3": {"layers": "0,2,4", "alpha": 0.5, "unlabelled": False},
    "nokd_l3": {"layers": "0,2,4", "alpha": 0.0, "unlabelled": False},
    "kd_l3_unlab": {"layers": "0,2,4", "alpha": 0.5, "unlabelled": True},
    "kd_l2_unlab": {"layers": "0,3", "alpha": 0.5, "unlabelled": True},
}


def read_tsv(path: str) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def summarise(spec: dict, m: dict, out: Path, t0: float) -> dict:
    """One student's row: accuracy, share of the teacher's, and the speed ratios its run measured."""
    comp = json.loads((out / "compression_report.json").read_text())
    return {
        **spec,
        "eval_accuracy": m["eval_accuracy"],
        "teacher_eval_accuracy": m["teacher_eval_accuracy"],
        "accuracy_kept": comp["ratios"]["metric_kept"],
        "throughput_speedup_batch32": comp["ratios"]["throughput_speedup_batch32"],
        "latency_speedup_batch1": comp["ratios"]["latency_speedup_batch1"],
        "teacher_speed": {k: v for k, v in comp["teacher"].items() if "latency" in k or "throughput" in k},
        "student_speed": {k: v for k, v in comp["student"].items() if "latency" in k or "throughput" in k},
        "parameters": comp["student"]["parameters"],
        "train_runtime_s": round(m.get("train_runtime", 0), 1),
        "wall_s": round(time.time() - t0, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "sst2"))
    ap.add_argument("--work", default="/tmp/nlp_transfer_bench/distill_sst2")
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "distill_sst2.json"))
    ap.add_argument("--teacher", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--labelled", type=int, default=8000)
    ap.add_argument("--unlabelled", type=int, default=24000)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--max_seq_length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS) + ["none"])
    ap.add_argument("--mpnet_teacher", default=None, help="all-mpnet-base-v2 folder: also distil MPNet -> MiniLM-L6")
    ap.add_argument(
        "--mpnet_unlabelled",
        action="store_true",
        help="also the MPNet -> MiniLM-L6 run with unlabelled text (~+15 min)",
    )
    ap.add_argument("--reuse_teacher", action="store_true", help="reuse a finished teacher in --work")
    ap.add_argument("--smoke", action="store_true", help="tiny budget (CI proves the script runs)")
    args = ap.parse_args()
    if args.smoke:
        args.labelled, args.unlabelled, args.epochs = 256, 256, 1
        args.runs = ["kd_l3", "nokd_l3", "kd_l2_unlab"]
    train_path, dev_path = os.path.join(args.data, "train.tsv.gz"), os.path.join(args.data, "dev.tsv.gz")
    if not os.path.isfile(train_path):
        print(f"SST-2 not found in {args.data} (expected train.tsv.gz, dev.tsv.gz): pass --data", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NLP_TRANSFER_CACHE", os.path.join(args.work, "cache"))
    from nlp_transfer.recipes import classify, distill

    # ---- data: N labelled rows, M more as unlabelled text, seeded
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = read_tsv(train_path)
    random.Random(args.seed).shuffle(rows)
    labelled = rows[: args.labelled]
    unlabelled = rows[args.labelled : args.labelled + args.unlabelled]
    with open(work / "labelled.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["sentence", "label"])
        w.writeheader()
        w.writerows({"sentence": r["sentence"], "label": r["label"]} for r in labelled)
    (work / "unlabelled.txt").write_text("".join(r["sentence"].strip() + "\n" for r in unlabelled), encoding="utf-8")
    dev = ["--validation_file", dev_path] + (["--max_eval_samples", "128"] if args.smoke else [])
    common = [
        "--train_file",
        str(work / "labelled.csv"),
        *dev,
        "--text_column",
        "sentence",
        "--max_seq_length",
        str(args.max_seq_length),
        "--num_train_epochs",
        str(args.epochs),
        "--per_device_train_batch_size",
        "32",
        "--seed",
        str(args.seed),
        "--save_strategy",
        "no",
        "--overwrite_output_dir",
    ]

    results = {
        "benchmark": "distill_sst2",
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "labelled": len(labelled),
        "unlabelled": len(unlabelled),
        "epochs": args.epochs,
        "runs": {},
    }
    import torch

    results["machine"]["torch_threads"] = torch.get_num_threads()

    def teacher(model: str, out: Path, lr: str) -> dict:
        if args.reuse_teacher and (out / "metrics.json").is_file():
            return json.loads((out / "metrics.json").read_text())
        return classify.main(
            ["--model_name_or_path", model, *common, "--class_names", "negative", "positive"]
            + ["--learning_rate", lr, "--output_dir", str(out)]
        )

    teacher_dir = work / "teacher"
    t0 = time.time()
    tm = teacher(args.teacher, teacher_dir, "5e-5")
    results["runs"]["teacher"] = {
        "model": args.teacher,
        "eval_accuracy": tm["eval_accuracy"],
        "wall_s": round(time.time() - t0, 1),
    }
    print(f"teacher: accuracy {tm['eval_accuracy']:.4f} ({time.time() - t0:.0f} s)", flush=True)

    args.runs = [r for r in args.runs if r != "none"]
    for name in args.runs:
        spec = RUNS[name]
        out = work / name
        t0 = time.time()
        extra = ["--unlabeled_file", str(work / "unlabelled.txt")] if spec["unlabelled"] else []
        m = distill.main(
            [
                "--teacher_name_or_path",
                str(teacher_dir),
                "--student_layers",
                spec["layers"],
                "--alpha",
                str(spec["alpha"]),
                *common,
                *extra,
                "--output_dir",
                str(out),
            ]
        )
        results["runs"][name] = summarise(spec, m, out, t0)
        print(f"{name}: {json.dumps(results['runs'][name])}", flush=True)

    if args.mpnet_teacher:
        mp_dir = work / "mpnet_teacher"
        t0 = time.time()
        mm = teacher(args.mpnet_teacher, mp_dir, "2e-5")
        results["runs"]["mpnet_teacher"] = {
            "model": args.mpnet_teacher,
            "eval_accuracy": mm["eval_accuracy"],
            "wall_s": round(time.time() - t0, 1),
        }
        print(f"mpnet teacher: accuracy {mm['eval_accuracy']:.4f} ({time.time() - t0:.0f} s)", flush=True)
        mp_runs = [("mpnet_to_minilm6", False)] + ([("mpnet_to_minilm6_unlab", True)] if args.mpnet_unlabelled else [])
        for name, unl in mp_runs:
            out = work / name
            t0 = time.time()
            extra = ["--unlabeled_file", str(work / "unlabelled.txt")] if unl else []
            m = distill.main(
                ["--teacher_name_or_path", str(mp_dir), "--student_name_or_path", args.teacher, *common, *extra]
                + ["--output_dir", str(out)]
            )
            spec = {"layers": "MiniLM-L6 (pretrained, own tokenizer)", "alpha": 0.5, "unlabelled": unl}
            results["runs"][name] = summarise(spec, m, out, t0)
            args.runs.append(name)
            print(f"{name}: {json.dumps(results['runs'][name])}", flush=True)

    print("\n| run | layers | KD | unlabelled | dev accuracy | kept | throughput x | latency x | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    t = results["runs"]["teacher"]
    print(f"| teacher | 6 | - | - | {100 * t['eval_accuracy']:.2f} | 100% | 1.00 | 1.00 | - |")
    for name in args.runs:
        r = results["runs"][name]
        print(
            f"| {name} | {r['layers']} | {'yes' if r['alpha'] > 0 else 'no'} | "
            f"{results['unlabelled'] if r['unlabelled'] else 0} | {100 * r['eval_accuracy']:.2f} | "
            f"{100 * r['accuracy_kept']:.1f}% | {r['throughput_speedup_batch32']:.2f} | "
            f"{r['latency_speedup_batch1']:.2f} | {r['train_runtime_s']:.0f} |"
        )
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(f"\nresults written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
