"""Domain shift: labelled movie-review phrases (SST-2) as the source, tweets as the target domain.

    python benchmarks/domain_shift.py                        # every route, seeds 42-44
    python benchmarks/domain_shift.py --routes source_only dann --seeds 42
    python benchmarks/domain_shift.py --smoke                # tiny budget: proves the script runs (tests/slow)

Source: a seeded sample of SST-2 training phrases (../shared/datasets/sst2), labels negative/positive, validated on
the SST-2 dev set. Target: the CrowdFlower "Data for Everyone" tweets that the sentiment recipe's default uses
(builtin:crowdflower_tweets, installed with nlp_transfer), negative/positive only. The target's labels are used only
to score: a seeded, held-out set of tweets is every route's --test_file; a disjoint pool of tweets gives the
unlabelled target text (its labels dropped), and, for the in-domain upper bound only, the same number of labelled
tweets as the source budget.

Routes (all MiniLM-L6, full fine-tuning, the same source budget and seed):

    source_only   classify on the source alone
    tapt          pretrain (masked LM) on the target text, then classify from that checkpoint on the source
    dann          classify --domain_adaptation dann --target_file <target text>
    consistency   classify --domain_adaptation consistency --target_file <target text>
    self_train    distill: the source-only model as teacher, a copy of it as student, target text as --unlabeled_file
    tapt_self_train  tapt's fine-tuned model as teacher and student of self_train (TAPT + the best other route)
    tapt_dann     tapt's checkpoint + dann (not run by default: DANN hurts here, see benchmarks/README.md)
    dann_prior_oracle  DIAGNOSTIC, not a method: dann whose target text is subsampled, with the target labels,
                  to the source's class balance (tests whether label shift is what breaks dann)
    tapt_in_domain  TAPT without a shift: pretrain on the *source* training text (labels dropped), fine-tune on the
                  source; its figure of interest is the source dev accuracy, next to source_only's
    in_domain     classify on labelled target tweets (the upper bound)

Reported per route: target accuracy and macro-F1 (mean +- std over seeds), wall time, and the share of the
source-only -> in-domain gap closed. Writes benchmarks/results/domain_shift.json (every run, its command, the
machine).
"""

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time

import accuracy  # benchmarks/accuracy.py: machine(), mean_std(), save(), SHARED, MODEL

HERE = os.path.dirname(os.path.abspath(__file__))
ROUTES = ("source_only", "tapt", "dann", "consistency", "self_train", "tapt_self_train", "tapt_dann",
          "dann_prior_oracle", "tapt_in_domain", "in_domain")  # fmt: skip
DEFAULT_ROUTES = tuple(r for r in ROUTES if r != "tapt_dann")
SOURCE_ROWS, TARGET_TEXTS, TEST_TWEETS = 2000, 2000, 1000
BUDGET = ["--max_seq_length", "64", "--num_train_epochs", "2", "--per_device_train_batch_size", "16",
          "--learning_rate", "5e-5", "--save_strategy", "no", "--eval_strategy", "no",
          "--logging_steps", "25"]  # fmt: skip
PRETRAIN = ["--max_seq_length", "64", "--num_train_epochs", "3", "--per_device_train_batch_size", "32",
            "--save_strategy", "no", "--logging_steps", "25"]  # fmt: skip


