"""The real entry points, in a subprocess: no token is ever printed (redacted, or refused without echoing it), and
an unreachable Hub fails within seconds, or the local cache is used.

The Hub here is a closed port on 127.0.0.1 (a socket bound but never listening): nothing leaves the machine.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKEN = "hf_LeakMe0123456789abcdefGHIJKLMNOP"
PLAIN = "plain-secret-value-42"  # a token that does not look like one: only its option name gives it away


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(REPO), TRANSFORMERS_VERBOSITY="error", TOKENIZERS_PARALLELISM="false")
    env.update(OMP_NUM_THREADS="1", HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


def _run(args, env, cwd):
    start = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    return r, time.monotonic() - start


def _one_error_line(r) -> str:
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "usage:" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nlp-transfer: error:"), r.stderr[-2000:]
    return lines[0]


def _console() -> str:
    return shutil.which("nlp-transfer") or os.path.join(os.path.dirname(sys.executable), "nlp-transfer")


@pytest.mark.parametrize(
    "case, expected",
    [
        ("push_hub_token", "(--hub_token) is not accepted"),
        ("push_token_console", "(--hub_token) is not accepted"),
        ("push_unknown_hub_tokn", "unrecognized arguments: --hub_tokn=***"),
        ("push_unknown_hub_tokn_plain", "unrecognized arguments: --hub_tokn ***"),
        ("recipe_unknown_hub_tokn", "unknown argument(s): --hub_tokn=***"),
        ("recipe_unknown_hub_tokn_plain", "unknown argument(s): --hub_tokn ***"),
        ("recipe_hub_token", "(--hub_token) is not accepted"),
        ("yaml_unknown_hub_tokn", "unknown key(s)"),
        ("yaml_hub_token", "(--hub_token) is not accepted"),
    ],
)
def test_no_token_is_printed(case, expected, tmp_path):
    out, csv = str(tmp_path / "out"), str(tmp_path / "train.csv")
    Path(csv).write_text("text,label\ngood,pos\nbad,neg\n")
    secret = PLAIN if case.endswith("_plain") else TOKEN
    push = [sys.executable, "-m", "nlp_transfer.cli", "push", out, "me/model"]
    recipe = [sys.executable, "-m", "nlp_transfer.recipes.classify", "--train_file", csv, "--output_dir", out]
    config = tmp_path / "run.yaml"
    config.write_text(f"hub_{'tokn' if case == 'yaml_unknown_hub_tokn' else 'token'}: {secret}\n")
    args = {
        "push_hub_token": push + ["--hub_token", secret],
        "push_token_console": [_console(), "push", out, "me/model", f"--token={secret}"],
        "push_unknown_hub_tokn": push + [f"--hub_tokn={secret}"],
        "push_unknown_hub_tokn_plain": push + ["--hub_tokn", secret],
        "recipe_unknown_hub_tokn": recipe + [f"--hub_tokn={secret}"],
        "recipe_unknown_hub_tokn_plain": recipe + ["--hub_tokn", secret],
        "recipe_hub_token": recipe + ["--hub_token", secret],
        "yaml_unknown_hub_tokn": recipe + ["--config", str(config)],
        "yaml_hub_token": recipe + ["--config", str(config)],
    }[case]
    r, _ = _run(args, _env(HF_HUB_OFFLINE="1"), tmp_path)
    line = _one_error_line(r)
    assert expected in line, line
    assert secret not in r.stdout + r.stderr
    assert not os.path.exists(out)


# ------------------------------------------------------------------------------------- an unreachable Hub
@pytest.fixture
def closed_endpoint():
    with socket.socket() as s:  # bound and never listening: every connection is refused, at once
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("what", ["model", "dataset"])
def test_unreachable_hub_fails_within_seconds(what, closed_endpoint, tiny_bert, sentiment_files, tmp_path):
    train, _ = sentiment_files
    source = (
        ["--model_name_or_path", "some-org/some-model", "--train_file", train]
        if what == "model"
        else ["--model_name_or_path", tiny_bert, "--dataset_name", "some-org/some-data"]
    )
    env = _env(HF_ENDPOINT=closed_endpoint, HF_HOME=str(tmp_path / "hf-home"))  # online mode, an empty cache
    r, seconds = _run(
        [sys.executable, "-m", "nlp_transfer.recipes.classify", *source, "--output_dir", str(tmp_path / "out")],
        env,
        tmp_path,
    )
    print(f"{what}: exit {r.returncode} after {seconds:.1f} s")
    line = _one_error_line(r)
    name = "some-org/some-model" if what == "model" else "some-org/some-data"
    assert f"cannot reach {closed_endpoint} (" in line and f"to download the {what} '{name}'" in line, line
    assert "pass a local folder (or file) instead, or set HF_HUB_OFFLINE=1" in line, line


def test_a_cached_model_is_used_when_the_hub_is_unreachable(closed_endpoint, tiny_bert, sentiment_files, tmp_path):
    home = tmp_path / "hf-home"
    repo = home / "hub" / "models--some-org--cached-model"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_bert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    train, dev = sentiment_files
    out = tmp_path / "out"
    args = ["--model_name_or_path", "some-org/cached-model", "--train_file", train, "--validation_file", dev]
    args += ["--output_dir", str(out), "--num_train_epochs", "1", "--max_seq_length", "32", "--report_to", "none"]
    args += ["--save_strategy", "no"]
    env = _env(HF_ENDPOINT=closed_endpoint, HF_HOME=str(home))
    r, seconds = _run([sys.executable, "-m", "nlp_transfer.recipes.classify", *args], env, tmp_path)
    print(f"cached model: exit {r.returncode} after {seconds:.1f} s")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "using the model some-org/cached-model from the local Hugging Face cache" in r.stderr
    assert (out / "metrics.json").is_file() and (out / "model.safetensors").is_file()
