"""The compression report: size and CPU speed of teacher and student measured the same way, the ratios, the
``compression_report.json`` contents, the model card's distillation section and the closing log lines."""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .students import num_hidden_layers

logger = logging.getLogger(__name__)


def weights_size_mb(model: nn.Module) -> float:
    """Size of the model's weights as ``save_pretrained`` writes them (safetensors of every parameter and
    persistent buffer, tied weights once), in MB (10^6 bytes)."""
    seen, total = set(), 0
    for t in list(model.state_dict().values()):
        ptr = t.untyped_storage().data_ptr(), t.shape
        if ptr in seen:
            continue
        seen.add(ptr)
        total += t.numel() * t.element_size()
    return total / 1e6


@torch.inference_mode()
def measure_speed(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    *,
    max_seq_length: int,
    pairs: list[str] | None = None,
    n_latency: int = 100,
    batch_size: int = 32,
    n_batches: int = 16,
) -> dict:
    """CPU latency at batch 1 (median ms over ``n_latency`` texts, tokenisation included) and throughput at
    ``batch_size`` (samples/s over ``n_batches`` batches, tokenisation included), after a warm-up.

    The model is measured on the CPU with torch's current thread count, in eval mode; the same texts are used for
    every model measured, so teacher and student figures are comparable. With ``pairs`` (QA: texts are questions,
    pairs their contexts) the pair is cut to ``max_seq_length`` from the context side (one window each)."""
    device = next(model.parameters()).device
    model = model.to("cpu").eval()
    n_pool = max(n_latency, batch_size * n_batches)
    pool = [(texts[i % len(texts)], pairs[i % len(texts)] if pairs else None) for i in range(n_pool)]

    def forward(batch):
        firsts = [a for a, _ in batch]
        seconds = [b for _, b in batch] if pairs else None
        enc = tokenizer(
            firsts,
            seconds,
            truncation="only_second" if pairs else True,
            max_length=max_seq_length,
            padding=True,
            return_tensors="pt",
        )
        model(**enc)

    for t in pool[:4]:
        forward([t])
    forward(pool[:batch_size])
    lat = []
    for t in pool[:n_latency]:
        t0 = time.perf_counter()
        forward([t])
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for b in range(n_batches):
        forward(pool[b * batch_size : (b + 1) * batch_size])
    elapsed = time.perf_counter() - t0
    model.to(device)
    return {
        "latency_ms_batch1": round(1000 * statistics.median(lat), 3),
        f"throughput_samples_per_s_batch{batch_size}": round(batch_size * n_batches / elapsed, 2),
        "threads": torch.get_num_threads(),
    }


def compression_markdown(report: dict) -> str:
    """The model card's distillation section: how the student was trained and the teacher/student table."""
    t, s, r, d = report["teacher"], report["student"], report["ratios"], report["distillation"]
    rows = [
        ("parameters", f"{t['parameters']:,}", f"{s['parameters']:,}", f"{r['parameters']:.2f}x smaller"),
        ("layers", t["layers"], s["layers"], ""),
        ("weights (MB)", f"{t['weights_mb']:.1f}", f"{s['weights_mb']:.1f}", f"{r['weights_mb']:.2f}x smaller"),
    ]
    if "latency_ms_batch1" in s:
        rows.append(
            (
                "CPU latency, batch 1 (ms)",
                f"{t['latency_ms_batch1']:.1f}",
                f"{s['latency_ms_batch1']:.1f}",
                f"{r['latency_speedup_batch1']:.2f}x faster",
            )
        )
        rows.append(
            (
                "CPU throughput, batch 32 (samples/s)",
                f"{t['throughput_samples_per_s_batch32']:.1f}",
                f"{s['throughput_samples_per_s_batch32']:.1f}",
                f"{r['throughput_speedup_batch32']:.2f}x",
            )
        )
    for k, v in (t.get("metrics") or {}).items():
        sv = (s.get("metrics") or {}).get(k)
        kept = f"{100 * sv / v:.1f}% kept" if sv is not None and v else ""
        rows.append((k, f"{v:.4f}", f"{sv:.4f}" if sv is not None else "-", kept))
    table = "\n".join(f"| {a} | {b} | {c} | {e} |" for a, b, c, e in rows)
    layers = f"teacher layers {d['student_layers']}" if d.get("student_layers") else "a pretrained student"
    extra = []
    if d.get("hidden_weight"):
        extra.append(f"hidden-state MSE x{d['hidden_weight']}")
    if d.get("attention_weight"):
        extra.append(f"attention KL x{d['attention_weight']}")
    return f"""
## Distillation

Distilled from the `{t["model"]}` teacher ({d["teacher_kind"]}) into {layers}: loss = {d["alpha"]} x KD
(T={d["temperature"]}) + {round(1 - d["alpha"], 4)} x cross-entropy{"".join(" + " + e for e in extra)}, on
{d["labelled_train_rows"]:,} labelled and {d["unlabelled_train_rows"]:,} unlabelled (soft labels only) examples.
Teacher and student measured the same way in the same run (CPU, {report["machine"]["torch_threads"]} threads;
`compression_report.json`):

| | teacher | student | ratio |
|---|---|---|---|
{table}
"""


