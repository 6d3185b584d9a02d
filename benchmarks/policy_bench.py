"""The cost of a policy decision: p50/p95 in microseconds, cached and uncached.

`CedarPolicy.decide` as the dispatcher calls it, over a mix of requests (every channel, every
risk class, targets at two truth levels): cached (the cache warmed, as in a running device or
hub) and uncached (`CedarPolicy.evaluate`: a Cedar evaluation each time, as the first decision
of each kind after a policy changes). Under the default policy (6 tenant rules + 4 built-in)
and under a large one (`--rules` extra permits). Each call timed alone with perf_counter_ns.

    .venv/bin/python benchmarks/policy_bench.py               # 20,000 decisions per row
    .venv/bin/python benchmarks/policy_bench.py --decisions 2000 --json figures.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from _figures import Figures

from truthvault.kernel import DEFAULT_POLICY, Actor, CedarPolicy, PolicyRequest, Risk, Target, compile_policy

SOURCES = [
    "user:cli",
    "user:voice",
    "user:mobile",
    "automation:nightly",
    "ai-local:m",
    "ai-lan:m",
    "ai-cloud:p/m",
]
ACTIONS = {
    Risk.READ: "notes.list",
    Risk.WRITE: "notes.create",
    Risk.DESTRUCTIVE: "entity.purge",
    Risk.SECURITY: "keys.rotate",
}


def requests() -> list[PolicyRequest]:
    """Every channel x risk class x (a user-level target, an AI-level one): 56 kinds."""
    return [
        PolicyRequest(
            Actor(source, device_id="laptop", tenant_id="t"),
            ACTIONS[risk],
            risk,
            (Target("e1", "note", 3, level),),
        )
        for source in SOURCES
        for risk in Risk
        for level in (1, 4)
    ]


def large_policy(rules: int) -> str:
    extra = "\n".join(
        f'@id("rule{i}") permit (principal, action == Action::"custom.a{i}", resource) '
        f'when {{ principal.level <= {1 + i % 5} && resource.types.contains("t{i}") }};'
        for i in range(rules)
    )
    return DEFAULT_POLICY + "\n" + extra + "\n"


def percentiles(
    call: Callable[[PolicyRequest], object], reqs: list[PolicyRequest], n: int
) -> tuple[float, float]:
    """p50 and p95 of ``n`` calls, in microseconds."""
    clock = time.perf_counter_ns
    took: list[int] = []
    for i in range(n):
        request = reqs[i % len(reqs)]
        start = clock()
        call(request)
        took.append(clock() - start)
    q = statistics.quantiles(took, n=100)
    return q[49] / 1000, q[94] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="decisions timed per row")
    parser.add_argument("--rules", type=int, default=200, help="extra permits in the large policy")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args()
    figures, reqs, rows = Figures(), requests(), []
    compile_policy()  # imports Cedar, so that the loads below time parsing only
    for label, text in [
        ("default policy", DEFAULT_POLICY),
        (f"{args.rules}-rule policy", large_policy(args.rules)),
    ]:
        start = time.perf_counter()
        compile_policy.cache_clear()
        engine = CedarPolicy(text, version=1)
        load_ms = (time.perf_counter() - start) * 1000
        for request in reqs:
            engine.decide(request)  # warm: every kind decided once
        for kind, call in (("cached", engine.decide), ("uncached", engine.evaluate)):
            p50, p95 = percentiles(
                call, reqs, args.decisions if kind == "cached" else max(args.decisions // 4, 100)
            )
            rows.append((f"{label}, {kind}", p50, p95))
            figures.add(f"policy decision p50 us ({label}, {kind})", round(p50, 2), "us", "lower")
            figures.add(f"policy decision p95 us ({label}, {kind})", round(p95, 2), "us", "lower")
        rows.append((f"{label}, parse + load (ms)", load_ms, load_ms))
        figures.add(f"policy load ms ({label})", round(load_ms, 2), "ms", "lower")
    print(f"\n{'policy decision':<36}{'p50 us':>10}{'p95 us':>10}")
    for label, p50, p95 in rows:
        if label.endswith("(ms)"):
            print(f"{label:<36}{p50:>10.2f}")
        else:
            print(f"{label:<36}{p50:>10.2f}{p95:>10.2f}")
    print(f"\n{len(reqs)} kinds of request; target: p50 <= 50 us in the dispatcher (cached)")
    figures.write(args.json)


if __name__ == "__main__":
    main()
