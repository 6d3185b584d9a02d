"""Throughput of the built-in offline AI provider (`ai-local:builtin`): notes/s for keyword tags,
task extraction and extractive summaries, over N generated realistic notes.

The notes are built from sentence templates of the kinds users write (meetings, to-do lists,
journal entries, recipes, project plans; 60-250 words, Markdown headings and lists, dates in
words), seeded so that two runs time the same text. Tags are timed twice: by term frequency
alone, and by TF-IDF against the statistics of the whole corpus (built once, timed apart).
Also: related notes (BM25 over a real vault's full-text index) per query, over the first
`--related-notes` notes.

    .venv/bin/python benchmarks/ai_bench.py                  # 10,000 notes
    .venv/bin/python benchmarks/ai_bench.py --notes 500 --json figures.json
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from _figures import Figures

from truthvault.ai import CorpusStats, extract_tasks, keyword_tags, related, summarize
from truthvault.vault import Vault

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
PEOPLE = ["Ana", "Bob", "Maya", "Dr. Patel", "Leo", "Alice", "Mr. Osei", "Sam"]
TOPICS = [
    ("budget", "marketing", "quarter", "sales"),
    ("garden", "shed", "timber", "concrete"),
    ("risotto", "lemon", "parmesan", "stock"),
    ("release", "server", "database", "migration"),
    ("holiday", "flights", "hotel", "Lisbon"),
    ("school", "homework", "teacher", "maths"),
]
WHEN = ["tomorrow", "by Friday", "next Monday", "in 3 days", "on 2026-12-15", "Dec 24", "tonight", ""]
VERBS = ["Call", "Email", "Book", "Pay", "Send", "Review", "Buy", "Check"]
PROSE = [
    "We talked about the {a} and the {b} for a long time.",
    "{p} explained that the {a} depends on the {c}, e.g. in the {d} case.",
    "The {b} is late again, so the {a} plan moves by a week.",
    "I felt calm after the walk; the {c} can wait until the {d} is sorted.",
    "Everyone agreed that the {a} matters more than the {b} this year.",
    "{p} asked whether the {c} is safe. It is, for now.",
]


def make_note(rng: random.Random) -> str:
    """One realistic note: a heading, a paragraph or two of prose, and a list with tasks."""
    a, b, c, d = rng.choice(TOPICS)
    fill = {"a": a, "b": b, "c": c, "d": d}
    lines = [f"# {a.capitalize()} {rng.choice(['meeting', 'notes', 'plan', 'journal'])}", ""]
    for _ in range(rng.randint(1, 2)):
        lines.append(" ".join(rng.choice(PROSE).format(p=rng.choice(PEOPLE), **fill) for _ in range(4)))
        lines.append("")
    for _ in range(rng.randint(2, 6)):
        box = rng.choice(["- [ ] ", "- [x] ", "- ", "TODO: ", "1. "])
        lines.append(
            f"{box}{rng.choice(VERBS)} {rng.choice(PEOPLE)} about the {rng.choice([a, b, c])} {rng.choice(WHEN)}"
        )
    return "\n".join(lines) + "\n"


def rate(call: Callable[[str], object], notes: list[str]) -> float:
    """Notes per second for ``call`` over every note."""
    start = time.perf_counter()
    for note in notes:
        call(note)
    return len(notes) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000, help="notes to generate and process")
    parser.add_argument("--related-notes", type=int, default=2_000, help="notes in the vault for related")
    parser.add_argument("--queries", type=int, default=200, help="related-notes queries timed")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args()
    rng = random.Random(13)
    notes = [make_note(rng) for _ in range(args.notes)]
    figures, rows = Figures(), []

    start = time.perf_counter()
    corpus = CorpusStats.from_texts(notes)
    corpus_s = time.perf_counter() - start
    tasks_found = sum(len(extract_tasks(n, NOW)) for n in notes[:100])
    for label, call in [
        ("keyword_tags (TF)", lambda n: keyword_tags(n)),
        ("keyword_tags (TF-IDF)", lambda n: keyword_tags(n, corpus=corpus)),
        ("extract_tasks", lambda n: extract_tasks(n, NOW)),
        ("summarize (3 sentences)", lambda n: summarize(n)),
    ]:
        per_s = rate(call, notes)
        rows.append((label, per_s))
        figures.add(f"{label}: notes/s", round(per_s, 1), "notes/s", "higher")
    rows.append(("corpus statistics (CorpusStats)", args.notes / corpus_s))
    figures.add("corpus statistics: notes/s", round(args.notes / corpus_s, 1), "notes/s", "higher")

    with tempfile.TemporaryDirectory() as home, Vault.open(Path(home) / "v", source="user:bench") as vault:
        ids = [vault.put("note", {"text": n}).item.entity_id for n in notes[: args.related_notes]]
        queries = [ids[i % len(ids)] for i in range(args.queries)]
        start = time.perf_counter()
        for entity_id in queries:
            related(vault, entity_id)
        per_query_ms = (time.perf_counter() - start) * 1000 / len(queries)
    figures.add("related (BM25): ms per query", round(per_query_ms, 3), "ms", "lower")

    print(f"\n{'built-in provider, ' + str(args.notes) + ' notes':<40}{'notes/s':>12}")
    for label, per_s in rows:
        print(f"{label:<40}{per_s:>12,.0f}")
    print(f"{'related (BM25), ' + str(len(ids)) + '-note vault':<40}{per_query_ms:>9.2f} ms/query")
    print(
        f"\n{tasks_found} tasks in the first 100 notes; mean note {sum(map(len, notes)) // len(notes)} chars"
    )
    figures.write(args.json)


if __name__ == "__main__":
    main()