def describe_model(
    model: nn.Module,
    tokenizer,
    *,
    name: str,
    metrics: dict,
    max_seq_length: int,
    speed_texts: list[str] | None,
    speed_pairs: list[str] | None = None,
) -> dict:
    """One side of the compression report: size, held-out ``metrics``, and (with ``speed_texts``) CPU speed."""
    side = {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": num_hidden_layers(model.config),
        "weights_mb": round(weights_size_mb(model), 2),
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    if speed_texts:
        logger.info("measuring %s: CPU latency and throughput", name)
        side.update(measure_speed(model, tokenizer, speed_texts, pairs=speed_pairs, max_seq_length=max_seq_length))
    return side


def compression_report(sides: dict, distill_info: dict, *, main_metric: str | None) -> dict:
    """``compression_report.json``: both sides as measured, how the student was trained, and the ratios."""
    t, s = sides["teacher"], sides["student"]
    ratios = {
        "parameters": round(t["parameters"] / s["parameters"], 3),
        "weights_mb": round(t["weights_mb"] / s["weights_mb"], 3),
    }
    if "latency_ms_batch1" in s:
        ratios["latency_speedup_batch1"] = round(t["latency_ms_batch1"] / s["latency_ms_batch1"], 3)
        ratios["throughput_speedup_batch32"] = round(
            s["throughput_samples_per_s_batch32"] / t["throughput_samples_per_s_batch32"], 3
        )
    report = {"teacher": t, "student": s, "distillation": distill_info, "ratios": ratios}
    if main_metric:
        t_main, s_main = t["metrics"].get(main_metric), s["metrics"].get(main_metric)
        ratios["metric_kept"] = round(s_main / t_main, 4) if t_main else None
        report["main_metric"] = main_metric
    report["machine"] = {"device": "cpu", "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    return report


def log_summary(report: dict, output_dir: str) -> None:
    key = report.get("main_metric")
    if key:
        t, s = report["teacher"]["metrics"][key], report["student"]["metrics"][key]
        logger.info(
            "student %s=%.4f, teacher %.4f (%.1f%% kept)", key, s, t, 100 * (report["ratios"]["metric_kept"] or 0)
        )
    if "throughput_speedup_batch32" in report["ratios"]:
        logger.info(
            "CPU: throughput x%.2f at batch 32, latency x%.2f at batch 1; %.2fx fewer parameters",
            report["ratios"]["throughput_speedup_batch32"],
            report["ratios"]["latency_speedup_batch1"],
            report["ratios"]["parameters"],
        )
    logger.info("output written to %s", os.path.abspath(output_dir))


def speed_rows(dd, n: int = 256):
    """The rows speed is measured on: the first ``n`` of the first held-out split (validation, test, else train)."""
    split = next(dd[s] for s in ("validation", "test", "train") if s in dd)
    return split.select(range(min(n, len(split))))


@dataclass
class Compression:
    """`nlp_transfer.run.finish`'s ``extras`` for a distillation run: teacher and plain trained student measured
    the same way, in this process, on the same inputs (rank 0). After the call, ``report`` holds
    ``compression_report.json`` (for `log_summary`).

    Args:
        pair (`setup.Pair`), args (`DistillArguments`): the run's teacher, student and options.
        dd (`dict`): the splits (speed is measured on `speed_rows`).
        metrics (`dict`), teacher_metrics (`dict`): the student's and the teacher's held-out metrics.
        task (`str`): how the report names the task.
        keys (`tuple`): the metric names the report compares; ``main_key`` is the one ``metric_kept`` is about.
        lengths (`tuple[int, int]`): the teacher's and the student's truncation lengths.
        columns (`tuple[str, str | None]`): the columns measured (text, and QA's context as the pair).
        rows (`tuple[int, int]`): labelled and unlabelled training rows.
    """

    pair: Any
    args: Any
    dd: dict
    metrics: dict
    teacher_metrics: dict
    task: str
    keys: tuple
    main_key: str
    lengths: tuple
    columns: tuple
    rows: tuple
    report: dict | None = None

    def __call__(self, model):
        import copy

        from peft import PeftModel

        from ..run import Extras

        pair, args = self.pair, self.args
        prefix = "eval" if "validation" in self.dd else ("test" if "test" in self.dd else None)
        wanted = {f"{prefix}_{k}" for k in self.keys}
        rows = speed_rows(self.dd)
        texts = list(rows[self.columns[0]]) if args.measure_speed else None
        pairs = list(rows[self.columns[1]]) if self.columns[1] and args.measure_speed else None
        plain = copy.deepcopy(model).merge_and_unload() if isinstance(model, PeftModel) else model

        def side(m, tok, name, source, length):
            held_out = {k: v for k, v in source.items() if k in wanted}
            return describe_model(
                m, tok, name=name, metrics=held_out, max_seq_length=length, speed_texts=texts, speed_pairs=pairs
            )

        sides = {
            "teacher": side(pair.teacher, pair.teacher_tok, args.teacher_name_or_path, self.teacher_metrics,
                            self.lengths[0]),
            "student": side(plain, pair.student_tok, pair.label, self.metrics, self.lengths[1]),
        }  # fmt: skip
        info = {
            "task": self.task,
            "temperature": args.temperature,
            "alpha": args.alpha,
            "hidden_weight": args.hidden_weight,
            "attention_weight": args.attention_weight,
            "student_layers": pair.kept,
            "layer_map": pair.layer_map if pair.live else None,
            "same_tokenizer": pair.same_tokenizer,
            "labelled_train_rows": self.rows[0],
            "unlabelled_train_rows": self.rows[1],
            "teacher_kind": pair.teacher_info["kind"],
        }
        comp = compression_report(sides, info, main_metric=f"{prefix}_{self.main_key}" if prefix else None)
        metrics = {}
        if prefix:
            metrics.update({f"teacher_{k}": v for k, v in self.teacher_metrics.items()})
            metrics["teacher_metric_kept"] = comp["ratios"]["metric_kept"]
        if "throughput_speedup_batch32" in comp["ratios"]:
            metrics["throughput_speedup_batch32"] = comp["ratios"]["throughput_speedup_batch32"]
        self.report = comp
        return Extras(
            files={"compression_report.json": comp}, metrics=metrics, card_section=compression_markdown(comp)
        )
