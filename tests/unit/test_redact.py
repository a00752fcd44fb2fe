"""`errors.redact`: no token in any message."""

import pytest

from nlp_transfer.errors import redact

TOKEN = "hf_AbCdEfGh0123456789xyzXYZ"


@pytest.mark.parametrize(
    "text, secret",
    [
        (f"unknown argument(s): --hub_tokn={TOKEN}; see --help", TOKEN),
        ("unknown argument(s): --hub_tokn s3cret-value (did you mean --hub_token?); see --help", "s3cret-value"),
        ("--token plainsecret", "plainsecret"),
        ("--hub-token=abc123", "abc123"),
        ("hub_token: abc123", "abc123"),
        ("{'hub_tokn': 'abc123'}", "abc123"),
        (f"argument --num_train_epochs: invalid float value: '{TOKEN}'", TOKEN),
        ("401 for api_org_AbCdEfGh0123456789 at the hub", "api_org_AbCdEfGh0123456789"),
    ],
)
def test_redact_hides_tokens_and_token_option_values(text, secret):
    out = redact(text)
    assert secret not in out and "***" in out


@pytest.mark.parametrize(
    "text",
    [
        "a token on the command line or in a config file (--hub_token) is not accepted: set HF_TOKEN",
        "argument --hub_token: expected one argument",
        "--tokenizer_name bert-base-uncased has no pad token; pad_token_id=0, --max_new_tokens 5",
        "unknown argument(s): --hub_tokn --learning_rate 1; see --help",
        "hf_hub_download failed; HF_HUB_OFFLINE=1",
    ],
)
def test_redact_leaves_messages_without_secrets_alone(text):
    assert redact(text) == text


def test_redact_hides_the_token_in_the_environment(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "not-hf-shaped-secret")
    assert redact("server said: bad credentials not-hf-shaped-secret") == "server said: bad credentials ***"
