"""Cedar policy text made ready to decide with: checked (a one-line error naming the line),
parsed once with the built-in rules in front, and each policy's annotations kept so that a
decision can say which policies made it and why."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidInput
from ._policy_text import APPROVAL_KINDS, BUILTIN_POLICY, DEFAULT_POLICY

if TYPE_CHECKING:
    import cedarpy

__all__ = [
    "CompiledPolicy",
    "InvalidPolicy",
    "PolicyRule",
    "PolicyStore",
    "PolicyVersion",
    "builtin_rules",
    "check_policy",
    "compile_policy",
]

#: a tenant policy's text is at most this long (it travels in every policy sync)
MAX_POLICY_CHARS = 256 << 10
_BUILTIN_PREFIX = "builtin."


class InvalidPolicy(InvalidInput):
    """Policy text that cannot be used: ``line`` is where (1-based in the text given)."""

    code = "invalid_policy"

    def __init__(self, message: str, *, line: int | None = None, hint: str | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message, hint=hint)
        self.line = line


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One policy as a decision names it: its ``@id`` (``tenant#N`` for the N-th tenant policy
    without one), effect, the approval a permit asks for and its ``@reason``."""

    id: str
    effect: str  # permit | forbid
    approval: str | None = None
    reason: str = ""
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored version of a tenant's policy (version 0: the default, never stored)."""

    version: int
    text: str
    set_by: str = ""
    set_at: str = ""


