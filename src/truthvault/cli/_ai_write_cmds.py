"""``truthvault ai summarize|tag|tasks|related ID`` and ``ai ask QUESTION``: the built-in provider (``ai-local:builtin``,
level 3) at work on one entity.

What it writes goes through the kernel as the AI's own action: against your content it is a
suggestion (``truthvault suggestions``, then ``accept`` or ``reject``), never a change of it.
"""

from __future__ import annotations

import click

from ._common import json_option, open_vault, out, print_json

__all__ = ["add_writer_commands"]


def _said(outcome: str, record_id: str | None) -> str:
    if outcome == "suggestion" and record_id:
        return f"a suggestion ({record_id}): 'truthvault accept {record_id}' takes it"
    return outcome


def add_writer_commands(ai: click.Group) -> None:
    """Add summarize, tag, tasks and related to the ``ai`` group."""

    @ai.command("summarize")
    @click.argument("entity_id")
    @click.option("--sentences", type=click.IntRange(1, 20), default=3, show_default=True)
    @click.option(
        "--provider", "provider_name", metavar="NAME",
        help="A configured provider (ai provider list) instead of the built-in one; it writes at its level.",
    )  # fmt: skip
    @click.option(
        "--allow-raw", is_flag=True,
        help="Send a cloud provider the text as it is, for this request (else it gets it redacted; audited either way).",
    )  # fmt: skip
    @json_option
    def ai_summarize(
        entity_id: str, sentences: int, provider_name: str | None, allow_raw: bool, as_json: bool
    ) -> None:
        """Summarize an entity's text into its summary field, as a suggestion (offline and
        extractive, unless --provider names one)."""
        from ..ai import Providers
        from ..ai import ai_summarize as summarize

        with open_vault() as vault:
            provider = None if provider_name is None else Providers(vault.home).get(provider_name)
            done = summarize(vault, entity_id, sentences=sentences, provider=provider, allow_raw=allow_raw)
        if as_json:
            print_json(done.to_dict())
            return
        out.print(done.written["summary"])
        out.print(f"-> {_said(done.outcome, done.record_id)}")

    @ai.command("tag")
    @click.argument("entity_id")
    @click.option("--limit", type=click.IntRange(1, 20), default=5, show_default=True)
    @json_option
    def ai_tag(entity_id: str, limit: int, as_json: bool) -> None:
        """Tag an entity with its keywords (offline), as a suggestion on your content."""
        from ..ai import ai_tag as tag

        with open_vault() as vault:
            done = tag(vault, entity_id, limit=limit)
        if as_json:
            print_json(None if done is None else done.to_dict())
            return
        if done is None:
            out.print("no new tags: its keywords are tags already")
            return
        out.print(f"tags {', '.join(done.written['tags'])} -> {_said(done.outcome, done.record_id)}")

    @ai.command("tasks")
    @click.argument("entity_id")
    @json_option
    def ai_tasks(entity_id: str, as_json: bool) -> None:
        """Create a task (level 3) for each one found in an entity's text, with its due date."""
        from ..ai import ai_tasks as tasks

        with open_vault() as vault:
            done = tasks(vault, entity_id)
        if as_json:
            print_json([d.to_dict() for d in done])
            return
        if not done:
            out.print("no tasks found")
        for d in done:
            due = f" (due {d.written['due']})" if d.written.get("due") else ""
            out.print(f"task {d.entity_id}: {d.written['title']}{due}")

    @ai.command("ask")
    @click.argument("question")
    @click.option("--sentences", type=click.IntRange(1, 20), default=3, show_default=True)
    @json_option
    def ai_ask(question: str, sentences: int, as_json: bool) -> None:
        """Answer a question from the vault (offline, extractive), citing the entities it quotes."""
        from ..ai import ask

        with open_vault() as vault:
            answer = ask(vault, question, sentences_max=sentences)
        if as_json:
            print_json(answer.to_dict())
            return
        out.print(answer.text)

    @ai.command("related")
    @click.argument("entity_id")
    @click.option("--limit", type=click.IntRange(1, 100), default=5, show_default=True)
    @json_option
    def ai_related(entity_id: str, limit: int, as_json: bool) -> None:
        """The entities most related to this one (BM25 over the vault's index); writes nothing."""
        from ..ai import ai_related as related

        with open_vault() as vault:
            found = related(vault, entity_id, limit=limit)
            rows = [(eid, score, vault.get(eid).data()) for eid, score in found]
        if as_json:
            print_json([{"entity_id": eid, "score": round(score, 4)} for eid, score, _ in rows])
            return
        if not rows:
            out.print("nothing related found")
        for eid, score, data in rows:
            label = str(data.get("title") or data.get("text") or "")[:60].replace("\n", " ")
            out.print(f"{eid}  {score:6.2f}  {label}")
