"""Slow: each benchmark script's smoke budget runs end to end on the real packaged MiniLM (``-m slow``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "datasets"


def _run(*args, timeout=1200):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout


def _need_shared():
    if not SHARED.is_dir():
        pytest.skip("../shared/datasets is not here (it is only beside the repo in CI and dev machines)")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["trec", "cola", "mrpc", "rte", "ag_news"])
def test_accuracy_smoke(task):
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "accuracy.py"), task, "--smoke")
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary and all(0 <= v["mean"] <= 1 or k == "mcc" for k, v in summary.items())


@pytest.mark.slow
def test_scale_speed_smoke(tmp_path):
    out = tmp_path / "speed.json"
    _run(str(REPO / "benchmarks" / "scale_speed.py"), "--samples", "32", "--precisions", "fp32", "--no-ddp",
         "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert res["runs"]["fp32 1proc x batch 16"]["train_samples_per_second"] > 0


@pytest.mark.slow
def test_strategies_smoke():
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "strategies.py"), "--smoke", "--only", "frozen", "lora_r2")
    acc = json.loads(out.strip().splitlines()[-1])
    assert set(acc) == {"frozen", "lora_r2"} and all(0 <= v <= 1 for v in acc.values())
    assert "trainable_percent" in out


@pytest.mark.slow
def test_few_shot_smoke():
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "few_shot.py"), "--smoke", "--datasets", "sst2", "--shots", "8",
               "--seeds", "42")  # fmt: skip
    summary = json.loads(out.strip().splitlines()[-1])
    assert set(summary) == {"sst2 K=8 pretrained", "sst2 K=8 scratch"}


@pytest.mark.slow
def test_inference_speed_smoke():
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "inference_speed.py"), "--smoke")
    assert '"plain qa"' in out and '"classify lora merged"' in out and '"qa full onnx fp32"' in out


@pytest.mark.slow
def test_precision_smoke():
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "precision.py"), "--smoke")
    assert '"speed_ratio_auto_to_fp32"' in out


@pytest.mark.slow
def test_flops_smoke():
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "flops.py"), "--smoke")
    runs = json.loads(out.strip().splitlines()[-1])
    assert set(runs) == {"plain", "dynamic", "recipe"} and all(r["achieved_gflops"] > 0 for r in runs.values())


@pytest.mark.slow
def test_domain_shift_smoke():
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "domain_shift.py"), "--smoke", "--seeds", "42")
    summary = json.loads(out.strip().splitlines()[-1])
    assert set(summary) >= {"source_only", "tapt", "dann", "consistency", "self_train", "tapt_self_train", "in_domain"}
    assert all(0 <= row["accuracy"]["mean"] <= 1 for row in summary.values())


@pytest.mark.slow
def test_few_shot_methods_smoke():
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "few_shot.py"), "--smoke", "--datasets", "sst2", "--shots", "8", "--seeds",
               "42", "--methods", "frozen_model", "frozen_mean", "contrastive", "setfit")  # fmt: skip
    assert "K=8 contrastive" in out


@pytest.mark.slow
def test_multitask_smoke():
    _need_shared()
    out = _run(str(REPO / "benchmarks" / "multitask.py"), "--smoke", "--routes", "joint", "mrpc_rte")
    summary = json.loads(out[out.rindex("\n{\n") + 1 :])  # the summary: the last, indented JSON
    assert {"joint rte accuracy", "joint cola mcc", "mrpc_rte rte accuracy", "alone mrpc accuracy"} <= set(summary)
