"""The built-in offline provider (``ai-local:builtin``, level L3): summaries, tags and related
notes computed here, with no model to download, so every AI feature works on a fresh machine
and in tests.

Everything is plain counting over the text, on purpose: it is deterministic (the same text
gives the same output, on every device), fast enough to run on every new note (see
``benchmarks/ai_bench.py``), and honest about what it is (an extractive summary picks the
note's own sentences; it never writes words the user did not). Task extraction lives in
:mod:`._tasks`. This is a pure library: what it returns becomes a suggestion only through the
kernel, in the layer that calls it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..vault import Vault

__all__ = [
    "BUILTIN_SOURCE",
    "STOP_WORDS",
    "CorpusStats",
    "keyword_tags",
    "related",
    "sentences",
    "summarize",
]


def _wordset(words: str) -> frozenset[str]:
    """A set of words written as one whitespace-separated string (easier to read and keep)."""
    return frozenset(words.split())


#: The origin source the built-in provider writes with: on this device, level L3.
BUILTIN_SOURCE = "ai-local:builtin"

#: English function words and the filler of notes: never a tag, never a query term. Compact on
#: purpose (a tag list only needs the words that would otherwise win by frequency).
STOP_WORDS = _wordset(
    """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each either else etc even ever every few for from further
    get gets getting got had hadn't has hasn't have haven't having he he'd he'll he's her here
    here's hers herself him himself his how how's however i i'd i'll i'm i've if in into is
    isn't it it's its itself just let's like made make many may me might more most much must
    mustn't my myself need needs no nor not now of off often on once one only or other ought our
    ours ourselves out over own per quite rather re really same say said says shall shan't she
    she'd she'll she's should shouldn't since so some still such than that that's the their
    theirs them themselves then there there's these they they'd they'll they're they've thing
    things this those though through thus to too under until up upon us use used using very via
    was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
    whether which while who who's whom whose why why's will with within without won't would
    wouldn't yes yet you you'd you'll you're you've your yours yourself yourselves
    today tomorrow yesterday tonight week weeks day days monday tuesday wednesday thursday
    friday saturday sunday todo done note notes ok okay maybe lot lots bit well good new
    next last first
    """
)

_WORD = re.compile(r"[^\W\d_](?:[\w'\u2019-]*\w)?")
_HASHTAG = re.compile(r"(?<![\w#])#([^\W\d_][\w-]*)")
_BLOCK = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_SPLIT = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREV = _wordset(
    "mr mrs ms dr prof st sr jr vs etc e.g i.e cf approx no fig jan feb mar apr jun jul aug sep "
    "sept oct nov dec mon tue wed thu fri sat sun inc ltd co corp dept est min max"
)


def _words(text: str) -> list[str]:
    """The words of ``text``, lower-case, apostrophes made plain (a typographic apostrophe is ``don't``)."""
    return [w.lower().replace("\u2019", "'") for w in _WORD.findall(text)]


def _stem(word: str) -> str:
    """A light stem, only to count ``meeting``/``meetings`` or ``plan``/``plans`` as one term
    (the surface form shown is always a word of the text, never the stem)."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _terms(text: str) -> list[tuple[str, str]]:
    """``(stem, word)`` for each content word of ``text``: no stop words, no one-letter words."""
    return [(_stem(w), w) for w in _words(text) if len(w) > 1 and w not in STOP_WORDS]


# -- sentences and summaries -------------------------------------------------------------


def _split_paragraph(paragraph: str) -> list[str]:
    """Split at sentence ends, but not after an abbreviation (``Dr.``, ``e.g.``) or an initial."""
    out: list[str] = []
    start = 0
    for match in _SPLIT.finditer(paragraph):
        before = paragraph[start : match.start()].rstrip("\"')]")
        tail = before[-32:].split()  # the last word only: linear in the paragraph's length
        last = tail[-1] if tail else ""
        token = last.rstrip(".").lower()
        if before.endswith(".") and (token in _ABBREV or (len(token) == 1 and token.isalpha())):
            continue
        out.append(paragraph[start : match.start()].strip())
        start = match.end()
    out.append(paragraph[start:].strip())
    return [s for s in out if s]


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, in order: Markdown headings are left out, each list item is a
    sentence of its own, and the lines of one paragraph are joined before splitting."""
    result: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            result.extend(_split_paragraph(" ".join(paragraph)))
            paragraph.clear()

    for line in text.splitlines():
        if not line.strip() or _HEADING.match(line) or line.strip().startswith("```"):
            flush()
            continue
        marker = _BLOCK.match(line)
        if marker and not line.lstrip().startswith(">"):
            flush()  # a list item starts a paragraph of its own
        body = line[marker.end() :] if marker else line
        if body.strip():
            paragraph.append(body.strip())
    flush()
    return result


def summarize(text: str, max_sentences: int = 3) -> str:
    """An extractive summary: the ``max_sentences`` sentences of ``text`` that carry most of its
    frequent content words, in the order they appear (an empty string for empty text).

    Each sentence scores two ways, each scaled to its best: in how many sentences its distinct
    terms occur (divided by the square root of their number, so a long sentence does not
    win by length alone), and how much it shares with the other sentences (TextRank's overlap
    similarity, summed: a central sentence repeats what the rest is about). The first sentence
    gets a small lead bonus (notes tend to open with their point); ties go to the earlier one.
    """
    found = sentences(text)
    if max_sentences <= 0 or not found:
        return ""
    if len(found) <= max_sentences:
        return " ".join(found)
    per_sentence = [{stem for stem, _ in _terms(s)} for s in found]
    freq = Counter(stem for stems in per_sentence for stem in stems)
    top = max(freq.values(), default=1)
    by_freq = [sum(freq[s] / top for s in p) / math.sqrt(len(p)) if p else 0.0 for p in per_sentence]
    # Overlap with every other sentence, summed without visiting the pairs: a term in k
    # sentences adds k - 1 to each of them; the other sentence's length in TextRank's
    # denominator is taken at the mean, so a long note costs linear time, not quadratic.
    mean_log = sum(math.log(len(p) + 1) for p in per_sentence) / len(per_sentence)
    by_overlap = [
        sum(freq[s] - 1 for s in p) / (math.log(len(p) + 1) + mean_log) if p else 0.0 for p in per_sentence
    ]
    best_freq, best_overlap = max(by_freq) or 1.0, max(by_overlap) or 1.0
    scores = [
        (f / best_freq + o / best_overlap) * (1.15 if i == 0 else 1.0)
        for i, (f, o) in enumerate(zip(by_freq, by_overlap, strict=True))
    ]
    chosen = sorted(range(len(found)), key=lambda i: (-scores[i], i))[:max_sentences]
    return " ".join(found[i] for i in sorted(chosen))


# -- tags -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusStats:
    """How many documents a corpus holds and in how many each term (stem) occurs: what weighs a
    note's terms by TF-IDF, so a word every note uses is not a tag."""

    documents: int = 0
    document_frequency: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CorpusStats:
        """The statistics of ``texts``, each one document."""
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            n += 1
            df.update({stem for stem, _ in _terms(text)})
        return cls(documents=n, document_frequency=dict(df))

    def idf(self, stem: str) -> float:
        """Smoothed inverse document frequency (1.0 for a term in every document)."""
        return math.log((self.documents + 1) / (self.document_frequency.get(stem, 0) + 1)) + 1.0


def _slug(word: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", word.lower().replace("'", "")).strip("-")


def _tag_ok(tag: str) -> bool:
    return len(tag) > 2 and not tag.replace("-", "").isdigit() and tag not in STOP_WORDS


def keyword_tags(text: str, limit: int = 5, corpus: CorpusStats | None = None) -> list[str]:
    """Up to ``limit`` tags for ``text``, best first: slug-like (``[a-z0-9-]``), lower-case, no
    stop words, no duplicates, never a number alone.

    The user's own ``#hashtags`` come first; then content words ranked by term frequency, or by
    TF-IDF when ``corpus`` statistics are given. ``meeting`` and ``meetings`` count as one term,
    shown in the form the text uses most (ties: the first used).
    """
    if limit <= 0:
        return []
    tags: list[str] = []
    for raw in _HASHTAG.findall(text):
        tag = _slug(raw)
        if _tag_ok(tag) and tag not in tags:
            tags.append(tag)
    counts: Counter[str] = Counter()
    forms: dict[str, Counter[str]] = {}
    first: dict[str, int] = {}
    for position, (stem, word) in enumerate(_terms(text)):
        counts[stem] += 1
        forms.setdefault(stem, Counter())[word] += 1
        first.setdefault(stem, position)

    def weight(stem: str) -> float:
        return counts[stem] * (corpus.idf(stem) if corpus is not None else 1.0)

    for stem in sorted(counts, key=lambda s: (-weight(s), first[s])):
        if len(tags) >= limit:
            break
        word = max(forms[stem].items(), key=lambda kv: kv[1])[0]  # first most common form
        tag = _slug(word)
        if _tag_ok(tag) and tag not in tags:
            tags.append(tag)
    return tags[:limit]


# -- related notes ----------------------------------------------------------------------


def _strings(value: Any) -> Iterable[str]:
    """Every string in a decoded payload, depth first (the text the full-text index holds)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def related(vault: Vault, entity_id: str, limit: int = 5, *, terms: int = 12) -> list[tuple[str, float]]:
    """The live entities most related to ``entity_id``, best first, with their BM25 scores.

    The query is the note's ``terms`` most frequent content words, OR-ed, run through the
    vault's full-text index (:meth:`Vault.search_scored`, FTS5's ``bm25()``): a note sharing
    more of them, and rarer ones, ranks higher. The note itself is never in the list, and
    deleted entities are not in the index. NotFound if the entity does not exist.
    """
    item = vault.get(entity_id)
    text = " ".join(_strings(item.data()))
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for position, (_, word) in enumerate(_terms(text)):
        for part in re.findall(r"\w+", word):  # as the index tokenises (unicode61)
            if len(part) > 1 and not part.isdigit() and part not in STOP_WORDS:
                counts[part] += 1
                first.setdefault(part, position)
    top = sorted(counts, key=lambda w: (-counts[w], first[w]))[:terms]
    if not top or limit <= 0:
        return []
    query = " OR ".join(f'"{word}"' for word in top)
    found = vault.search_scored(query, limit + 1, fts=True)
    return [(hit.entity_id, score) for hit, score in found if hit.entity_id != entity_id][:limit]
