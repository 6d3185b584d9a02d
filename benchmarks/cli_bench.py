"""How long everyday commands take, start-up included: the median of real runs of the CLI.

Prints one table: each command's median wall time over ``--runs`` runs (after one warm-up) in a
vault of a few hundred notes, and beside it Python's own start-up (``python -c pass``), which no
command can beat.

    .venv/bin/python benchmarks/cli_bench.py
    .venv/bin/python benchmarks/cli_bench.py --runs 21
    .venv/bin/python benchmarks/cli_bench.py --bytecode   # with compiled modules cached

By default the commands run as the environment says: where ``PYTHONDONTWRITEBYTECODE`` is set
(as on the project's VM), Python compiles every module of truthvault at every start, which an
installed package (compiled when pip installs it) never does. ``--bytecode`` lets the first run
cache the compiled modules in a temporary folder, so the figures are what an installed copy
costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _figures import Figures

#: issue 10's targets on the project's 2-core VM, in milliseconds
TARGETS = {"--version": 120, "--help": 120, "note add": 200, "list": 200, "show": 200, "search": 200}


def _time(args: list[str], env: dict[str, str], runs: int) -> float:
    """The median wall time of ``args`` in milliseconds (one run first, not counted)."""
    times = []
    for n in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run(args, env=env, check=True, capture_output=True)
        if n:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="runs of each command (median shown)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument(
        "--bytecode",
        action="store_true",
        help="cache compiled modules (in a temporary folder) as an install does",
    )
    args = parser.parse_args()
    runs = args.runs
    tv = [sys.executable, "-m", "truthvault"]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TRUTHVAULT_HOME": home, "NO_COLOR": "1"}
        if args.bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = os.path.join(home, "pycache")
        subprocess.run([*tv, "init"], env=env, check=True, capture_output=True)
        lines = "\n".join(
            json.dumps(
                {
                    "entity_type": "note",
                    "entity_id": f"n{n:04d}",
                    "tenant_id": "local",
                    "truth_level": 1,
                    "origin_source": "user:cli",
                    "last_modified_at": f"2026-01-01T00:00:{n % 60:02d}.000Z-{n:04x}",
                    "device_id": "bench",
                    "payload": {"text": f"note {n} about plumbing"},
                }
            )
            for n in range(300)
        )
        subprocess.run([*tv, "import", "-"], env=env, input=lines.encode(), check=True, capture_output=True)
        commands = {
            "--version": ["--version"],
            "--help": ["--help"],
            "note add": ["note", "add", "one more note"],
            "list": ["list"],
            "show": ["show", "n0001"],
            "search": ["search", "plumbing"],
        }
        rows = [("python -c pass", _time([sys.executable, "-c", "pass"], env, runs), None)]
        rows += [(name, _time([*tv, *args], env, runs), TARGETS.get(name)) for name, args in commands.items()]
    print(f"{'command':<16} | {'median ms':>9} | {'target ms':>9}")
    print(f"{'-' * 16}-|-{'-' * 9}-|-{'-' * 9}")
    for name, ms, target in rows:
        print(f"{name:<16} | {ms:>9.0f} | {target if target else '':>9}")
    figures = Figures()
    for name, ms, _ in rows:
        figures.add(name, ms, "ms", "lower")
    figures.write(args.json)


if __name__ == "__main__":
    main()
