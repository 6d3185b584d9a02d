"""AI as a writer, never an owner: providers that write at their truth level (L3 on this
device, LN4 on the LAN, C5 in the cloud), the built-in offline provider, and the redactor that
stands between the vault and any provider off the device. What AI writes against the user's
content becomes a suggestion, through the kernel's governed action path.

Layer: above the vault and the kernel (it reads the vault, and acts through the kernel); below
the faces. Nothing below it imports it.
"""

from __future__ import annotations

from ._builtin import BUILTIN_SOURCE, STOP_WORDS, CorpusStats, keyword_tags, related, sentences, summarize
from ._tasks import Task, extract_tasks

__all__: list[str] = [
    "BUILTIN_SOURCE",
    "STOP_WORDS",
    "CorpusStats",
    "Task",
    "extract_tasks",
    "keyword_tags",
    "related",
    "sentences",
    "summarize",
]
