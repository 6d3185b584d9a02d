"""Every benchmark, before and after a change, in one run: the figures side by side.

The "before" side is a git revision (``--base``), checked out into its own worktree with its own
.venv under ``.bench/``; the "after" side is this checkout. Each benchmark runs on both sides,
alternating (before, after, after, before, ... for ``--rounds`` rounds), and each side keeps its
best figure, so a burst of load on this shared machine hurts both alike. A figure more than 10%
worse than before is marked.

    .venv/bin/python benchmarks/before_after.py --base aae641d
    .venv/bin/python benchmarks/before_after.py --base aae641d --only cli,sync --rounds 1
    .venv/bin/python benchmarks/before_after.py --base aae641d --markdown    # for the README
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: each benchmark and the arguments it runs with here (smaller than its defaults, so that the
#: whole comparison takes minutes, not an hour)
BENCHMARKS = {
    "cli": ["cli_bench.py", "--runs", "11"],
    "import": ["import_bench.py", "--count", "200000"],
    "sync": ["sync_bench.py", "--quick", "--rounds", "3"],
    "security": ["security_bench.py", "--items", "20000"],
    "pouch": ["pouch_bench.py", "--rounds", "1"],
    "audit": ["audit_bench.py", "--entries", "10000", "--appends", "20000"],
}
TOLERANCE = 0.10
#: figures that measure the machine, shown beside ours for reference
REFERENCES = {"python -c pass"}


def _run(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), f"(in {cwd})", file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def base_tree(rev: str) -> Path:
    """A worktree of ``rev`` with its own .venv, made once and reused."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = ROOT / ".bench" / f"base-{sha[:12]}"
    if not (tree / ".git").exists():
        tree.parent.mkdir(exist_ok=True)
        _run(["git", "worktree", "add", "--detach", str(tree), sha], ROOT)
    _run(["bash", "-c", 'source scripts/_venv.sh && ensure_venv ""'], tree)
    return tree


def measure(tree: Path, name: str) -> dict[str, dict[str, object]] | None:
    """The figures of one benchmark run in ``tree`` (None: the benchmark is not there, or it
    failed, which is said on stderr: the other benchmarks still run)."""
    script, *args = BENCHMARKS[name]
    if not (tree / "benchmarks" / script).exists():
        return None
    try:
        return _measure(tree, script, args)
    except subprocess.CalledProcessError as exc:
        print(f"{name} failed in {tree} (exit {exc.returncode}); its figures are left out", file=sys.stderr)
        return None


def _measure(tree: Path, script: str, args: list[str]) -> dict[str, dict[str, object]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        _run(
            [str(tree / ".venv" / "bin" / "python"), f"benchmarks/{script}", *args, "--json", out.name], tree
        )
        figures: dict[str, dict[str, object]] = json.loads(Path(out.name).read_text())
        return figures


def _best(a: dict[str, object] | None, b: dict[str, object]) -> dict[str, object]:
    if a is None:
        return b
    higher = float(str(b["value"])) > float(str(a["value"]))
    return b if higher == (b["better"] == "higher") else a


def compare(
    base: Path, names: list[str], rounds: int
) -> list[tuple[str, str, dict[str, object] | None, dict[str, object] | None]]:
    """(benchmark, figure, before, after) for every figure either side measured."""
    best: dict[tuple[str, str, str], dict[str, object]] = {}
    for name in names:
        for n in range(rounds):
            sides = [("before", base), ("after", ROOT)]
            for side, tree in sides if n % 2 == 0 else reversed(sides):
                for figure, row in (measure(tree, name) or {}).items():
                    best[(name, figure, side)] = _best(best.get((name, figure, side)), row)
    keys = list(dict.fromkeys((name, figure) for name, figure, _ in best))
    return [
        (name, figure, best.get((name, figure, "before")), best.get((name, figure, "after")))
        for name, figure in keys
    ]


def _cell(row: dict[str, object] | None) -> str:
    if row is None:
        return "-"
    value = float(str(row["value"]))
    return f"{value:,.2f} {row['unit']}" if value < 100 else f"{value:,.0f} {row['unit']}"


def _change(before: dict[str, object] | None, after: dict[str, object] | None) -> tuple[str, bool]:
    if before is None or after is None:
        return "", True
    b, a = float(str(before["value"])), float(str(after["value"]))
    gain = (a - b) / b if before["better"] == "higher" else (b - a) / b
    return f"{gain:+.0%}", gain >= -TOLERANCE


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the git revision to compare with (the 'before' side)")
    parser.add_argument("--only", help=f"a comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs of each benchmark on each side (best kept)"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    rows = compare(base_tree(args.base), names, args.rounds)
    header = ("benchmark", "figure", "before", "after", "change")
    table = [(name, figure, _cell(b), _cell(a), *_change(b, a)) for name, figure, b, a in rows]
    # Python's own start-up is the machine's, not ours: shown for reference, never judged
    table = [(*row[:5], row[5] or row[1] in REFERENCES) for row in table]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for name, figure, b, a, change, ok in table:
            print(f"| {name} | {figure} | {b} | {a} | {change}{'' if ok else ' (worse)'} |")
    else:
        widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for *cells, ok in table:
            print(
                "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
                + ("" if ok else "  WORSE")
            )
    if not all(ok for *_, ok in table):
        sys.exit(1)


if __name__ == "__main__":
    main()
