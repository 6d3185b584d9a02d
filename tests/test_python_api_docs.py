"""Every example in docs/python-api.md runs, in order, as one script in a fresh folder.

The document is a walk-through whose later examples use what the earlier ones made (a vault,
a served hub), so the ```python blocks run together; a failure names the block it came from.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def test_the_document_has_examples() -> None:
    assert len(blocks()) >= 4


@pytest.mark.timeout(600)
def test_every_example_runs(tmp_path: Path) -> None:
    script = "\n".join(f"# --- block {n} ---\n{code}" for n, code in enumerate(blocks(), 1))
    (tmp_path / "walkthrough.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUTHVAULT_")}
    done = subprocess.run(
        [sys.executable, "walkthrough.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500
    )
    if done.returncode != 0:
        failed = re.findall(r'File ".*walkthrough.py", line (\d+)', done.stderr)
        where = ""
        if failed:
            lines = script.splitlines()[: int(failed[-1])]
            where = next((line for line in reversed(lines) if line.startswith("# --- block")), "")
        pytest.fail(f"the examples failed at {where}:\n{done.stderr[-3000:]}")
    assert "Traceback" not in done.stderr
