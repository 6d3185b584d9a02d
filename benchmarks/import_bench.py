"""`truthvault import` and `export` of many entities through the real command line.

.venv/bin/python benchmarks/import_bench.py            # 1,000,000 entities
.venv/bin/python benchmarks/import_bench.py --count 100000
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from _figures import Figures

from truthvault.clock import HybridClock
from truthvault.model import SyncItem, encode

TV = [sys.executable, "-m", "truthvault"]


def write_jsonl(path: Path, count: int) -> None:
    clock = HybridClock()
    with path.open("wb") as fp:
        for n in range(count):
            payload = {
                "title": f"note {n}",
                "text": f"note {n}: " + secrets.token_hex(100),
                "tags": ["import"],
            }
            item = SyncItem(
                entity_type="note",
                entity_id=f"i{n:09d}",
                tenant_id="local",
                truth_level=1 if n % 10 else 5,
                origin_source="user:import" if n % 10 else "ai-cloud:bench/model",
                last_modified_at=clock.now(),
                device_id="importer",
                payload=msgspec.Raw(encode(payload)),
            )
            fp.write(encode(item) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "TRUTHVAULT_HOME": str(home)}
        source = Path(tmp) / "in.jsonl"
        write_jsonl(source, args.count)
        size_mb = source.stat().st_size / 1e6
        subprocess.run([*TV, "init"], env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([*TV, "import", str(source)], env=env, check=True, capture_output=True)
        imported = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(
            [*TV, "export", str(Path(tmp) / "out.jsonl")], env=env, check=True, capture_output=True
        )
        exported = time.perf_counter() - t0
        lines = sum(1 for _ in (Path(tmp) / "out.jsonl").open("rb"))
    print("what | entities | MB | seconds | entities/s")
    print("-----|----------|----|---------|-----------")
    print(f"import | {args.count:,} | {size_mb:.0f} | {imported:.1f} | {args.count / imported:,.0f}")
    print(f"export | {lines:,} | {size_mb:.0f} | {exported:.1f} | {lines / exported:,.0f}")
    figures = Figures()
    figures.add("import entities/s", args.count / imported, "/s", "higher")
    figures.add("export entities/s", lines / exported, "/s", "higher")
    figures.write(args.json)


if __name__ == "__main__":
    main()
