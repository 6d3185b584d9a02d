"""Automation rules: a trigger and an action, written by the user, run at level 2.

A rule is the payload of an entity of type ``automation`` (so it syncs and the user owns it;
only a level-1 rule runs: one an AI or another automation wrote is a proposal until the user
accepts it). Its trigger is one of:

- ``{"on": "write", "type": "note", "tag": ..., "field": "text", "matches": "regex"}``: an
  entity created or updated that matches every filter given (writes made by automations do
  not trigger rules, so rules cannot feed each other in a loop);
- ``{"on": "schedule", "cron": "0 9 * * *"}`` or ``{"on": "schedule", "every": "1d"}``, with an
  optional ``query`` (``type``, ``tag``, ``older_than_days``): each entity the query finds when
  the schedule fires is a match (none: the rule fires once, with no entity);

- ``{"on": "webhook", "hook": "<hook id>"}``: a request to the hub's ``/v1/hooks/<hook id>``
  carrying the rule's own secret; each delivery (a JSON object) is a match, its fields
  ``{payload.<field>}`` (the hook id is made when the rule is added; the secret is never in
  the rule, see :mod:`truthvault.sync._webhooks`);

Its action is what runs for each match, as ``automation:<rule-id>`` at level 2, through the
kernel's governed path (policy refuses what level 2 may not do, and audits the refusal):

- ``{"do": "tag", "tags": ["dated"]}``: add tags to the matched entity (against level-1
  content, a suggestion);
- ``{"do": "create", "type": "task", "payload": {"title": "Follow up: {payload.title}"}}``;
- ``{"do": "action", "name": "entity.delete", "input": {"id": "{id}"}}``: any action.

Text in an action's input may name the match: ``{id}``, ``{type}``, ``{version}``,
``{payload.<field>}``; ``{{`` and ``}}`` are braces. A name is all a ``{...}`` holds: no format
spec or conversion (``{id:>99999999}`` would make a text of any size), and what a run fills in
is at most :data:`MAX_FILLED` characters in all.

A trigger's ``matches`` is an RE2 expression (google-re2: linear time whatever the pattern, so a
rule that arrives by sync cannot hang the runner with ``(a+)+$``; no backreferences or
lookarounds).

This module is pure: the rule's model, matching, templating and schedules.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InvalidInput

__all__ = [
    "MAX_FILLED",
    "ActAction",
    "ActCreate",
    "ActTag",
    "Rule",
    "ScheduleTrigger",
    "WebhookTrigger",
    "WriteTrigger",
    "check_delivery",
    "fill",
    "matches",
    "new_hook_id",
    "parse_rule",
    "slots_due",
]

_EVERY = re.compile(r"^(\d+)([mhd])$")
_UNIT = {"m": 60, "h": 3600, "d": 86400}
#: the most characters the templates of one run fill in, all texts together (a payload's limit)
MAX_FILLED = 1 << 20
_FIELDS = ("id", "type", "version", "payload")
#: what one webhook delivery may be: its body's bytes, its nesting, its values in all
MAX_DELIVERY_BYTES = 256 << 10
MAX_DELIVERY_DEPTH = 32
MAX_DELIVERY_VALUES = 10_000
#: a hook id: URL-safe, and random enough (128 bits) that nobody guesses one
_HOOK = r"^[A-Za-z0-9_-]{22,64}$"
_RE2 = re2.Options()
_RE2.log_errors = False


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (ValueError naming what is wrong)."""
    try:
        return re2.compile(pattern, options=_RE2)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"not a regular expression RE2 takes ({why})") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Query(_Strict):
    """Which entities a scheduled rule acts on."""

    type: str | None = None
    tag: str | None = None
    older_than_days: float | None = Field(default=None, ge=0)


class WriteTrigger(_Strict):
    on: Literal["write"]
    type: str | None = None
    tag: str | None = None
    field: str | None = None
    matches: str | None = None

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            _regex(value)
        return value


