"""Task extraction for the built-in provider: "call Bob tomorrow" in a note becomes a task
"call Bob" due the day after the note was read.

Hand-written rules rather than a date-parsing library (see README, "Written here rather than
taken from a library"): the phrases a to-do line uses are few, they must resolve against a
given ``now`` so the result is deterministic, and a task line is searched for a date inside
free text, which general parsers do slowly or not at all.

What is a task: an unchecked checkbox item (``- [ ] ...``), a ``TODO:`` line, or a sentence
that starts with an imperative verb ("call", "email", "pay", ...) or with "remember to",
"need to", "don't forget to" (in a numbered list only with a due date: numbered lines are
mostly the steps of a method, "2. Toast the rice"). What is a due date: ISO dates, ``Dec 15`` / ``15 December``
(with or without a year), ``today`` / ``tonight`` / ``tomorrow``, ``in 3 days`` / ``in two
weeks``, weekdays (``Friday`` is the next one after today; ``next Friday`` is the Friday of
next week), ``next week`` (its Monday), and ``this weekend`` (Saturday).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ._builtin import _wordset, sentences

__all__ = ["Task", "extract_tasks"]


@dataclass(frozen=True)
class Task:
    """A task found in a note: its title (the line without its marker or its date phrase), its
    due date if the line gave one, and where in the note's text the line is (``start, end``)."""

    title: str
    due: date | None
    source_span: tuple[int, int]


_VERBS = _wordset(
    """
    arrange ask book buy call cancel check clean collect confirm contact draft
    email e-mail file finish fix follow install invite mail meet message order pay
    phone pick plan post prepare print read register remind renew reply reserve return review
    ring schedule send share sign submit text update visit water write ping backup feed
    """
)
_LEADS = re.compile(
    r"^(?:(?:please|pls|and)\s+)?(?:(?:i|we)\s+)?(?:remember\s+to|don'?t\s+forget\s+to|"
    r"(?:really\s+)?(?:need|have|got)\s+to|must|should)\s+",
    re.IGNORECASE,
)
_CHECKBOX = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\[( |x|X)\]\s+")
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_STEP = re.compile(r"^\s*\d+[.)]\s+")
_TODO = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:TODO|To ?do|FIXME|Action(?: item)?)\b\s*[:\-\u2013]\s*", re.IGNORECASE
)

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_WD = r"(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MON = (
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)"
    r"(?:uary|ruary|ch|il|e|y|ust|tember|ober|ember)?\.?"
)
_DATE = re.compile(
    r"(?:\b(?:by|on|before|until|due|for)\s+)?(?:"
    r"(?P<iso>\b\d{4}-\d{2}-\d{2}\b)"
    rf"|\b(?P<md_m>{_MON})\s+(?P<md_d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<md_y>\d{{4}})\b)?"
    rf"|\b(?P<dm_d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dm_m>{_MON})(?:,?\s+(?P<dm_y>\d{{4}})\b)?"
    r"|\b(?:the\s+)?(?P<rel>day\s+after\s+tomorrow|today|tonight|tomorrow|tmrw|this\s+(?:morning|afternoon|evening))\b"
    r"|\bin\s+(?P<n>\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten)\s+(?P<unit>days?|weeks?)\b"
    rf"|\b(?P<which>next|this|coming)?\s*\b{_WD}(?![\w-])"
    r"|\b(?P<nextweek>next\s+week|this\s+weekend|the\s+weekend)\b"
    r")",
    re.IGNORECASE,
)


def _month(name: str) -> int:
    name = name.lower().rstrip(".")
    return next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(name[:3]))


def _month_day(today: date, month: int, day: int, year: str | None) -> date | None:
    """``Dec 15``: this year's, or next year's once this year's has passed (None if no such day)."""
    try:
        if year:
            return date(int(year), month, day)
        found = date(today.year, month, day)
        return found if found >= today else date(today.year + 1, month, day)
    except ValueError:
        return None


