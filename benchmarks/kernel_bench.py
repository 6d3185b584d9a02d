"""The dispatcher's cost: a note written through the kernel (`vault.kernel.run("notes.create")`:
validation, policy, audit entry, result model) against the same write made on the vault
directly (`vault.put`), and the policy decision as the dispatcher makes it.

Both paths write into their own vault file on the same disk, in alternating rounds, so that a
busy machine slows both alike; the overhead is the ratio of the medians of the rounds.

    .venv/bin/python benchmarks/kernel_bench.py                 # 10 rounds of 500 notes
    .venv/bin/python benchmarks/kernel_bench.py --rounds 3 --notes 100 --json figures.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _figures import Figures

from truthvault import Vault
from truthvault.kernel import PolicyDecision, PolicyRequest


class TimedPolicy:
    """The vault's policy engine, with each decision timed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.took: list[int] = []

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        start = time.perf_counter_ns()
        decision: PolicyDecision = self.inner.decide(request)
        self.took.append(time.perf_counter_ns() - start)
        return decision


def direct(vault: Vault, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        vault.put("note", {"text": f"note {i}", "tags": ["bench"]})
    return (time.perf_counter() - start) / n * 1e6


def governed(vault: Vault, n: int) -> float:
    kernel, actor = vault.kernel, vault.actor()
    start = time.perf_counter()
    for i in range(n):
        kernel.run("notes.create", {"text": f"note {i}", "tags": ["bench"]}, actor=actor)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--notes", type=int, default=500, help="notes per round and path")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = Vault.open(Path(tmp) / "direct", source="user:bench")
        gov = Vault.open(Path(tmp) / "governed", source="user:bench")
        timed = TimedPolicy(gov.kernel.policy)
        gov.kernel.policy = timed
        direct(plain, 50), governed(gov, 50)  # warm both: imports, caches, the files' first pages
        timed.took.clear()
        rows = [(direct(plain, args.notes), governed(gov, args.notes)) for _ in range(args.rounds)]
        plain.close(), gov.close()
    d = statistics.median(r[0] for r in rows)
    g = statistics.median(r[1] for r in rows)
    q = statistics.quantiles(timed.took, n=100)
    figures = Figures()
    figures.add("note add on the vault directly, us", d, "us", "lower")
    figures.add("note add through the kernel, us", g, "us", "lower")
    figures.add("dispatcher overhead on note add, %", (g / d - 1) * 100, "%", "lower")
    figures.add("policy decision in the dispatcher p50, us", q[49] / 1000, "us", "lower")
    figures.add("policy decision in the dispatcher p95, us", q[94] / 1000, "us", "lower")
    print(f"{args.rounds} rounds of {args.notes} notes each way (medians of the rounds)\n")
    print(f"| {'measure':<45} | {'value':>10} |\n|{'-' * 47}|{'-' * 12}:|")
    for name, row in figures.rows.items():
        print(f"| {name:<45} | {row['value']:>10.1f} |")
    figures.write(args.json)


if __name__ == "__main__":
    main()