class ScheduleTrigger(_Strict):
    on: Literal["schedule"]
    cron: str | None = None
    every: str | None = None
    query: Query | None = None

    @model_validator(mode="after")
    def _one(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule takes cron or every, one of them")
        if self.every is not None and not _EVERY.match(self.every):
            raise ValueError("every is a number and m, h or d (15m, 1h, 1d)")
        if self.cron is not None:
            from croniter import croniter

            if not croniter.is_valid(self.cron):
                raise ValueError(
                    f"cron {self.cron!r} is not a cron expression (minute hour day month weekday)"
                )
        return self


class WebhookTrigger(_Strict):
    on: Literal["webhook"]
    hook: str = Field(pattern=_HOOK, description="the public id of the hook (in its URL)")


def new_hook_id() -> str:
    """A new hook id: 16 random bytes, URL-safe."""
    import secrets

    return secrets.token_urlsafe(16)


def check_delivery(body: bytes) -> dict[str, Any]:
    """A webhook delivery's body as the JSON object it must be (InvalidInput naming what is
    wrong; PayloadTooLarge over :data:`MAX_DELIVERY_BYTES`): bounded in size, nesting and
    values, so that what a stranger sends cannot exhaust the hub or the device that runs it."""
    import json

    from ..errors import PayloadTooLarge

    if len(body) > MAX_DELIVERY_BYTES:
        raise PayloadTooLarge(f"body: {len(body)} bytes is over the limit of {MAX_DELIVERY_BYTES}")

    def no_constant(name: str) -> None:  # NaN and Infinity are Python's, not JSON's
        raise ValueError(name)

    try:
        value = json.loads(body, parse_constant=no_constant)
    except (ValueError, RecursionError):
        raise InvalidInput("body: not JSON (send a JSON object)") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"body: a JSON object, not a {type(value).__name__}")
    stack: list[tuple[Any, int]] = [(value, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_DELIVERY_VALUES:
            raise InvalidInput(f"body: more than {MAX_DELIVERY_VALUES} values")
        if depth > MAX_DELIVERY_DEPTH:
            raise InvalidInput(f"body: nested deeper than {MAX_DELIVERY_DEPTH}")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return value


class ActTag(_Strict):
    do: Literal["tag"]
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1)


class ActCreate(_Strict):
    do: Literal["create"]
    type: str = Field(min_length=1)
    payload: dict[str, Any]

    @field_validator("payload")
    @classmethod
    def _templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_templates(value)
        return value


class ActAction(_Strict):
    do: Literal["action"]
    name: str = Field(min_length=1)
    input: dict[str, Any] = {}

    @field_validator("input")
    @classmethod
    def _templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_templates(value)
        return value


class Rule(_Strict):
    """One automation: its name, trigger and action, and whether it is paused."""

    name: str = Field(min_length=1, max_length=200)
    trigger: Annotated[WriteTrigger | ScheduleTrigger | WebhookTrigger, Field(discriminator="on")]
    action: Annotated[ActTag | ActCreate | ActAction, Field(discriminator="do")]
    paused: bool = False

    @model_validator(mode="after")
    def _taggable(self) -> Rule:
        if isinstance(self.trigger, WebhookTrigger) and isinstance(self.action, ActTag):
            raise ValueError("a webhook's delivery is no entity to tag: create one, or run an action")
        return self


def parse_rule(payload: Mapping[str, Any]) -> Rule:
    """The rule in an automation's payload; InvalidInput naming the field otherwise."""
    try:
        return Rule.model_validate(dict(payload))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = (
            ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "tagged-")))
            or "rule"
        )
        raise InvalidInput(f"{where}: {first['msg']}") from None