def _resolve(m: re.Match[str], today: date) -> date | None:
    """The date a :data:`_DATE` match names, counted from ``today``."""
    g = m.groupdict()
    if g["iso"]:
        try:
            return date.fromisoformat(g["iso"])
        except ValueError:
            return None
    if g["md_m"]:
        return _month_day(today, _month(g["md_m"]), int(g["md_d"]), g["md_y"])
    if g["dm_m"]:
        return _month_day(today, _month(g["dm_m"]), int(g["dm_d"]), g["dm_y"])
    if g["rel"]:
        rel = " ".join(g["rel"].lower().split())
        offset = {"tomorrow": 1, "tmrw": 1, "day after tomorrow": 2}.get(rel, 0)
        return today + timedelta(days=offset)
    if g["n"]:
        n = int(g["n"]) if g["n"].isdigit() else _NUMBERS[g["n"].lower()]
        return today + timedelta(days=n * (7 if g["unit"].lower().startswith("week") else 1))
    if g["wd"]:
        target = next(i for i, d in enumerate(_WEEKDAYS) if d.startswith(g["wd"].lower()[:3]))
        which = (g["which"] or "").lower()
        if which == "next":  # that weekday in next week (weeks start on Monday)
            return today + timedelta(days=7 - today.weekday() + target)
        ahead = (target - today.weekday()) % 7
        return today + timedelta(days=ahead if which == "this" else ahead or 7)
    phrase = " ".join((g["nextweek"] or "").lower().split())
    if phrase == "next week":
        return today + timedelta(days=7 - today.weekday())
    if phrase:  # this weekend, the weekend: the coming Saturday (today, if it is one)
        return today + timedelta(days=(5 - today.weekday()) % 7)
    return None


def _due(text: str, today: date) -> tuple[date | None, str]:
    """The first date phrase of ``text`` that names a real date, and ``text`` without it."""
    for m in _DATE.finditer(text):
        if not m.group(0).strip():
            continue
        due = _resolve(m, today)
        if due is not None:
            return due, (text[: m.start()] + " " + text[m.end() :])
    return None, text


def _title(text: str) -> str:
    title = " ".join(text.split()).strip(" ,;:-\u2013\u2014")
    title = re.sub(r"\s+([,.;:!?])", r"\1", title).rstrip(".!;,: ")
    return title


def _imperative(sentence: str) -> str | None:
    """The task in ``sentence`` if it is one ("Remember to call Bob" -> "call Bob"), else None."""
    rest = _LEADS.sub("", sentence.strip(), count=1)
    led = rest != sentence.strip()
    first = re.match(r"[A-Za-z][\w-]*", rest)
    if first is None:
        return None
    if led or first.group(0).lower() in _VERBS:
        return rest
    return None


def extract_tasks(text: str, now: datetime) -> list[Task]:
    """The tasks in ``text``, in order, with due dates counted from ``now`` (its date, as
    given: pass the user's local time). Checked checkboxes are done, so they are not tasks."""
    today = now.date()
    tasks: list[Task] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        start, body = offset, line.rstrip("\r\n")
        offset += len(line)
        span = (start + len(body) - len(body.lstrip()), start + len(body.rstrip()))
        candidates: list[str] = []
        step = False
        if box := _CHECKBOX.match(body):
            if box.group(1) == " ":
                candidates.append(body[box.end() :])
        elif todo := _TODO.match(body):
            candidates.append(body[todo.end() :])
        elif body.strip() and not body.lstrip().startswith(("#", ">", "```", "|")):
            item = _LIST.sub("", body, count=1)
            step = _STEP.match(body) is not None
            for sentence in sentences(item):
                if (task := _imperative(sentence)) is not None:
                    candidates.append(task)
        for candidate in candidates:
            due, rest = _due(candidate, today)
            if step and due is None:
                continue  # "2. Toast the rice": a numbered step of a method, not a to-do
            title = _title(_LEADS.sub("", rest.strip(), count=1))
            if title:
                tasks.append(Task(title=title, due=due, source_span=span))
    return tasks
