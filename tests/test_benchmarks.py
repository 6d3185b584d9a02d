"""The benchmarks still run against the code as it is now: each, at a tiny size, writes its figures.

Nothing here times anything (figures are the benchmarks' business, not the tests'): this only
catches a benchmark left behind by a change of the library it drives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "args", "figure"),
    [
        ("cli_bench.py", ["--runs", "1"], "note add"),
        ("import_bench.py", ["--count", "200"], "import entities/s"),
        ("audit_bench.py", ["--entries", "300", "--appends", "64"], "sqlite: appends/s, 8 writers"),
        (
            "security_bench.py",
            ["--items", "200", "--rounds", "1"],
            "local_first (signed + AES-256-GCM): device pull items/s",
        ),
        (
            "policy_bench.py",
            ["--decisions", "200", "--rules", "10"],
            "policy decision p50 us (default policy, cached)",
        ),
        ("broker_bench.py", ["--count", "20"], "hub on PostgreSQL: approvals asked, decided and redeemed/s"),
        ("contracts_bench.py", ["--items", "50", "--number", "100"], "hub screen per item (µs)"),
        ("kernel_bench.py", ["--rounds", "1", "--notes", "20"], "dispatcher overhead on note add, %"),
        (
            "ai_bench.py",
            ["--notes", "60", "--related-notes", "20", "--queries", "5"],
            "extract_tasks: notes/s",
        ),
        (
            "workflow_bench.py",
            ["--rounds", "1", "--workflows", "5", "--notes", "5"],
            "3-step workflows/s, PostgreSQL, truthvault",
        ),
    ],
)
def test_a_benchmark_runs_and_writes_its_figures(
    script: str, args: list[str], figure: str, tmp_path: Path
) -> None:
    out = tmp_path / "figures.json"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--json", str(out)],
        cwd=BENCHMARKS.parent,
        check=True,
        capture_output=True,
        timeout=240,
    )
    figures = json.loads(out.read_text())
    assert figures[figure]["value"] > 0
    assert figures[figure]["better"] in ("higher", "lower")
