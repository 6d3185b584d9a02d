"""``ai ask``: the built-in provider's answer to a question over the vault, extractive, with
the ids of the entities it quotes.

The question's content words are looked up in the vault's full-text index (FTS5's ``bm25()``
ranks the entities); from the best entities, the sentences that share the most of the
question's words are the answer, each followed by the id of the entity it comes from. It reads
and writes nothing else: an answer is not content of the vault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidInput
from ._builtin import BUILTIN_SOURCE, STOP_WORDS, _strings, _terms, sentences

if TYPE_CHECKING:
    from ..vault import Vault

__all__ = ["Answer", "ask"]

#: what the answer says when nothing in the vault matches
NOTHING = "Nothing in the vault answers that."


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer: its text (sentences quoted from the vault, each with ``[id]``), the ids of the
    entities it quotes in order, and who answered."""

    text: str
    cited: tuple[str, ...]
    source: str = BUILTIN_SOURCE

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "cited": list(self.cited), "source": self.source}


def ask(vault: Vault, question: str, *, sentences_max: int = 3, entities: int = 5) -> Answer:
    """Answer ``question`` from the vault (see the module); InvalidInput for a question with no
    word to look up."""
    terms = _terms(question)
    stems = {stem for stem, _ in terms}
    words = sorted({p for _, w in terms for p in re.findall(r"\w+", w) if len(p) > 1 and p not in STOP_WORDS})
    if not words:
        raise InvalidInput("question: ask with some words the vault may hold")
    found = vault.search_scored(" OR ".join(f'"{w}"' for w in words[:24]), entities, fts=True)
    scored: list[tuple[float, int, int, str, str]] = []  # (-overlap, entity rank, position, sentence, id)
    for rank, (hit, _) in enumerate(found):
        text = "\n\n".join(_strings(hit.data()))
        for position, sentence in enumerate(sentences(text)):
            overlap = len(stems & {stem for stem, _ in _terms(sentence)})
            if overlap:
                scored.append((-overlap, rank, position, sentence, hit.entity_id))
    if not scored:
        return Answer(NOTHING, ())
    best = sorted(scored)[:sentences_max]
    best.sort(key=lambda s: (s[1], s[2]))  # in the order of the entities' rank, then the text
    cited = tuple(dict.fromkeys(s[4] for s in best))
    text = " ".join(f"{s[3]} [{s[4]}]" for s in best)
    return Answer(text, cited)
