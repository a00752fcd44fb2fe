import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import helpers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    return helpers.make_tiny_bert(str(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    return helpers.make_tiny_gpt2(str(tmp_path_factory.mktemp("tiny-gpt2")))


@pytest.fixture(scope="session")
def stories260k():
    path = SHARED / "models" / "stories260k"
    if not (path / "model.safetensors").is_file():
        pytest.skip("../shared/models/stories260k is not here (it is only beside the repo in CI and dev machines)")
    return str(path)


@pytest.fixture(scope="session")
def sentiment_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    train = helpers.write_rows(str(d / "train.csv"), helpers.sentiment_rows(48, seed=1))
    dev = helpers.write_rows(str(d / "dev.csv"), helpers.sentiment_rows(16, seed=2))
    return train, dev


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # builtin datasets are materialised under NLP_TRANSFER_CACHE; keep each test's copy private
    monkeypatch.setenv("NLP_TRANSFER_CACHE", str(tmp_path / "nlp_transfer_cache"))
