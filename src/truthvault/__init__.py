"""truthvault: a local-first, cloud-augmented vault in which the user is the source of truth."""

from __future__ import annotations

from .errors import TruthvaultError
from .truth import TruthLevel, is_higher_truth

__all__ = ["TruthLevel", "TruthvaultError", "__version__", "is_higher_truth"]

__version__ = "0.1.0"