def _tags(payload: Mapping[str, Any]) -> list[str]:
    tags = payload.get("tags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _of(type_: str | None, tag: str | None, entity_type: str, payload: Mapping[str, Any]) -> bool:
    """Whether an entity is of ``type_`` and tagged ``tag`` (either None: any)."""
    if type_ is not None and entity_type.lower() != type_.lower():
        return False
    return tag is None or tag in _tags(payload)


def matches(trigger: WriteTrigger, entity_type: str, payload: Mapping[str, Any]) -> bool:
    """Whether an entity written as ``entity_type`` with ``payload`` fires ``trigger``."""
    if not _of(trigger.type, trigger.tag, entity_type, payload):
        return False
    if trigger.matches is not None:
        fields = [trigger.field] if trigger.field else [k for k, v in payload.items() if isinstance(v, str)]
        texts = [str(payload[f]) for f in fields if isinstance(payload.get(f), str | int | float)]
        pattern = _regex(trigger.matches)
        if not any(pattern.search(t) for t in texts):
            return False
    elif trigger.field is not None and trigger.field not in payload:
        return False
    return True


def selected(
    query: Query | None, entity_type: str, payload: Mapping[str, Any], modified_at: str, now: datetime
) -> bool:
    """Whether a scheduled rule's ``query`` takes this entity (modified at ``modified_at``)."""
    if query is None or not _of(query.type, query.tag, entity_type, payload):
        return False
    if query.older_than_days is not None:
        changed = datetime.fromisoformat(modified_at[:23].replace("Z", "")).replace(tzinfo=UTC)
        if now - changed < timedelta(days=query.older_than_days):
            return False
    return True


def _check_templates(value: Any) -> None:
    """ValueError when a text in ``value`` holds a ``{...}`` that is not a name of the match."""
    if isinstance(value, str):
        try:
            parts = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"template {value!r}: {exc}") from None
        for _, name, spec, conversion in parts:
            if name is None:
                continue
            if spec or conversion:
                raise ValueError(f"template {value!r}: a {{...}} holds a name only (no ':' or '!')")
            if name.partition(".")[0] not in _FIELDS:
                raise ValueError(
                    f"template {value!r}: {{{name}}} names nothing of the match "
                    "(id, type, version, payload.<field>)"
                )
    elif isinstance(value, list):
        for v in value:
            _check_templates(v)
    elif isinstance(value, dict):
        for v in value.values():
            _check_templates(v)


class _Template(string.Formatter):
    def __init__(self, budget: int) -> None:
        self.budget = budget

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        head, _, rest = field_name.partition(".")
        if head not in kwargs:
            raise InvalidInput(
                f"{{{field_name}}} names nothing of the match (id, type, version, payload.<field>)"
            )
        value = kwargs[head]
        for part in rest.split(".") if rest else ():
            value = value.get(part, "") if isinstance(value, Mapping) else ""
        return value, field_name

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            raise InvalidInput("a {...} in a template holds a name only (no '!' conversion)")
        return value

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec:  # a width makes a text of any size: {id:>99999999}
            raise InvalidInput("a {...} in a template holds a name only (no ':' format)")
        text = str(value)
        self.budget -= len(text)
        if self.budget < 0:
            raise InvalidInput(f"the templates of this run fill in more than {MAX_FILLED} characters")
        return text


def fill(value: Any, match: Mapping[str, Any]) -> Any:
    """``value`` with every text's ``{...}`` filled from the match (see the module)."""
    return _fill(value, match, _Template(MAX_FILLED))


def _fill(value: Any, match: Mapping[str, Any], template: _Template) -> Any:
    if isinstance(value, str):
        if "{" not in value and "}" not in value:
            return value
        try:
            return template.vformat(value, (), dict(match))
        except (ValueError, IndexError) as exc:
            raise InvalidInput(f"template {value!r}: {exc}") from None
    if isinstance(value, list):
        return [_fill(v, match, template) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, match, template) for k, v in value.items()}
    return value


def interval(trigger: ScheduleTrigger) -> timedelta | None:
    if trigger.every is None:
        return None
    m = _EVERY.match(trigger.every)
    assert m is not None
    return timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])


def slots_due(trigger: ScheduleTrigger, since: datetime, now: datetime, limit: int = 100) -> list[datetime]:
    """The times the schedule fired after ``since`` up to ``now`` (the last ``limit`` of them):
    each is one run, named by its time, so a run is never made twice for one time."""
    due: list[datetime] = []
    step = interval(trigger)
    if step is not None:
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        n = (since - epoch) // step + 1
        at = epoch + n * step
        while at <= now:
            due.append(at)
            at += step
            if len(due) > limit:
                due.pop(0)
        return due
    from croniter import croniter

    it = croniter(trigger.cron, since)
    while (at := it.get_next(datetime)) <= now:
        due.append(at)
        if len(due) > limit:
            due.pop(0)
    return due
