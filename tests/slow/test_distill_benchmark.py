"""Slow: the distillation benchmark's smoke budget runs end to end on real MiniLM and real SST-2 (``-m slow``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SST2 = REPO.parent / "shared" / "datasets" / "sst2"


@pytest.mark.slow
def test_distill_sst2_smoke(tmp_path):
    if not (SST2 / "train.tsv.gz").is_file():
        pytest.skip("../shared/datasets/sst2 is not here (it is only beside the repo in CI and dev machines)")
    out = tmp_path / "results.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "distill_sst2.py"), "--smoke", "--work", str(tmp_path / "w")]
        + ["--results", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert set(res["runs"]) == {"teacher", "kd_l3", "nokd_l3", "kd_l2_unlab"}
    for name in ("kd_l3", "nokd_l3", "kd_l2_unlab"):
        run = res["runs"][name]
        assert 0 < run["accuracy_kept"] and run["throughput_speedup_batch32"] > 1.0