class PolicyStore(Protocol):
    """Where a tenant's policy versions live (the vault on a device, the hub's database)."""

    def current(self) -> PolicyVersion:
        """The policy in force: the newest stored version, else the default (version 0)."""
        ...

    def set(self, text: str, set_by: str) -> PolicyVersion:
        """Check ``text`` (InvalidPolicy, nothing stored) and store it as a new version."""
        ...


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A tenant policy parsed with the built-in rules in front, ready for Cedar."""

    version: int
    text: str
    #: the built-in rules, then the tenant's, in the order of the text
    rules: tuple[PolicyRule, ...]
    policy_set: cedarpy.PolicySet = field(repr=False)
    #: Cedar's own ids (policy0, policy1, ...) -> the rules
    by_cedar_id: dict[str, PolicyRule] = field(repr=False)


def _cedar() -> Any:
    # imported when a policy is first compiled: it takes a tenth of a second, and most
    # commands never decide anything
    import cedarpy

    return cedarpy


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.split("\n"), 1):
        if needle in line:
            return number
    return None


def _statements(text: str) -> list[tuple[int, str]]:
    """``text`` cut after each top-level ``;`` (not in a string or a comment): (first line, part)."""
    parts: list[tuple[int, str]] = []
    start, line, first, i, n = 0, 1, 1, 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                line += text[i] == "\n"
                i += 2 if text[i] == "\\" else 1
        elif c == "/" and text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i - 1
        elif c == ";":
            parts.append((first, text[start : i + 1]))
            start, first = i + 1, line
        elif c == "\n":
            line += 1
        i += 1
    parts.append((first, text[start:]))
    return parts


def _syntax_line(text: str) -> int:
    """The line a parse error is on (Cedar's messages name no position): the first statement
    that fails alone, then the first prefix of its lines whose error is not just that the
    input ended early. Each statement is parsed on its own, so a long policy costs little."""
    cedar = _cedar()
    for first, part in _statements(text):
        try:
            cedar.PolicySet.from_str(part)
            continue
        except ValueError:
            pass
        lines = part.rstrip().split("\n")  # input that ends early ends on its last written line
        for number in range(1, len(lines) + 1):
            try:
                cedar.PolicySet.from_str("\n".join(lines[:number]))
            except ValueError as exc:
                if "end of input" not in str(exc):
                    return first + number - 1
        return first + len(lines) - 1
    return text.count("\n") + 1


def _parse_error(exc: ValueError, text: str) -> InvalidPolicy:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else "cannot parse"
    return InvalidPolicy(
        message, line=_syntax_line(text), hint="see docs/kernel-policy.md for the policy language"
    )


def _annotations(text: str) -> list[tuple[str, dict[str, str]]]:
    """(effect, annotations) of each policy of ``text``, in text order."""
    est = json.loads(_cedar().policies_to_json_str(text))
    if est.get("templates"):
        raise InvalidPolicy("templates (?principal, ?resource) are not supported; write static policies")
    found = est.get("staticPolicies", {})
    return [
        (found[key]["effect"], dict(found[key].get("annotations") or {}))
        for key in sorted(found, key=lambda k: int(k.removeprefix("policy")))
    ]


def _rules(text: str, builtin: bool) -> list[PolicyRule]:
    rules: list[PolicyRule] = []
    seen: set[str] = set()
    for index, (effect, notes) in enumerate(_annotations(text), 1):
        rule_id = notes.get("id") or f"tenant#{index}"
        approval = notes.get("approval")
        if not builtin:
            if rule_id.startswith(_BUILTIN_PREFIX):
                raise InvalidPolicy(
                    f"@id({rule_id!r}): ids starting with 'builtin.' are the built-in rules'",
                    line=_line_of(text, f'"{rule_id}"'),
                )
            if rule_id in seen:
                raise InvalidPolicy(f"@id({rule_id!r}) is used twice", line=_line_of(text, f'"{rule_id}"'))
            if approval is not None and approval not in APPROVAL_KINDS:
                raise InvalidPolicy(
                    f"@approval({approval!r}) is not one of {', '.join(APPROVAL_KINDS)}",
                    line=_line_of(text, f'"{approval}"'),
                )
            if approval is not None and effect != "permit":
                raise InvalidPolicy(
                    f"{rule_id}: only a permit can ask for an approval", line=_line_of(text, f'"{approval}"')
                )
        seen.add(rule_id)
        rules.append(PolicyRule(rule_id, effect, approval, notes.get("reason", ""), builtin))
    return rules


def check_policy(text: str, *, evaluate: bool = True) -> tuple[PolicyRule, ...]:
    """Check a tenant policy's text; its rules, or InvalidPolicy naming the line. With
    ``evaluate`` (for a policy being set), it is also tried on every kind of request, and a rule
    Cedar cannot evaluate is refused."""
    if len(text) > MAX_POLICY_CHARS:
        raise InvalidPolicy(f"the policy is {len(text)} characters, over the limit of {MAX_POLICY_CHARS}")
    try:
        _cedar().PolicySet.from_str(text)
    except ValueError as exc:
        raise _parse_error(exc, text) from None
    rules = _rules(text, builtin=False)
    if not any(rule.effect == "permit" for rule in rules):
        raise InvalidPolicy(
            "the policy has no permit: it would refuse every action, 'policy set' included",
            hint="start from 'truthvault policy show --default'",
        )
    if evaluate:
        from ._policy import probe_policy  # it decides with the compiled policy

        probe_policy(compile_policy(text))
    return tuple(rules)


@functools.lru_cache(maxsize=1)
def builtin_rules() -> tuple[PolicyRule, ...]:
    """The built-in rules, always in force before a tenant's."""
    return tuple(_rules(BUILTIN_POLICY, builtin=True))


@functools.lru_cache(maxsize=64)
def compile_policy(text: str = DEFAULT_POLICY, version: int = 0) -> CompiledPolicy:
    """``text`` checked and parsed once behind the built-in rules (kept for reuse: a hub holds
    one per tenant, and a version's text never changes)."""
    rules = (*builtin_rules(), *check_policy(text, evaluate=False))
    policy_set = _cedar().PolicySet.from_str(BUILTIN_POLICY + "\n" + text)
    if len(policy_set) != len(rules):  # pragma: no cover - Cedar numbers policies in text order
        raise InvalidPolicy("cannot number the policies")
    by_cedar_id = {f"policy{index}": rule for index, rule in enumerate(rules)}
    return CompiledPolicy(version, text, rules, policy_set, by_cedar_id)
