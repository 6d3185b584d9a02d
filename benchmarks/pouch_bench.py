"""Sync end to end, as a user runs it: truthvault's CLI against PouchDB, side by side in one run.

truthvault: a device's ``truthvault sync push`` of ``--docs`` notes (~250-byte payloads) to a
real ``truthvault hub serve`` on 127.0.0.1 (SQLite, a cloud_first tenant, the default rate
limit), then a second, fresh device's ``truthvault sync pull`` of them; each timed as the wall
clock of the CLI process, Python's start-up included.

PouchDB: the same documents (same ids, same payload bytes) replicated from a local PouchDB
(LevelDB) to express-pouchdb (PouchDB on LevelDB, a node process on 127.0.0.1) for push, and
from it into a fresh local PouchDB for pull; timed inside node around ``replicate`` (node's
start-up and the loading of PouchDB not counted, which favours PouchDB).

Set-up is not timed: the hub, tenant and devices, and the notes written into the first
device's vault (``truthvault import`` of JSON Lines) or the first local PouchDB (``bulkDocs``).
Each round makes everything afresh and runs the four operations interleaved, the systems'
order alternating by round; the table shows the medians of the rounds and the ratio
PouchDB seconds / truthvault seconds (how many times faster truthvault is) against issue 10's
targets. Each round's figures go to stderr. The npm packages are installed into
``benchmarks/pouch/node_modules`` the first time (needs node and npm).

    .venv/bin/python benchmarks/pouch_bench.py                 # 50,000 docs, 3 rounds
    .venv/bin/python benchmarks/pouch_bench.py --docs 5000 --rounds 1
    .venv/bin/python benchmarks/pouch_bench.py --json          # the figures as JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

#: issue 10's targets: truthvault at least this many times faster than PouchDB
TARGETS = {"push": 6.0, "pull": 10.0}
OPS = ("push", "pull")
PAYLOAD_BYTES = 250
POUCH_DIR = Path(__file__).resolve().parent / "pouch"
TV = [sys.executable, "-m", "truthvault"]
_WORDS = [
    "garden",
    "water",
    "plants",
    "call",
    "mum",
    "buy",
    "bread",
    "milk",
    "eggs",
    "meeting",
    "notes",
    "project",
    "deadline",
    "review",
    "draft",
    "letter",
    "invoice",
    "pay",
    "rent",
    "book",
    "flight",
    "train",
    "ticket",
    "pick",
    "up",
    "kids",
    "school",
    "friday",
    "monday",
    "recipe",
    "soup",
    "lentils",
    "onion",
    "garlic",
    "idea",
    "write",
    "chapter",
    "fix",
    "bike",
    "tyre",
    "dentist",
    "appointment",
    "remember",
    "password",
    "renew",
    "passport",
    "library",
    "return",
    "books",
    "gym",
    "run",
    "park",
    "walk",
    "dog",
    "vet",
]


# -- the documents ---------------------------------------------------------------------------


def payload(n: int, rng: random.Random) -> dict[str, str]:
    """A note of about PAYLOAD_BYTES bytes of JSON: a title and a text of everyday words."""
    title = f"note {n}"
    words: list[str] = []
    size = len(json.dumps({"title": title, "text": ""}))
    while size < PAYLOAD_BYTES:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return {"title": title, "text": " ".join(words)}


def write_docs(folder: Path, count: int) -> tuple[Path, Path]:
    """The same documents twice: JSON Lines for ``truthvault import`` and for PouchDB's bulkDocs."""
    rng = random.Random(10)
    tv_path, pouch_path = folder / "notes.jsonl", folder / "docs.jsonl"
    with tv_path.open("w") as tv, pouch_path.open("w") as pouch:
        for n in range(count):
            doc_id = f"note-{n:07d}"
            body = payload(n, rng)
            ms, counter = divmod(n, 16)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_780_000_000 + ms // 1000))
            item = {
                "entity_type": "note",
                "entity_id": doc_id,
                "tenant_id": "local",
                "truth_level": 1,
                "origin_source": "user:cli",
                "last_modified_at": f"{stamp}.{ms % 1000:03d}Z-{counter:04x}",
                "device_id": "bench",
                "payload": body,
            }
            tv.write(json.dumps(item) + "\n")
            pouch.write(json.dumps({"_id": doc_id, **body}) + "\n")
    return tv_path, pouch_path


# -- processes --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def cpu_of(pid: int) -> float:
    """The CPU seconds (user + system) process ``pid`` has used so far; NaN where /proc is not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running(
    args: list[str], env: dict[str, str] | None, ready_url: str, what: str, log: Path
) -> Iterator[int]:
    """Run a server process until the block ends, once ``ready_url`` answers; yield its pid."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(ready_url, proc, what)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Run(NamedTuple):
    """A command run to its end: wall seconds, its CPU seconds (user + system), its output."""

    seconds: float
    cpu: float
    stdout: str


