"""AI as a writer, never an owner: providers that write at their truth level (L3 on this
device, LN4 on the LAN, C5 in the cloud), the built-in offline provider, and the redactor that
stands between the vault and any provider off the device. What AI writes against the user's
content becomes a suggestion, through the kernel's governed action path.

Layer: above the vault and the kernel (it reads the vault, and acts through the kernel); below
the faces. Nothing below it imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names as _lazy_names
from ._ask import Answer, ask
from ._builtin import BUILTIN_SOURCE, STOP_WORDS, CorpusStats, keyword_tags, related, sentences, summarize
from ._tasks import Task, extract_tasks
from ._writer import AiWrite, ai_related, ai_summarize, ai_tag, ai_tasks, ask_provider

if TYPE_CHECKING:
    from ._openai import ChatAnswer, ProviderCheck, ProviderError, chat, check_provider, list_models
    from ._providers import Provider, Providers
    from ._redact import REDACTION_KINDS, Redacted, redact, redact_payload

__all__: list[str] = [
    "BUILTIN_SOURCE",
    "REDACTION_KINDS",
    "STOP_WORDS",
    "AiWrite",
    "Answer",
    "ChatAnswer",
    "CorpusStats",
    "Provider",
    "ProviderCheck",
    "ProviderError",
    "Providers",
    "Redacted",
    "Task",
    "ai_related",
    "ai_summarize",
    "ai_tag",
    "ai_tasks",
    "ask",
    "ask_provider",
    "chat",
    "check_provider",
    "extract_tasks",
    "keyword_tags",
    "list_models",
    "redact",
    "redact_payload",
    "related",
    "sentences",
    "summarize",
]

#: providers load pydantic, their client httpx, the redactor google-re2: imported when first
#: asked for (the built-in provider is the standard library's alone)
_LAZY: dict[str, str] = {
    **{n: "._providers" for n in ("Provider", "Providers")},
    **{n: "._redact" for n in ("REDACTION_KINDS", "Redacted", "redact", "redact_payload")},
    **{
        n: "._openai"
        for n in ("ChatAnswer", "ProviderCheck", "ProviderError", "chat", "check_provider", "list_models")
    },
}
__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
