"""The one error type users can cause; the CLI turns it into a one-line message and exit code 2."""


class NLPTransferError(Exception):
    """A problem with the user's input or environment, with the fix in the message.

    Raised for bad paths, missing columns, unknown labels, unreachable models and similar; never for bugs.
    """


class RunInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; the message says how to resume (exit status 143)."""
