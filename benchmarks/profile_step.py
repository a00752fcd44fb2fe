"""Where a training step of the classify recipe spends its time on CPU (torch.profiler), by operator family.

    python benchmarks/profile_step.py                       # recipe defaults: SST-2, batch 16, sdpa attention
    python benchmarks/profile_step.py --attn eager          # the same with eager attention
    python benchmarks/profile_step.py --pad_to_max_length   # every row padded to 128 (HF example default)

Trains --steps steps (after 3 warm-up steps) of MiniLM-L6 full fine-tuning on SST-2 rows with the recipe's
collator and sampler, profiles them, and prints the share of CPU time per family: matmul (linear/addmm/mm/bmm),
attention kernels, normalisation, activations, embedding, loss, optimizer step, data loading and "other". Writes
benchmarks/results/profile_<label>.json.
"""

import argparse
import json
import os
import sys
import time

import accuracy

FAMILIES = {
    "matmul": ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear"),
    "attention": ("aten::_scaled_dot_product", "aten::scaled_dot_product", "aten::_softmax", "aten::softmax"),
    "layer_norm": ("aten::native_layer_norm",),
    "activation": ("aten::gelu", "aten::tanh", "aten::dropout", "aten::native_dropout", "aten::bernoulli"),
    "embedding": ("aten::embedding",),
    "optimizer": ("aten::_fused_adamw", "aten::_foreach"),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--pad_to_max_length", action="store_true")
    a = p.parse_args()
    accuracy.require_shared()
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, default_data_collator
    from transformers.utils import logging as hf_logging

    from nlp_transfer.data import load_raw_datasets, prepare_classification, tokenize_classification
    from nlp_transfer.modeling import load_tokenizer, resolve_model_path

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    path = resolve_model_path(accuracy.MODEL)
    sst2 = os.path.join(accuracy.SHARED, "sst2")
    raw = load_raw_datasets(train_file=os.path.join(sst2, "train.tsv.gz"))
    dd, _ = prepare_classification(raw, text_column="sentence", max_train_samples=2000, seed=42)
    tok = load_tokenizer(path)
    data = tokenize_classification(dd, tok, max_seq_length=128, pad_to_max_length=a.pad_to_max_length)["train"]
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, attn_implementation=a.attn)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    collate = default_data_collator if a.pad_to_max_length else DataCollatorWithPadding(tok)
    cols = [c for c in data.column_names if c in ("input_ids", "attention_mask", "token_type_ids", "labels", "label")]
    rows = data.select_columns(cols)
    # the recipe's length-grouped order: batches of similar length (here simply sorted chunks, shuffled)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    batches = [order[i : i + a.batch] for i in range(0, len(order), a.batch)]
    g = torch.Generator().manual_seed(0)
    batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]

    def step(ids):
        with torch.profiler.record_function("data"):
            batch = collate([rows[i] for i in ids])
            if "label" in batch:
                batch["labels"] = batch.pop("label")
        loss = model(**batch).loss
        loss.backward()
        with torch.profiler.record_function("optimizer_step"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    for ids in batches[:3]:
        step(ids)
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for ids in batches[3 : 3 + a.steps]:
            step(ids)
    wall = time.perf_counter() - t
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {k: 0.0 for k in [*FAMILIES, "other"]}
    for e in events:
        fam = next((f for f, names in FAMILIES.items() if e.key.startswith(names)), "other")
        shares[fam] += e.self_cpu_time_total
    shares = {k: round(v / total, 3) for k, v in shares.items()}
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    label = f"{a.attn}{'_pad128' if a.pad_to_max_length else ''}"
    result = {
        "benchmark": "profile of the classify recipe's training step",
        "command": "python benchmarks/profile_step.py " + " ".join(sys.argv[1:]),
        "machine": accuracy.machine(),
        "steps": a.steps,
        "batch": a.batch,
        "seconds_per_step_profiled": round(wall / a.steps, 3),
        "share_of_self_cpu_time": shares,
        "top_ops": [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / 1000 / a.steps, 1)} for e in top],
    }
    print(json.dumps(result, indent=1))
    os.makedirs(os.path.join(accuracy.HERE, "results"), exist_ok=True)
    with open(os.path.join(accuracy.HERE, "results", f"profile_{label}.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
