"""The one error type users can cause; the CLI turns it into a one-line message and exit code 2."""

from __future__ import annotations

import os
import re


class NLPTransferError(Exception):
    """A problem with the user's input or environment, with the fix in the message.

    Raised for bad paths, missing columns, unknown labels, unreachable models and similar; never for bugs.
    """


class RunInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; the message says how to resume (exit status 143)."""


# A Hugging Face user or organisation token, wherever it appears.
_TOKEN = re.compile(r"\b(?:hf|api_org)_[A-Za-z0-9]{8,}")
# The value of an option or key whose name looks like "token" (typos included: hub_tokn, tkn): ``--name=value``,
# ``--name value``, ``name=value``, YAML/dict ``name: value``. Not the ``--name: ...`` of argparse's messages.
_NAME = r"[A-Za-z0-9_-]*(?:tok|tkn)[A-Za-z0-9_-]*"
_OPTION = re.compile(
    rf"(?<![\w-])(?:--?(?P<flag>{_NAME})(?P<sep>=|\s+)|['\"]?(?P<key>(?!-){_NAME})['\"]?(?:=|:\s*))"
    r"['\"]?(?P<value>[^\s'\",;()\[\]{}]+)",
    re.IGNORECASE,
)
# names with "tok" in them that hold no secret (and are common in messages): token counts, tokenizers, token ids
_NOT_SECRET = re.compile(r"tokeniz|tokens|_ids?$", re.IGNORECASE)
_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def _hide(m: re.Match) -> str:
    name = m.group("flag") or m.group("key")
    if _NOT_SECRET.search(name) or (m.group("sep") not in (None, "=") and m.group("value").startswith("-")):
        return m.group(0)  # a harmless name, or ``--hub_tokn --next_flag``: the next word is an option, not a value
    return m.group(0)[: m.start("value") - m.start(0)] + "***"


def redact(text: str) -> str:
    """``text`` with anything that looks like a Hugging Face token, and the value of any option or key named like
    ``token`` (``--hub_token X``, ``--hub_tokn=X``, ``hub_token: X``), replaced by ``***``; also the token in
    ``HF_TOKEN``, whatever its form. For every message that may quote the command line, a config file or a server.

    Keep option names out of prose in messages (``--hub_token is ...`` would read as an option and its value):
    write ``(--hub_token)`` or quote it in backticks instead.
    """
    text = _OPTION.sub(_hide, str(text))
    text = _TOKEN.sub("***", text)
    for var in _TOKEN_ENV:
        secret = os.environ.get(var, "").strip()
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    return text
