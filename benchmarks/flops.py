"""Achieved training FLOP/s of the classify recipe vs this CPU's measured matmul peak.

    python benchmarks/flops.py           # ~1 min; reads benchmarks/classify_speed.json (run that first)
    python benchmarks/flops.py --smoke   # one timing per peak, nothing written (tests/slow)

1. Peak: the best of 5 timed ``torch.mm`` of two 1024x1024 matrices, fp32 and bf16, with all cores' threads, and
   the same for the shapes the recipe's training actually multiplies (a batch of 16 rows of ~14 tokens through a
   384 -> 1536 feed-forward layer) to show what small matrices get.
2. Achieved: classify_speed.json's training runs (plain = padded to 128, dynamic, recipe = dynamic + length-grouped)
   converted to FLOP/s with the usual count for a transformer encoder: per sequence of (padded) length s,
   3 x (2 N s + 4 L s^2 d) — forward + backward of the N non-embedding weights plus the attention products
   (L layers, width d) — over the padded tokens it executed. "Useful" FLOP/s counts only the real (unpadded)
   tokens, what the job needed. The attention term uses each run's mean padded length (exact for plain).

Writes benchmarks/results/flops.json.
"""

import json
import os
import sys
import time

import accuracy

HERE = accuracy.HERE


def peak(dtype, m, k, n, repeat=5):
    """GFLOP/s of the best of ``repeat`` timings (each ~0.5 s of back-to-back products, at least one product)."""
    import torch

    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    t = time.perf_counter()
    torch.mm(a, b)  # warm-up, and a first estimate of the cost (bf16 without hardware support is ~100x slower)
    one = time.perf_counter() - t
    reps = max(1, int(0.5 / max(one, 1e-6)))
    best = float("inf")
    for _ in range(repeat if one < 1 else 1):
        t = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * m * k * n / best / 1e9


def main():
    smoke = "--smoke" in sys.argv[1:]
    accuracy.require_shared()
    import torch
    from transformers import AutoConfig, AutoModel

    from nlp_transfer.data import load_raw_datasets, prepare_classification, tokenize_classification
    from nlp_transfer.modeling import load_tokenizer, resolve_model_path

    torch.set_num_threads(os.cpu_count() or 1)
    peaks = {f"{name} {dt}": round(peak(getattr(torch, dt), *shape, repeat=1 if smoke else 5), 1)
             for name, shape in (("1024^3", (1024, 1024, 1024)), ("recipe FFN 224x384x1536", (224, 384, 1536)))
             for dt in ("float32", "bfloat16")}  # fmt: skip
    print("peak GFLOP/s:", peaks, flush=True)
    capability = {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                  "onednn_bf16_supported": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}  # fmt: skip

    with open(os.path.join(HERE, "classify_speed.json")) as f:
        speed = json.load(f)
    args = speed["args"]
    path = resolve_model_path(args["model"])
    cfg = AutoConfig.from_pretrained(path)
    model = AutoModel.from_config(cfg)
    emb = sum(p.numel() for n, p in model.named_parameters() if n.startswith("embeddings."))
    n_nonemb = sum(p.numel() for p in model.parameters()) - emb
    L, d = cfg.num_hidden_layers, cfg.hidden_size
    # the real tokens of the same rows (classify_speed's seeded sample, first seed)
    sst2 = os.path.join(accuracy.SHARED, "sst2")
    raw = load_raw_datasets(
        train_file=os.path.join(sst2, "train.tsv.gz"), validation_file=os.path.join(sst2, "dev.tsv.gz")
    )
    dd, _ = prepare_classification(
        raw, text_column="sentence", max_train_samples=args["train_samples"], seed=args["seeds"][0]
    )
    tok = tokenize_classification(dd, load_tokenizer(path), max_seq_length=args["max_seq_length"])
    real = sum(tok["train"]["length"]) * args["epochs"]
    rows = len(tok["train"]) * args["epochs"]

    out = {}
    for variant, s in speed["summary"].items():
        padded = s["padded_tokens_per_epoch"] * args["epochs"]
        s_mean = padded / rows

        def flops(tokens, s_len):
            return 3 * (2 * n_nonemb * tokens + 4 * L * s_len * d * tokens)

        achieved = flops(padded, s_mean) / s["train_wall_s"] / 1e9
        useful = flops(real, real / rows) / s["train_wall_s"] / 1e9
        out[variant] = {
            "train_wall_s": round(s["train_wall_s"], 1),
            "mean_padded_length": round(s_mean, 1),
            "achieved_gflops": round(achieved, 1),
            "useful_gflops": round(useful, 1),
            "achieved_fraction_of_bf16_peak": round(achieved / peaks["1024^3 bfloat16"], 3),
            "achieved_fraction_of_fp32_peak": round(achieved / peaks["1024^3 float32"], 3),
        }
        print(variant, out[variant], flush=True)
    result = {
        "benchmark": "achieved training FLOP/s vs matmul peak",
        "command": "python benchmarks/flops.py  (after: " + speed["command"] + ")",
        "machine": accuracy.machine(),
        "model": {"name": args["model"], "non_embedding_params": n_nonemb, "layers": L, "hidden": d},
        "real_tokens_per_epoch": real / args["epochs"],
        "peak_gflops": peaks,
        "cpu": capability,
        "runs": out,
    }
    if smoke:
        return print(json.dumps(result["runs"]))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "flops.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
