"""The redactor: what stands between the vault and a provider off the device (C5, the cloud).
A cloud provider is sent redacted text only: secrets, keys, tokens, e-mail addresses, phone
numbers, card numbers and IBANs are replaced by a typed placeholder (``[EMAIL]``, ``[AWS_KEY]``)
before the text leaves, and the caller learns how many of each kind went, never the values.

Written here rather than taken from a library (see README, "Written here rather than taken from
a library"): detect-secrets scans files line by line for a report, returns values rather than
spans, knows no e-mail, phone, card or IBAN, and pulls in requests and PyYAML; scrubadub (PII)
pulls in scikit-learn and textblob and knows no keys. Neither promises linear time. Each
detector here is an RE2 pattern (google-re2, already a dependency: linear time whatever the
input, no catastrophic backtracking), and a small check in Python where a pattern alone would
eat innocent text (Luhn for cards, mod 97 for IBANs, digit counts for phone numbers, entropy for
bare tokens). UUIDs, dates, times, version numbers and plain integers survive: AI answers cite
entity ids, which are UUIDs.

Over-redaction is the safe side: a false positive costs the model a word, a miss leaks a secret.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from ..kernel._dead_letters import is_secret_name

__all__ = ["REDACTION_KINDS", "Redacted", "redact", "redact_payload"]

_OPTIONS = re2.Options()
_OPTIONS.max_mem = 64 << 20  # room for the DFA on a large input; linear time either way
#: a placeholder, which no detector matches (so redacting twice changes nothing)
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")  # on one run already found by RE2: no backtracking to fear
#: what an assignment's value must not be to count as a secret: code, a template, nothing
_NOT_A_VALUE = frozenset(
    {"", "none", "null", "nil", "true", "false", "undefined", "***", "redacted", "xxx", "...",
     "str", "string", "int", "bytes", "bool", "float", "number", "any", "object", "secretstr"}
)  # fmt: skip
#: words of prose after "password:" that are not the password
_PROSE_WORDS = frozenset(
    {"a", "an", "the", "to", "is", "are", "be", "of", "for", "and", "or", "not", "no", "see", "give",
     "get", "set", "use", "it", "this", "that", "your", "our", "its", "in", "on", "at", "by", "with",
     "from", "as", "if", "when", "required", "optional", "unknown", "changed", "reset"}
)  # fmt: skip
#: an unquoted lower-case word followed by another is prose ("secret: keep them safe"), not a
#: password; "password: sunshine" at the end of a line or before punctuation still goes
_PROSE_NEXT = re.compile(r"[ \t]+[a-z]")
#: words of a name that make it about a secret rather than holding one
_ABOUT_A_SECRET = frozenset(
    {"length", "len", "env", "prefix", "file", "path", "set", "alg", "algorithm", "label", "hash",
     "hashed", "name", "id", "type", "count", "ttl", "min", "max", "size", "expires", "expiry",
     "field", "header", "kind", "mode", "required", "enabled", "hint", "prompt", "help", "with"}
)  # fmt: skip
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
#: at most this many passes: a pass can expose a neighbour (a boundary freed by a placeholder)
_MAX_PASSES = 8


@dataclass(frozen=True, slots=True)
class Redacted:
    """Text with every finding replaced by its placeholder, and how many of each kind went.
    ``counts`` never holds a removed value."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """How many findings were removed."""
        return sum(self.counts.values())


# --- checks that keep innocent text ---------------------------------------------------------


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_issuer(digits: str) -> bool:
    """Whether ``digits`` start like a card of a known network (so a 13-digit millisecond
    timestamp, which starts with 1, is not taken for a card)."""
    two, four, n = int(digits[:2]), int(digits[:4]), len(digits)
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # Amex
    if two in (30, 36, 38, 39):
        return n in (14, 16, 19)  # Diners
    return two in (35, 50, 56, 57, 58, 60, 62, 63, 64, 65, 67, 68, 69) and 16 <= n <= 19


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _card_issuer(digits) and _luhn(digits)


def _card(m: Any) -> str | None:
    """Every card in a run of digit groups (``4111 1111 1111 1111 0``, two cards in a row): a
    card starts and ends at a group's edge, and the longest valid one from each edge is taken.
    Groups have 3+ digits (cards are written 4-4-4-4, 4-6-5), so a card spans at most 7."""
    run: str = m.group(0)
    groups = re.split(r"([ \-])", run)  # digits, separator, digits, ...: one RE2 match, no backtracking
    out, i, changed = [], 0, False
    while i < len(groups):
        found, digits = None, ""
        for j in range(i, min(len(groups), i + 13), 2):
            digits += groups[j]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and _is_card(digits):
                found = j + 1
        if found is None:
            out.extend(groups[i : i + 2])
            i += 2
        else:
            out.append("[CARD]")
            out.extend(groups[found : found + 1])
            i, changed = found + 1, True
    return "".join(out) if changed else None


def _iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _iban(m: Any) -> str | None:
    """An IBAN, or one with a trailing word caught by the pattern: shorter prefixes are tried."""
    text: str = m.group(0)
    cut = len(text)
    while cut > 0:
        if _iban_ok(text[:cut].replace(" ", "").upper()):
            return "[IBAN]" + text[cut:]
        cut = text.rfind(" ", 0, cut)
    return None


def _phone(m: Any) -> str | None:
    """A phone number: 8 to 15 digits (E.164) written with one kind of separator, so a date and
    time (``07.12.2026 10``) or a range is not taken for one."""
    text = m.group(0)
    digits = sum(ch.isdigit() for ch in text)
    if not 8 <= digits <= 15:
        return None
    if text.startswith("+"):
        return "[PHONE]"  # the + marks it; "+1 (555) 123-4567" mixes separators freely
    rest = text.partition(")")[2].lstrip() if text.startswith("(") else text
    if len({ch for ch in rest if not ch.isdigit()}) > 1 or digits < 10:
        return None  # mixed separators, or too short to be a national number with its area code
    return "[PHONE]"


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _looks_random(piece: str) -> bool:
    """Whether a run of 32+ token characters is a key: hex with high entropy, or base64 mixing
    lower case, upper case and digits often (a CamelCase name or a path switches rarely)."""
    if len(piece) < 32:
        return False
    if all(ch in "0123456789abcdefABCDEF" for ch in piece):
        return (
            any(ch.isdigit() for ch in piece) and any(ch.isalpha() for ch in piece) and _entropy(piece) >= 2.8
        )
    if not (
        any(c.islower() for c in piece)
        and any(c.isupper() for c in piece)
        and any(c.isdigit() for c in piece)
    ):
        return False
    if piece.count("/") >= 3 and len(piece) / piece.count("/") < 12:
        return False  # a path
    classes = ["l" if c.islower() else "u" if c.isupper() else "d" if c.isdigit() else "s" for c in piece]
    switches = sum(a != b for a, b in itertools.pairwise(classes)) / (len(piece) - 1)
    return switches >= 0.35 and _entropy(piece) >= 4.0


def _token(m: Any) -> str | None:
    """A bare high-entropy run, with any UUID in it kept (entity ids are cited by AI answers)."""
    run = m.group(0)
    parts, last = [], 0
    for u in _UUID.finditer(run):
        parts.extend([run[last : u.start()], u.group(0)])
        last = u.end()
    parts.append(run[last:])
    out = [
        p if i % 2 else "[TOKEN]" if _looks_random(p) else _HEX.sub(_hex_token, p)
        for i, p in enumerate(parts)
    ]
    new = "".join(out)
    return new if new != run else None


def _hex_token(m: re.Match[str]) -> str:
    """A hex key inside a longer run (``=<hex>;``, ``/<hex>/``, glued to a word)."""
    return "[TOKEN]" if _looks_random(m.group(0)) else m.group(0)


def _code(m: Any) -> str | None:
    """An enrolment code has letters (all 16 of its characters digits: 1 in 10^8), so a card or
    an id written 4-4-4-4 in digits is not taken for one."""
    return "[ENROLMENT_CODE]" if any(ch.isalpha() for ch in m.group(0)) else None


def _after(m: Any, name: str) -> str:
    """A few characters of the text after group ``name`` (not part of the match)."""
    end = m.span(m.re.groupindex[name])[1]
    text: str = m.string
    return text[end : end + 3]


def _not_a_secret(value: str, unquoted: bool, after: str = "") -> bool:
    """Whether an assigned value is not a secret: empty, a keyword or type, an elision
    (``tvwh_...``), a placeholder already, a template; unquoted also code (a call, a variable
    named like a secret: ``token = new_token``), a metavariable (``--token TEXT``) or a word of
    prose (``passphrase: a way back``)."""
    core = value.rstrip(").,:;!?`}]")
    if core.lower() in _NOT_A_VALUE or "..." in value or "\u2026" in value:
        return True
    if not _PLACEHOLDER.sub("", value).replace("\\n", "").replace("\\r", "").strip():
        return True  # redacted already (a key in JSON, its escaped newline kept)
    if "{{" in value or "${" in value:
        return True
    if len(core) < 4:
        return True  # "t", "pw1": too short to be worth a placeholder, or to be a secret at all
    if not unquoted:
        return False
    return (
        value[0] in "$%{<([@*`="
        or "(" in value
        or "[" in value
        or is_secret_name(core)
        or (core.isalpha() and core.isupper())
        or core.lower() in _PROSE_WORDS
        or (core.isalpha() and core.islower() and _PROSE_NEXT.match(after) is not None)
    )


def _value(m: Any) -> str | None:
    """An assignment (``password = ...``): its value goes unless it is not a secret."""
    words = {w.lower() for w in _NAME_WORDS.findall(m.group("n"))}
    if words & _ABOUT_A_SECRET:
        return None  # PASSPHRASE_ENV, token_hash, secret_prefix: a name about a secret, not one
    group = next(g for g in ("q", "s", "u") if m.group(g) is not None)
    if _not_a_secret(m.group(group), group == "u", _after(m, group)):
        return None
    return _swap(m, group, "[SECRET]")


def _swap(m: Any, name: str, placeholder: str) -> str:
    """The match with its group ``name`` replaced by ``placeholder`` (re2 spans take numbers)."""
    start, end = m.span(m.re.groupindex[name])
    whole: str = m.group(0)
    return whole[: start - m.start()] + placeholder + whole[end - m.start() :]


def _group(name: str, placeholder: str) -> Callable[[Any], str | None]:
    """Replace only group ``name`` of the match (a header's value, not the header)."""

    def replace(m: Any) -> str | None:
        value = m.group(name)
        if _PLACEHOLDER.fullmatch(value):
            return None
        return _swap(m, name, placeholder)

    return replace


def _authorization(m: Any) -> str | None:
    """An Authorization header's credentials, not its scheme once the credentials are gone."""
    if m.group(0).endswith("]") or _not_a_secret(m.group("a"), unquoted=True):
        return None
    return _swap(m, "a", "[SECRET]")


def _flag(m: Any) -> str | None:
    """A command-line flag's secret (``--password hunter2``), not a metavariable (``TEXT``)."""
    return None if _not_a_secret(m.group("f"), True, _after(m, "f")) else _swap(m, "f", "[SECRET]")


def _with_digit(name: str, placeholder: str) -> Callable[[Any], str | None]:
    inner = _group(name, placeholder)
    return lambda m: inner(m) if any(ch.isdigit() for ch in m.group(name)) else None


_B64 = r"[A-Za-z0-9_\-]"
_KEY_WORD = (
    r"(?:password|passwd|pwd|passphrase|secret|token|api[_\-]?key|apikey|access[_\-]?key|"
    r"private[_\-]?key|client[_\-]?secret|credentials?)"
)

#: (kind, RE2 pattern, check) in the order they run: the most specific first, so a GitHub token
#: in ``token = ghp_...`` is named a GitHub token. A check returns the match's replacement, or
#: None to keep it; with no check the whole match becomes ``[KIND]``.
_DETECTORS: list[tuple[str, str, Callable[[Any], str | None] | None]] = [
    ("PRIVATE_KEY", r"-----BEGIN[ A-Z0-9]*PRIVATE KEY[ A-Z]*-----[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY[ A-Z]*-----", None),
    # a private key cut short (no END line): its header lines and base64 lines
    ("PRIVATE_KEY", r"-----BEGIN[ A-Z0-9]*PRIVATE KEY[ A-Z]*-----(?:[ \t]*\r?\n[ \t]*(?:[A-Za-z0-9+/=]{16,}|[A-Za-z\-]+: [^\n]*))*", None),
    ("JWT", r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*", None),
    ("CREDENTIALS", r"\b[A-Za-z][A-Za-z0-9+.\-]*://(?P<c>[^\s:/@\[\]]*:[^\s@/\[\]]+)@", _group("c", "[CREDENTIALS]")),
    ("AWS_KEY", r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}", None),
    ("AWS_SECRET", r"(?i)\baws[A-Za-z0-9_ .\-]{0,30}(?:secret|key)[A-Za-z0-9_ .\-]{0,20}[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+=]{40})", _group("v", "[AWS_SECRET]")),
    ("GITHUB_TOKEN", r"(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})\b", None),
    ("SLACK_TOKEN", r"xox[abposr]-[A-Za-z0-9\-]{10,250}", None),
    ("SLACK_TOKEN", r"hooks\.slack\.com/services/(?P<p>[A-Za-z0-9/_\-]{16,})", _group("p", "[SLACK_TOKEN]")),
    ("STRIPE_KEY", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}\b|\bwhsec_[A-Za-z0-9]{20,}\b", None),
    ("API_KEY", r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_\-]{20,}|AIza[0-9A-Za-z_\-]{35}", None),
    # GitLab, npm, PyPI, Hugging Face, Slack app, DigitalOcean, Shopify, Square, SendGrid
    ("API_KEY", r"\b(?:glpat-|npm_|pypi-|hf_|xapp-|dop_v1_|shpat_|sq0atp-)[A-Za-z0-9_\-]{20,}|\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}", None),
    ("WEBHOOK_SECRET", r"tvwh_" + _B64 + r"{16,}", None),
    ("ADMIN_TOKEN", r"tvadm_" + _B64 + r"{16,}", None),
    ("ACCESS_TOKEN", r"\btva_" + _B64 + r"{40,}", None),
    ("ENROLMENT_CODE", r"\b[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}\b", _code),
    ("TOKEN", r"(?i)\b(?:bearer|token)\s+(?P<t>[A-Za-z0-9._~+/=\-]{16,})", _with_digit("t", "[TOKEN]")),
    ("SECRET", r"(?i)\bauthorization\s*[:=]\s*[\"']?(?:[A-Za-z]+ +)?(?P<a>[^\s\"'`,;\[\]]{8,})(?: +\[[A-Z_]+\])?", _authorization),
    (
        "SECRET",
        r"(?i)\b(?P<n>[A-Za-z0-9_.\-]*" + _KEY_WORD + r"(?:s|[_.\-][A-Za-z0-9_.\-]*|(?-i:[A-Z])[A-Za-z0-9_.\-]*)?)"
        r"[\"']?(?:[ \t]+(?:is|was))?[ \t]*(?::=|=>|:|=)[ \t]*"
        r"(?:\"(?P<q>[^\"\n]*)\"|'(?P<s>[^'\n]*)'|(?P<u>[^\s\"'`,;]+))",
        _value,
    ),
    ("SECRET", r"(?i)--(?:password|passwd|passphrase|secret|token|api-key)\s+(?P<f>[^\s\"'\-\[][^\s\"'`]*)", _flag),
    ("EMAIL", r"[\pL\pN._%+\-]+@[\pL\pN](?:[\pL\pN\-]*\.)+\pL{2,24}", None),
    ("IBAN", r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", _iban),
    ("CARD", r"\b[0-9]{3,}(?:[ \-][0-9]{3,})*\b", _card),
    # international (+CC ...), then national: (555) 123-4567, 555-123-4567, 020 7946 0958, 01 23 45 67 89
    ("PHONE", r"\+[1-9][0-9]{0,2}(?:[ .\-]?\([0-9]{1,4}\))?(?:[ .\-]?[0-9]{1,5}){1,6}\b", _phone),
    ("PHONE", r"\([0-9]{3}\) ?[0-9]{3}[\-. ][0-9]{4}\b", _phone),
    ("PHONE", r"\b[0-9]{3}[\-.][0-9]{3}[\-.][0-9]{4}\b", _phone),
    ("PHONE", r"\b0[1-9][0-9]{1,3}[ \-][0-9]{3,4}[ \-]?[0-9]{3,4}\b|\b0[1-9](?:[ .][0-9]{2}){4}\b", _phone),
    ("TOKEN", r"[A-Za-z0-9+/=_\-]{32,}", _token),
]  # fmt: skip

_COMPILED = [(kind, re2.compile(pattern, options=_OPTIONS), check) for kind, pattern, check in _DETECTORS]

#: every kind of finding, as ``counts`` names it and ``[KIND]`` marks it
REDACTION_KINDS: tuple[str, ...] = tuple(dict.fromkeys(kind for kind, _, _ in _DETECTORS))


def _pass(text: str, counts: Counter[str]) -> str:
    for kind, pattern, check in _COMPILED:
        out: list[str] = []
        last = 0
        for m in pattern.finditer(text):
            new = f"[{kind}]" if check is None else check(m)
            if new is None or new == m.group(0):
                continue
            out.extend([text[last : m.start()], new])
            last = m.end()
            counts[kind] += new.count(f"[{kind}]") or 1
        if out:
            out.append(text[last:])
            text = "".join(out)
    return text


def redact(text: str) -> Redacted:
    """``text`` with every secret, key, token, e-mail address, phone number, card number and
    IBAN replaced by its typed placeholder, and the count of each kind removed. Idempotent:
    redacting the result again changes nothing."""
    counts: Counter[str] = Counter()
    for _ in range(_MAX_PASSES):
        before = text
        text = _pass(text, counts)
        if text == before:
            break
    return Redacted(text, dict(counts))


def redact_payload(payload: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """``payload`` with every string redacted at any depth (keys too: a map keyed by e-mail
    address is content), the value of every field whose name is a secret's (``api_key``,
    ``password``) replaced by ``[SECRET]``, and an integer that is a card or phone number
    redacted as its text; with the counts of what went. The input is not changed."""
    counts: Counter[str] = Counter()

    def text(value: str) -> str:
        found = redact(value)
        counts.update(found.counts)
        return found.text

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return text(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000_000:
            found = redact(str(value))
            counts.update(found.counts)
            return found.text if found.counts else value
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = text(str(k))
                while key in out:  # two keys redacted alike ([EMAIL]) both stay
                    key += "'"
                if is_secret_name(str(k)) and v is not None:
                    counts["SECRET"] += 1
                    out[key] = "[SECRET]"
                else:
                    out[key] = walk(v)
            return out
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return walk(payload), dict(counts)
