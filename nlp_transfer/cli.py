"""Command line: ``nlp-transfer <recipe> [options]`` and the error handling every recipe entry point shares.

A user-caused problem (`NLPTransferError`) prints one line, ``nlp-transfer: error: <problem and fix>``, and exits
with status 2: never a traceback. Every message is passed through `redact` first: no token is ever printed.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable

from .errors import NLPTransferError, RunInterrupted, redact

RECIPES = {
    "classify": "nlp_transfer.recipes.classify",
    "sentiment": "nlp_transfer.recipes.sentiment",
    "qa": "nlp_transfer.recipes.qa",
    "distill": "nlp_transfer.recipes.distill",
    "pretrain": "nlp_transfer.recipes.pretrain",
    "multitask": "nlp_transfer.recipes.multitask",
    "push": "nlp_transfer.hub",  # not a recipe: publishes a finished run (nlp-transfer push OUTPUT_DIR REPO_ID)
    "export": "nlp_transfer.export",  # not a recipe: a finished run's ONNX copy (nlp-transfer export OUTPUT_DIR)
}


def setup_logging(main_process: bool = True) -> None:
    """INFO for nlp_transfer on the main process, WARNING elsewhere; transformers/datasets stay at WARNING."""
    logging.basicConfig(format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    logging.getLogger("nlp_transfer").setLevel(logging.INFO if main_process else logging.WARNING)


def run_main(main: Callable[[list[str] | None], dict], argv: list[str] | None = None) -> int:
    """Run a recipe's ``main`` and turn user errors into one line on stderr and exit status 2."""
    from .artifacts.folder import release_all

    try:
        main(argv)
    except NLPTransferError as e:
        print(f"nlp-transfer: error: {redact(e)}", file=sys.stderr)
        return 2
    except RunInterrupted as e:
        print(f"nlp-transfer: {redact(e)}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("nlp-transfer: interrupted; resume with --resume_from_checkpoint true", file=sys.stderr)
        return 130
    finally:
        release_all()  # the output folder's lock, however the run ended
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: nlp-transfer <command> [options]\n\ncommands:\n" + "\n".join(f"  {r}" for r in RECIPES))
        print(
            "\n`nlp-transfer <command> --help` lists its options; `push` publishes a finished run to a hub, `export` "
            "writes its ONNX Runtime copy."
        )
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in RECIPES:
        print(f"nlp-transfer: error: unknown recipe '{name}'; choose one of: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    module = importlib.import_module(RECIPES[name])
    return run_main(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
