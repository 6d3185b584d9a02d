"""The figures a benchmark measured, written as JSON for `before_after.py` to compare.

Each figure is a name with its value, its unit and which way is better, so that a comparison
of two runs needs no knowledge of the benchmark that made them.
"""

from __future__ import annotations

import json
from pathlib import Path


class Figures:
    """Named measurements, in the order they were taken."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, object]] = {}

    def add(self, name: str, value: float, unit: str, better: str) -> None:
        """Record ``value`` (``better`` is "higher" or "lower")."""
        assert better in ("higher", "lower"), better
        self.rows[name] = {"value": value, "unit": unit, "better": better}

    def write(self, path: str | None) -> None:
        """Write the figures to ``path`` as JSON (nothing when ``path`` is None)."""
        if path:
            Path(path).write_text(json.dumps(self.rows, indent=2) + "\n")