def tweets() -> list[tuple[str, str]]:
    sys.path.insert(0, os.path.dirname(HERE))
    from nlp_transfer import assets

    with open(assets.builtin_dataset_file("crowdflower_tweets"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [(" ".join(r["text"].split()), r["label"]) for r in rows if r["label"] in ("negative", "positive")]


def prepare(work: str, seed: int, smoke: bool) -> dict:
    """Write the seed's source csv, target text, labelled-target csv and target test csv into ``work``."""
    n_src, n_tgt, n_test = (64, 64, 48) if smoke else (SOURCE_ROWS, TARGET_TEXTS, TEST_TWEETS)
    rng = random.Random(seed)
    with gzip.open(os.path.join(accuracy.SHARED, "sst2", "train.tsv.gz"), "rt", encoding="utf-8") as f:
        src = [ln.rstrip("\n").split("\t") for ln in f][1:]
    src = [(t.strip(), "positive" if y == "1" else "negative") for t, y in rng.sample(src, n_src)]
    with gzip.open(os.path.join(accuracy.SHARED, "sst2", "dev.tsv.gz"), "rt", encoding="utf-8") as f:
        dev = [
            (t.strip(), "positive" if y == "1" else "negative")
            for t, y in (ln.rstrip("\n").split("\t") for ln in f)
            if y in ("0", "1")
        ]
    tw = tweets()
    rng.shuffle(tw)
    test, pool, labelled = tw[:n_test], tw[n_test : n_test + n_tgt], tw[n_test + n_tgt : n_test + 2 * n_tgt]
    files = {
        "source": accuracy._write(os.path.join(work, "source.csv"), ["text", "label"], src),
        "source_dev": accuracy._write(
            os.path.join(work, "source_dev.csv"), ["text", "label"], dev[: 64 if smoke else None]
        ),
        "target_test": accuracy._write(os.path.join(work, "target_test.csv"), ["text", "label"], test),
        "target_labelled": accuracy._write(os.path.join(work, "target_labelled.csv"), ["text", "label"], labelled),
        "target_text": os.path.join(work, "target.txt"),
        "target_prior": os.path.join(work, "target_prior.txt"),
        "source_text": os.path.join(work, "source.txt"),
    }
    with open(files["target_text"], "w", encoding="utf-8") as f:
        f.write("\n".join(t for t, _ in pool) + "\n")
    # the diagnostic's target text: the pool's positives and enough of its negatives for the source's class balance
    share = sum(y == "positive" for _, y in src) / len(src)
    pos, neg = [t for t, y in pool if y == "positive"], [t for t, y in pool if y == "negative"]
    prior = pos + neg[: round(len(pos) * (1 - share) / share)]
    rng.shuffle(prior)
    with open(files["target_prior"], "w", encoding="utf-8") as f:
        f.write("\n".join(prior) + "\n")
    with open(files["source_text"], "w", encoding="utf-8") as f:
        f.write("\n".join(t for t, _ in src) + "\n")
    return files


def recipe(name: str, args: list[str], out: str) -> tuple[dict, float]:
    import subprocess

    cmd = [sys.executable, "-m", f"nlp_transfer.recipes.{name}", *args, "--output_dir", out, "--overwrite_output_dir"]
    t = time.time()
    with open(out + ".log", "w") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - t
    if code != 0:
        with open(out + ".log") as f:
            sys.exit(f"domain_shift: {name} failed: {f.read().strip().splitlines()[-1]}")
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f), wall


def run_route(route: str, files: dict, work: str, seed: int, smoke: bool, done: dict, weight=None) -> dict:
    """One route for one seed; ``done`` holds this seed's earlier outputs (source-only model, TAPT checkpoint)."""
    common = [*BUDGET, "--seed", str(seed), "--test_file", files["target_test"]]
    if smoke:
        common += ["--num_train_epochs", "1", "--max_seq_length", "32"]
    classify = ["--validation_file", files["source_dev"], *common]
    model = accuracy.MODEL
    wall = 0.0
    if route in ("tapt", "tapt_dann", "tapt_in_domain"):
        key, text = ("tapt_source", "source_text") if route == "tapt_in_domain" else ("tapt", "target_text")
        if key not in done:
            pre = ["--model_name_or_path", model, "--train_file", files[text], "--seed", str(seed), *PRETRAIN]
            if smoke:
                pre += ["--num_train_epochs", "1", "--max_seq_length", "32"]
            m, w = recipe("pretrain", pre, os.path.join(work, f"pre{key}-{seed}"))
            done[key] = (os.path.join(work, f"pre{key}-{seed}"), m, w)
        model, pre_metrics, wall = done[key]
    da = {"dann": "dann", "consistency": "consistency", "tapt_dann": "dann", "dann_prior_oracle": "dann"}.get(route)
    if route in ("self_train", "tapt_self_train"):
        teacher = done["source_only" if route == "self_train" else "tapt"]
        args = ["--teacher_name_or_path", teacher, "--student_name_or_path", teacher, "--train_file", files["source"],
                "--unlabeled_file", files["target_text"], *classify, "--measure_speed", "false"]  # fmt: skip
        m, w = recipe("distill", args, os.path.join(work, f"{route}-{seed}"))
    else:
        train = files["target_labelled"] if route == "in_domain" else files["source"]
        args = ["--model_name_or_path", model, "--train_file", train, *classify]
        if da:
            text = files["target_prior" if route == "dann_prior_oracle" else "target_text"]
            args += ["--domain_adaptation", da, "--target_file", text]
            if da == "dann" and weight is not None:
                args += ["--adversarial_weight", str(weight)]
        m, w = recipe("classify", args, os.path.join(work, f"{route}-{seed}"))
        if route in ("source_only", "tapt"):
            done[route] = os.path.join(work, f"{route}-{seed}")
    shown = [("<work>/" + os.path.basename(a)) if isinstance(a, str) and a.startswith(work) else a for a in args]
    return {
        "route": route + (f"@{weight}" if da == "dann" and weight is not None else ""),
        "seed": seed,
        "accuracy": round(m["test_accuracy"], 4),
        "macro_f1": round(m["test_f1"], 4),
        "source_dev_accuracy": round(m.get("eval_accuracy", float("nan")), 4),
        "wall_s": round(wall + w, 1),
        "command": shown,
    }


def summarise(runs: list[dict]) -> dict:
    table = {}
    for route in dict.fromkeys(r["route"] for r in runs):
        rs = [r for r in runs if r["route"] == route]
        if rs:
            table[route] = {
                "accuracy": accuracy.mean_std([r["accuracy"] for r in rs]),
                "macro_f1": accuracy.mean_std([r["macro_f1"] for r in rs]),
                "source_dev_accuracy": accuracy.mean_std([r["source_dev_accuracy"] for r in rs]),
                "wall_s": round(sum(r["wall_s"] for r in rs) / len(rs), 1),
                "seeds": [r["seed"] for r in rs],
            }
    lo, hi = table.get("source_only"), table.get("in_domain")
    if lo and hi and hi["accuracy"]["mean"] != lo["accuracy"]["mean"]:
        for row in table.values():
            gap = hi["accuracy"]["mean"] - lo["accuracy"]["mean"]
            row["gap_closed"] = round((row["accuracy"]["mean"] - lo["accuracy"]["mean"]) / gap, 3)
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--routes", nargs="+", default=list(DEFAULT_ROUTES), choices=ROUTES)
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--adversarial_weight", type=float, default=None, help="dann routes: the recipe's option")
    p.add_argument("--out", default=os.path.join(HERE, "results", "domain_shift.json"))
    p.add_argument(
        "--add", action="store_true", help="keep --out's earlier runs, replacing those of a (route, seed) rerun now"
    )
    a = p.parse_args()
    accuracy.require_shared()
    routes = list(a.routes)
    if "self_train" in routes and "source_only" not in routes:
        routes.insert(0, "source_only")  # the teacher
    if "tapt_self_train" in routes and "tapt" not in routes:
        routes.insert(0, "tapt")
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for seed in a.seeds:
            files, done = prepare(work, seed, a.smoke), {}
            for route in sorted(routes, key=ROUTES.index):
                r = run_route(route, files, work, seed, a.smoke, done, a.adversarial_weight)
                print(json.dumps({k: v for k, v in r.items() if k != "command"}), flush=True)
                runs.append(r)
    if a.add and os.path.isfile(a.out):
        with open(a.out) as f:
            new = {(r["route"], r["seed"]) for r in runs}
            runs = [r for r in json.load(f)["runs"] if (r["route"], r["seed"]) not in new] + runs
    result = {"machine": accuracy.machine(), "smoke": a.smoke, "summary": summarise(runs), "runs": runs}
    if not a.smoke:
        accuracy.save(result, a.out)
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
