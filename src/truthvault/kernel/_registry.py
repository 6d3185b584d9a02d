"""Actions: a name, a versioned contract (pydantic input and output models), a risk class and a
handler; and the registry that holds them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from ..errors import InvalidInput
from ._types import Actor, Risk, Target

__all__ = ["ActionInput", "ActionOutput", "ActionSpec", "Context", "Registry"]

S = TypeVar("S")
In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

#: ``domain.verb[.noun]``: ``notes.create``, ``entity.put``, ``conflict.resolve``
ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class ActionInput(BaseModel):
    """The base of an action's input: unknown fields are refused (VALIDATION_ERROR naming
    them), the input is immutable, and its schema is built on first use, not at import (a
    command that runs one action pays for that one)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ActionOutput(BaseModel):
    """The base of an action's output (its schema, too, built on first use); it may carry the
    library's own types (a :class:`~truthvault.SyncItem`) with a serializer for JSON."""

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)


@dataclass(slots=True)
class Context(Generic[S]):
    """What a handler gets: who acts, the store it acts on (a :class:`~truthvault.Vault` on a
    device, the hub's store on the hub), the clock, and where it notes what it touched and
    the events it raises (both kept only if the action commits)."""

    actor: Actor
    store: S
    action: str
    clock: Callable[[], str]
    targets: list[Target] = field(default_factory=list)
    events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)

    def touched(self, target: Target) -> None:
        """Note an entity the action wrote (or read): the audit entry names it."""
        self.targets.append(target)

    def emit(self, type: str, entity_id: str | None = None, **detail: Any) -> None:
        """Raise an event, delivered in the action's transaction."""
        self.events.append((type, entity_id, detail))


@dataclass(frozen=True, slots=True)
class ActionSpec(Generic[S, In, Out]):
    """One action's contract and handler."""

    name: str
    version: str
    risk: Risk
    input: type[In]
    output: type[Out]
    handler: Callable[[Context[S], In], Out]
    summary: str
    #: the entities the action will touch, as policy must see them before it runs
    targets: Callable[[Context[S], In], Sequence[Target]] | None = None

    def __post_init__(self) -> None:
        if not ACTION_NAME.match(self.name):
            raise InvalidInput(f"action name {self.name!r} is not domain.verb[.noun]")
        if not SEMVER.match(self.version):
            raise InvalidInput(f"action {self.name}: version {self.version!r} is not semver (1.0.0)")

    @property
    def domain(self) -> str:
        return self.name.split(".", 1)[0]

    def schema(self) -> dict[str, Any]:
        """The contract as JSON Schema: the input and output models, with version and risk."""
        return {
            "name": self.name,
            "version": self.version,
            "risk": str(self.risk),
            "summary": self.summary,
            "input": self.input.model_json_schema(),
            "output": self.output.model_json_schema(),
        }


class Registry(Generic[S]):
    """The actions one side offers, by name."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec[S, Any, Any]] = {}

    def add(self, spec: ActionSpec[S, Any, Any]) -> None:
        if spec.name in self._specs:
            raise InvalidInput(f"action {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def action(
        self,
        name: str,
        *,
        version: str,
        risk: Risk,
        input: type[In],
        output: type[Out],
        targets: Callable[[Context[S], In], Sequence[Target]] | None = None,
    ) -> Callable[[Callable[[Context[S], In], Out]], Callable[[Context[S], In], Out]]:
        """Register the decorated function as the handler of action ``name``; its docstring's
        first line is the action's summary."""

        def register(handler: Callable[[Context[S], In], Out]) -> Callable[[Context[S], In], Out]:
            summary = (handler.__doc__ or "").strip().split("\n", 1)[0]
            self.add(ActionSpec(name, version, risk, input, output, handler, summary, targets))
            return handler

        return register

    def __add__(self, other: Registry[S]) -> Registry[S]:
        """A registry of both sets of actions (InvalidInput if a name is in both)."""
        merged: Registry[S] = Registry()
        for spec in [*self, *other]:
            merged.add(spec)
        return merged

    def get(self, name: str) -> ActionSpec[S, Any, Any] | None:
        return self._specs.get(name)

    def __iter__(self) -> Iterator[ActionSpec[S, Any, Any]]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs
