"""What the built-in provider writes, through the kernel's governed action path, as
``ai-local:builtin`` (level 3).

Every output is an ordinary action of the vault (``entity.edit``, ``entity.put``) run as the
AI's actor, so policy decides it and the audit log records it, and the truth rules apply as
to any writer: a summary or tags of the user's note become a **suggestion** on it (the user
accepts or rejects it), never a change of it. Tasks found in a note are new entities of the
AI's own, at level 3, each naming the note it came from. ``related`` only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ._builtin import BUILTIN_SOURCE, keyword_tags, related, summarize
from ._tasks import extract_tasks

if TYPE_CHECKING:
    from ..vault import Vault, Written
    from ._openai import ChatAnswer
    from ._providers import Provider

__all__ = ["AiWrite", "ai_related", "ai_summarize", "ai_tag", "ai_tasks", "ask_provider"]

#: a note's fields the built-in provider reads (in this order)
_TEXT_FIELDS = ("title", "text", "body")


@dataclass(frozen=True, slots=True)
class AiWrite:
    """One thing the AI wrote: what it did (``applied``, ``suggestion``, ...), the entity, the
    suggestion's record id when it became one, and what was written."""

    outcome: str
    entity_id: str
    record_id: str | None
    written: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "entity_id": self.entity_id,
            "record_id": self.record_id,
            "written": self.written,
        }


def _text(vault: Vault, entity_id: str, *, title: bool = True) -> tuple[str, dict[str, Any]]:
    """An entity's text (its title, when ``title``, as a sentence of its own) and its data."""
    item = vault.get(entity_id)
    data = item.data()
    parts = [str(data[f]).strip() for f in _TEXT_FIELDS if isinstance(data.get(f), str) and data[f].strip()]
    if not title and len(parts) > 1 and isinstance(data.get("title"), str):
        parts = parts[1:]  # a summary is of the body: the title is not one of its sentences
    text = "\n\n".join(p if p[-1:] in ".!?:" else p + "." for p in parts)
    if not text:
        raise InvalidInput(
            f"{item.entity_type} {entity_id} has no text for the AI to read (title, text or body)"
        )
    return text, data


def _run(vault: Vault, name: str, params: dict[str, Any], source: str = BUILTIN_SOURCE) -> Written:
    out = vault.kernel.run(name, params, actor=vault.actor(source))
    return out  # type: ignore[return-value]


def ask_provider(
    vault: Vault,
    provider: Provider,
    entity_ids: list[str],
    instruction: str,
    text: str,
    *,
    allow_raw: bool = False,
) -> ChatAnswer:
    """Send ``text`` (of the entities ``entity_ids``) to ``provider`` with ``instruction``; its
    answer. A cloud provider gets it redacted unless ``allow_raw``. A call to a LAN or cloud
    provider leaves an audit entry ``ai.call`` as the provider: which entities, how much text,
    redacted (by kind and count) or raw; never the text."""
    from ._openai import chat

    answer = chat(
        provider,
        [{"role": "system", "content": instruction}, {"role": "user", "content": text}],
        allow_raw=allow_raw,
    )
    if provider.where != "local":
        _audit_call(vault, provider, entity_ids, len(text), answer)
    return answer


def _audit_call(
    vault: Vault, provider: Provider, entity_ids: list[str], chars: int, answer: ChatAnswer
) -> None:
    import hashlib

    from ..kernel import Actor, AuditRecord, Target

    items = [vault.get(e) for e in entity_ids]
    targets = tuple(Target(i.entity_id, i.entity_type, i.version, int(i.truth_level)) for i in items)
    how = (
        "raw"
        if answer.raw
        else "redacted "
        + (", ".join(f"{k} {n}" for k, n in sorted(answer.redacted.items())) or "(nothing found)")
    )
    record = AuditRecord(
        vault.tenant_id,
        "ai.call",
        "1.0.0",
        Actor(provider.source, vault.device_id, vault.tenant_id),
        "allowed",
        datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        hashlib.sha256(",".join(entity_ids).encode()).hexdigest(),
        targets,
        reason=f"{provider.name} ({provider.where}, {provider.level.short}): {chars} characters sent, {how}",
    )
    with vault.transaction():
        vault.audit.append(record)


def _write(done: Written, written: dict[str, Any]) -> AiWrite:
    return AiWrite(done.outcome, done.item.entity_id, done.record_id, written)


def ai_summarize(
    vault: Vault,
    entity_id: str,
    *,
    sentences: int = 3,
    provider: Provider | None = None,
    allow_raw: bool = False,
) -> AiWrite:
    """Summarize an entity's text into its ``summary`` field: a suggestion on the user's
    content. The built-in provider's summary is extractive; a configured ``provider``'s is
    written at its level, as its source (see :func:`ask_provider` for what it is sent)."""
    text, _ = _text(vault, entity_id, title=False)
    source = BUILTIN_SOURCE
    if provider is None:
        summary = summarize(text, max_sentences=sentences)
    else:
        instruction = (
            f"Summarize the user's note in at most {sentences} sentences. Answer with the summary only."
        )
        answer = ask_provider(vault, provider, [entity_id], instruction, text, allow_raw=allow_raw)
        summary, source = answer.text.strip(), answer.source
    if not summary:
        raise InvalidInput(f"entity {entity_id} has no sentence to summarize")
    done = _run(vault, "entity.edit", {"id": entity_id, "changes": {"summary": summary}}, source)
    return _write(done, {"summary": summary})


def ai_tag(vault: Vault, entity_id: str, *, limit: int = 5) -> AiWrite | None:
    """Tag an entity with its keywords (those it has not already): a suggestion on the user's
    content; None when every keyword is a tag already."""
    text, data = _text(vault, entity_id)
    have = [str(t) for t in data.get("tags") or [] if isinstance(t, str)]
    new = [t for t in keyword_tags(text, limit=limit) if t not in have]
    if not new:
        return None
    done = _run(vault, "entity.edit", {"id": entity_id, "changes": {"tags": have + new}})
    return _write(done, {"tags": new})


def ai_tasks(vault: Vault, entity_id: str, *, now: datetime | None = None) -> list[AiWrite]:
    """Create a task (level 3, the AI's own) for each one found in an entity's text, with its
    due date and the entity it came from."""
    text, _ = _text(vault, entity_id)
    found = extract_tasks(text, now or datetime.now(UTC))
    written = []
    for task in found:
        data: dict[str, Any] = {"title": task.title, "done": False, "from": entity_id}
        if task.due is not None:
            data["due"] = task.due.isoformat()
        written.append(_write(_run(vault, "entity.put", {"type": "task", "data": data}), data))
    return written


def ai_related(vault: Vault, entity_id: str, *, limit: int = 5) -> list[tuple[str, float]]:
    """The entities most related to ``entity_id`` (BM25 over the vault's full-text index),
    best first; nothing is written."""
    return related(vault, entity_id, limit=limit)
