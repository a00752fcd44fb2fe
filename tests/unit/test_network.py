"""`network.require_hub`: one quick probe before a Hub download; fail fast, or use the local cache."""

import os
import socket

import pytest
from huggingface_hub import constants

from nlp_transfer import network
from nlp_transfer.errors import NLPTransferError


@pytest.fixture
def online(monkeypatch):
    """Online mode, restored afterwards (tests/conftest.py sets HF_HUB_OFFLINE=1 for everything else)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    probe = network.unreachable  # the real one: tests may replace it
    probe.cache_clear()
    yield
    probe.cache_clear()


def _no_probe(endpoint):
    raise AssertionError("offline mode must not probe the network")


def test_offline_mode_skips_the_probe(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(network, "unreachable", _no_probe)
    network.require_hub("some-org/some-model")
    network.require_hub("some-org/some-data", "dataset")


def test_unreachable_hub_fails_with_the_fix(online, monkeypatch, tmp_path):
    monkeypatch.setattr(network, "unreachable", lambda endpoint: "ConnectError: refused")
    with pytest.raises(
        NLPTransferError, match="cannot reach .* to download the model 'some-org/some-model'.*HF_HUB_OFFLINE=1"
    ):
        network.require_hub("some-org/some-model")
    with pytest.raises(NLPTransferError, match="the dataset 'some-org/some-data'"):
        network.require_hub("some-org/some-data", "dataset", str(tmp_path))


def test_cached_repo_switches_to_offline_mode_instead_of_failing(online, monkeypatch, tmp_path):
    import datasets.config

    monkeypatch.setattr(network, "unreachable", lambda endpoint: "ConnectError: refused")
    monkeypatch.setattr(network, "in_cache", lambda repo_id, repo_type="model", cache_dir=None: True)
    network.require_hub("some-org/cached-model")
    assert constants.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "1" and datasets.config.HF_HUB_OFFLINE


def test_in_cache_reads_the_hub_and_datasets_caches(tmp_path):
    snapshot = tmp_path / "hub" / "models--some-org--cached" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--some-org--cached" / "refs").mkdir()
    (tmp_path / "hub" / "models--some-org--cached" / "refs" / "main").write_text("a" * 40)
    assert network.in_cache("some-org/cached", cache_dir=str(tmp_path / "hub"))
    assert not network.in_cache("some-org/other", cache_dir=str(tmp_path / "hub"))
    (tmp_path / "ds" / "some-org___my_data" / "default" / "0.0.0" / "abc").mkdir(parents=True)
    assert network.in_cache("some-org/MyData", "dataset", str(tmp_path / "ds"))
    assert not network.in_cache("some-org/other", "dataset", str(tmp_path / "ds"))


def test_probe_of_a_closed_port_is_asked_once(online):
    with socket.socket() as s:  # bound, never listening: connections to it are refused
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
        reason = network.unreachable(endpoint)
        assert reason and "Connect" in reason
        assert network.unreachable(endpoint) == reason and network.unreachable.cache_info().hits == 1
