"""nlp_transfer: transfer learning for NLP on the Hugging Face stack."""

from .errors import NLPTransferError

__version__ = "0.1.0"

__all__ = ["NLPTransferError", "__version__"]
