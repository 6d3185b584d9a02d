"""The dispatcher's cost: a note written through the kernel (`vault.kernel.run("notes.create")`:
validation, input hash, policy, audit entry, result model) against the same write made on the
vault directly (`vault.put`), and the policy decision as the dispatcher makes it.

Each path writes into its own vault file on the same disk. The two alternate note by note, so
that a busy machine slows both alike, and each figure is the median of the per-note times of a
round (the median of the rounds is shown). A third vault runs the kernel with an audit sink
that keeps nothing, to show what the audit entry costs of the overhead.

    .venv/bin/python benchmarks/kernel_bench.py                 # 5 rounds of 1,000 notes
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
from truthvault.kernel import AuditRecord, PolicyDecision, PolicyRequest


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


class NoAudit:
    """An audit sink that keeps nothing (only to show the audit entry's share)."""

    def append(self, record: AuditRecord) -> None:
        del record


def round_of(plain: Vault, gov: Vault, bare: Vault, n: int) -> tuple[float, float, float]:
    """Median µs per note: directly, through the kernel, through the kernel keeping no entry."""
    clock = time.perf_counter_ns
    kernels = [(v.kernel, v.actor()) for v in (gov, bare)]
    times: list[list[int]] = [[], [], []]
    for i in range(n):
        payload = {"text": f"note {i}", "tags": ["bench"]}
        start = clock()
        plain.put("note", payload)
        times[0].append(clock() - start)
        for k, (kernel, actor) in enumerate(kernels, 1):
            start = clock()
            kernel.run("notes.create", payload, actor=actor)
            times[k].append(clock() - start)
    d, g, b = (statistics.median(t) / 1000 for t in times)
    return d, g, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--notes", type=int, default=1000, help="notes per round and path")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain, gov, bare = (Vault.open(Path(tmp) / name, source="user:bench") for name in ("d", "g", "b"))
        bare.kernel.audit = NoAudit()
        timed = TimedPolicy(gov.kernel.policy)
        gov.kernel.policy = timed
        round_of(plain, gov, bare, 100)  # warm all three: imports, caches, the files' first pages
        timed.took.clear()
        rows = [round_of(plain, gov, bare, args.notes) for _ in range(args.rounds)]
        plain.close(), gov.close(), bare.close()
    d, g, b = (statistics.median(r[i] for r in rows) for i in range(3))
    q = statistics.quantiles(timed.took, n=100)
    figures = Figures()
    figures.add("note add on the vault directly, us", d, "us", "lower")
    figures.add("note add through the kernel, us", g, "us", "lower")
    figures.add("dispatcher overhead on note add, %", (g / d - 1) * 100, "%", "lower")
    figures.add("  of which the audit entry, us", g - b, "us", "lower")
    figures.add("  the rest (validation, hash, policy, result), us", b - d, "us", "lower")
    figures.add("policy decision in the dispatcher p50, us", q[49] / 1000, "us", "lower")
    figures.add("policy decision in the dispatcher p95, us", q[94] / 1000, "us", "lower")
    print(f"{args.rounds} rounds of {args.notes} notes each way (medians of per-note times, median round)\n")
    print(f"| {'measure':<50} | {'value':>10} |\n|{'-' * 52}|{'-' * 12}:|")
    for name, row in figures.rows.items():
        print(f"| {name:<50} | {row['value']:>10.1f} |")
    figures.write(args.json)


if __name__ == "__main__":
    main()