def timed(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Run:
    """Run a command to its end. A failure stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = subprocess.run(args, env=env, input=stdin, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Run(seconds, cpu, result.stdout)


class Figure(NamedTuple):
    """One timed operation: wall seconds, the client's and the server's CPU seconds in it."""

    seconds: float
    client_cpu: float
    server_cpu: float


# -- truthvault --------------------------------------------------------------------------------


def python_env() -> dict[str, str]:
    """This environment for truthvault's processes, but with Python's bytecode cache in use."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_truthvault() -> None:
    """Write truthvault's bytecode cache, as installing it does: without it (an editable install
    under PYTHONDONTWRITEBYTECODE) every command compiles its modules first, about 0.2 s here."""
    where = "import os, truthvault; print(os.path.dirname(truthvault.__file__))"
    package = subprocess.run([sys.executable, "-c", where], capture_output=True, text=True, check=True).stdout
    subprocess.run([sys.executable, "-m", "compileall", "-q", package.strip()], env=python_env(), check=True)


class TruthvaultSide:
    """A hub process with tenant 'bench' and two token devices; the first holds the notes."""

    def __init__(self, root: Path, notes: Path) -> None:
        self.root = root
        self.notes = notes
        self.db = str(root / "hub.db")
        self.hub_env = self.env("hub-home")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid = 0

    def env(self, home: str) -> dict[str, str]:
        return {**python_env(), "TRUTHVAULT_HOME": str(self.root / home), "NO_COLOR": "1"}

    def admin(self, *args: str) -> str:
        return timed([*TV, "hub", *args, "--db", self.db], self.hub_env).stdout

    @contextmanager
    def hub(self) -> Iterator[None]:
        self.admin("init")
        self.admin("tenant", "add", "bench", "--mode", "cloud_first")
        serve = [*TV, "hub", "serve", "--db", self.db, "--port", str(self.port)]
        with running(
            serve, self.hub_env, self.url + "/healthz", "truthvault hub", self.root / "hub.log"
        ) as self.pid:
            yield

    def device(self, name: str) -> dict[str, str]:
        token = json.loads(self.admin("device", "add", "--tenant", "bench", "--name", name, "--json"))[
            "token"
        ]
        env = self.env(name)
        timed([*TV, "init", "--hub", self.url, "--tenant", "bench", "--token", "-"], env, token + "\n")
        return env

    def _sync(self, op: str, env: dict[str, str]) -> tuple[Figure, dict[str, Any]]:
        hub_cpu = cpu_of(self.pid)
        run = timed([*TV, "sync", op, "--json"], env)
        return Figure(run.seconds, run.cpu, cpu_of(self.pid) - hub_cpu), json.loads(run.stdout)

    def push(self, docs: int) -> Figure:
        env = self.device("writer")
        imported = json.loads(timed([*TV, "import", str(self.notes), "--json"], env).stdout)["imported"]
        assert imported == docs, imported
        figure, stats = self._sync("push", env)
        if stats["pushed"] != docs:
            raise RuntimeError(f"truthvault pushed {stats['pushed']} of {docs}")
        return figure

    def pull(self, docs: int) -> Figure:
        figure, stats = self._sync("pull", self.device("reader"))
        if stats["pulled"] != docs or stats["applied"] != docs:
            raise RuntimeError(f"truthvault pulled {stats['pulled']} (applied {stats['applied']}) of {docs}")
        return figure


# -- PouchDB -----------------------------------------------------------------------------------


def ensure_node_modules() -> None:
    """Install the pinned npm packages into benchmarks/pouch/ once."""
    if (POUCH_DIR / "node_modules" / "express-pouchdb").is_dir():
        return
    if not shutil.which("node") or not shutil.which("npm"):
        sys.exit(
            "pouch_bench needs node (18 or later) and npm on the PATH to run PouchDB; install them first"
        )
    print("installing PouchDB and express-pouchdb into benchmarks/pouch/node_modules ...", file=sys.stderr)
    command = "ci" if (POUCH_DIR / "package-lock.json").exists() else "install"
    subprocess.run(["npm", command, "--no-audit", "--no-fund"], cwd=POUCH_DIR, check=True)


class PouchSide:
    """An express-pouchdb process; local PouchDBs replicate to and from its database 'bench'."""

    def __init__(self, root: Path, docs_file: Path, batch_size: int) -> None:
        self.root = root
        self.docs_file = docs_file
        self.batch = str(batch_size)
        self.port = _free_port()
        self.db_url = f"http://127.0.0.1:{self.port}/bench"
        self.pid = 0

    @contextmanager
    def server(self) -> Iterator[None]:
        folder = self.root / "server"
        folder.mkdir()
        serve = ["node", str(POUCH_DIR / "server.js"), str(folder), str(self.port)]
        with running(
            serve, None, f"http://127.0.0.1:{self.port}/", "express-pouchdb", self.root / "server.log"
        ) as self.pid:
            yield

    def _replicate(self, op: str, docs: int, *args: str) -> Figure:
        folder = self.root / op
        folder.mkdir()
        script = str(POUCH_DIR / "replicate.js")
        # the server's CPU over the whole run: it does nothing but this replication meanwhile
        server_cpu = cpu_of(self.pid)
        run = timed(["node", script, op, self.db_url, str(folder), *args, self.batch])
        server_cpu = cpu_of(self.pid) - server_cpu
        out = json.loads(run.stdout)
        if out["docs"] != docs or out["docs_written"] != docs:
            raise RuntimeError(f"PouchDB {op}: {out}")
        return Figure(float(out["seconds"]), float(out["cpu_seconds"]), server_cpu)

    def push(self, docs: int) -> Figure:
        return self._replicate("push", docs, str(self.docs_file))

    def pull(self, docs: int) -> Figure:
        return self._replicate("pull", docs)


# -- the run -----------------------------------------------------------------------------------


def one_round(n: int, docs: int, notes: Path, pouch_docs: Path, batch_size: int) -> dict[str, Figure]:
    """Push then pull with both systems, afresh; the order of the systems alternates by round."""
    with tempfile.TemporaryDirectory(prefix="pouch_bench-") as tmp:
        (Path(tmp) / "tv").mkdir()
        (Path(tmp) / "pouch").mkdir()
        tv = TruthvaultSide(Path(tmp) / "tv", notes)
        pouch = PouchSide(Path(tmp) / "pouch", pouch_docs, batch_size)
        with tv.hub(), pouch.server():
            sides = [("truthvault", tv), ("pouchdb", pouch)]
            if n % 2:
                sides.reverse()
            figures: dict[str, Figure] = {}
            for op in ("push", "pull"):
                for name, side in sides:
                    figures[f"{name} {op}"] = getattr(side, op)(docs)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50_000, help="documents to sync (default 50,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians shown; default 3)")
    parser.add_argument(
        "--pouch-batch-size",
        type=int,
        default=0,
        help="PouchDB's replication batch_size (default: PouchDB's own, 100)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    ensure_node_modules()
    compile_truthvault()
    rounds: list[dict[str, Figure]] = []
    with tempfile.TemporaryDirectory(prefix="pouch_bench-docs-") as tmp:
        notes, pouch_docs = write_docs(Path(tmp), args.docs)
        for n in range(args.rounds):
            figures = one_round(n, args.docs, notes, pouch_docs, args.pouch_batch_size)
            rounds.append(figures)
            done = ", ".join(f"{k} {f.seconds:.2f} s" for k, f in figures.items())
            print(f"round {n + 1}: {done} (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    keys = list(rounds[0])
    medians = {k: Figure(*(statistics.median(r[k][i] for r in rounds) for i in range(3))) for k in keys}
    ratios = {op: medians[f"pouchdb {op}"].seconds / medians[f"truthvault {op}"].seconds for op in OPS}
    # both systems meet the same load within a round: its ratio is the steadier figure
    round_ratios = {
        op: [r[f"pouchdb {op}"].seconds / r[f"truthvault {op}"].seconds for r in rounds] for op in OPS
    }
    if args.json:
        print(
            json.dumps(
                {
                    "docs": args.docs,
                    "payload_bytes": PAYLOAD_BYTES,
                    "pouch_batch_size": args.pouch_batch_size or 100,
                    "rounds": [{k: f._asdict() for k, f in r.items()} for r in rounds],
                    "medians": {k: f._asdict() for k, f in medians.items()},
                    "ratios": ratios,
                    "round_ratios": round_ratios,
                    "targets": TARGETS,
                },
                indent=2,
            )
        )
        return
    print(f"{args.docs:,} documents of ~{PAYLOAD_BYTES} bytes, medians of {args.rounds} round(s)")
    head = ("system", "operation", "docs", "seconds", "docs/s", "client cpu s", "server cpu s")
    widths = (10, 9, 7, 7, 8, 12, 12)
    print(
        " | ".join(
            f"{h:<{w}}" if i < 2 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(head, widths, strict=True))
        )
    )
    print("-|-".join("-" * w for w in widths))
    for op in OPS:
        for system in ("truthvault", "pouchdb"):
            f = medians[f"{system} {op}"]
            print(
                f"{system:<10} | {op:<9} | {args.docs:>7} | {f.seconds:>7.2f} | {args.docs / f.seconds:>8,.0f} | "
                f"{f.client_cpu:>12.2f} | {f.server_cpu:>12.2f}"
            )
    for op in OPS:
        met = "met" if ratios[op] >= TARGETS[op] else "NOT met"
        each = ", ".join(f"{r:.1f}" for r in round_ratios[op])
        print(
            f"truthvault/PouchDB {op}: {ratios[op]:.1f}x (target >= {TARGETS[op]:.0f}x, {met}; "
            f"rounds: {each})"
        )


if __name__ == "__main__":
    main()
