"""Sagas: work that spans steps and time, as a list of steps each with an optional compensation.

A saga's steps run in order. A step that fails is tried again after an exponential backoff with
jitter (:class:`Retry`), and an attempt that outlives the step's timeout counts as failed. When
a step fails for good, the steps that completed are compensated in reverse order and the saga
ends ``compensated``; when a compensation fails for good too, it ends ``failed``.

What makes it durable is the engine that drives it (:mod:`._workflows`, on DBOS Transact): a
workflow's progress is checkpointed, so a process killed in the middle resumes on restart. What
makes a completed step never run twice is the :class:`StepLedger`: a transactional step's
effects and its ledger row commit in one transaction of the store, and an attempt that finds
its row returns the output kept there instead of running again (the engine's checkpoint comes
after the commit; a kill in between is caught here). A step that is not transactional (it
writes a file, say) records its row after it returns: it must be idempotent, since a kill
between its effect and its row runs it again.

This module is the pure part: definitions and the driver. It imports neither DBOS nor a store.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from ..errors import (
    ConflictState,
    DecryptionFailed,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TruthvaultError,
    Unauthorized,
)

__all__ = [
    "PHASES",
    "Retry",
    "Saga",
    "SagaRegistry",
    "SqlStepLedger",
    "Step",
    "StepContext",
    "StepFailed",
    "StepLedger",
    "StepTimeout",
    "attempt_step",
    "drive",
]

Json = Any
Phase = Literal["run", "compensate"]
PHASES: tuple[Phase, ...] = ("run", "compensate")
#: failures that no retry mends: a step that raises one fails for good at once
PERMANENT: tuple[type[TruthvaultError], ...] = (
    InvalidInput, NotFound, Forbidden, ConflictState, Unauthorized, PayloadTooLarge, DecryptionFailed,
)  # fmt: skip
#: a saga's or a step's name: lower-case words joined by dots, dashes or underscores
_NAME = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")


class StepTimeout(TruthvaultError):
    """An attempt of a step outlived its timeout (what it did is rolled back)."""

    code = "STEP_TIMEOUT"


class StepFailed(TruthvaultError):
    """A step failed for good: every attempt its :class:`Retry` allows failed."""

    code = "STEP_FAILED"

    def __init__(self, message: str, *, step: str, phase: Phase, attempts: int, error: str) -> None:
        super().__init__(message)
        self.step = step
        self.phase = phase
        self.attempts = attempts
        self.error = error


@dataclass(frozen=True, slots=True)
class Retry:
    """How a failed attempt is tried again (a :data:`PERMANENT` failure is not): ``attempts`` in all; before attempt n+1 a wait of
    ``first_s * factor**(n-1)`` (at most ``max_s``), scaled by a random factor in
    ``[1 - jitter, 1]`` so that many sagas failing together do not retry together."""

    attempts: int = 3
    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_s < 0 or self.factor < 1 or self.max_s < 0:
            raise InvalidInput("a retry takes attempts >= 1, first_s >= 0, factor >= 1, max_s >= 0")
        if not 0 <= self.jitter <= 1:
            raise InvalidInput("a retry's jitter is between 0 and 1")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before the second, third, ... attempt."""
        rng = rng or random.Random()
        for n in range(self.attempts - 1):
            base = min(self.first_s * self.factor**n, self.max_s)
            yield base * (1 - self.jitter * rng.random())


@dataclass(slots=True)
class StepContext:
    """What a step (or its compensation) gets: its saga's id and input, the outputs of the
    steps before it by name, its attempt, and its deadline."""

    workflow_id: str
    saga: str
    step: str
    phase: Phase
    input: Mapping[str, Json]
    results: Mapping[str, Json]
    #: who runs the saga (``source``, ``device_id``, ``tenant_id``): its steps act as them
    actor: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 1
    deadline: float | None = None  # time.monotonic()
    #: what runs SQL in the store's transaction the step's effects join (a transactional step)
    db: Any = None

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self) -> None:
        """StepTimeout once the deadline is past: a long step calls it between its parts."""
        if self.expired():
            raise StepTimeout(f"{self.saga}: step {self.step!r} ran past its timeout")


@dataclass(frozen=True, slots=True)
class Step:
    """One step: ``run`` returns its output (JSON); ``compensate`` undoes it after a later
    step failed for good. A ``transactional`` step runs inside one store transaction with its
    ledger row; another records its row after it returns (so it must be idempotent)."""

    name: str
    run: Callable[[StepContext], Json]
    compensate: Callable[[StepContext], None] | None = None
    retry: Retry = field(default_factory=Retry)
    timeout_s: float | None = 60.0
    transactional: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidInput(f"step name {self.name!r} is not lower-case words joined by dots")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InvalidInput(f"step {self.name}: a timeout is a positive number of seconds")


@dataclass(frozen=True, slots=True)
class Saga:
    """A named, versioned list of steps."""

    name: str
    version: str
    steps: tuple[Step, ...]
    summary: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidInput(f"saga name {self.name!r} is not lower-case words joined by dots")
        names = [s.name for s in self.steps]
        if not names:
            raise InvalidInput(f"saga {self.name} has no steps")
        if len(set(names)) != len(names):
            raise InvalidInput(f"saga {self.name}: two steps share a name")


class SagaRegistry:
    """The sagas an engine can run, by name."""

    def __init__(self) -> None:
        self._sagas: dict[str, Saga] = {}

    def add(self, saga: Saga) -> Saga:
        if saga.name in self._sagas:
            raise InvalidInput(f"saga {saga.name!r} is registered already")
        self._sagas[saga.name] = saga
        return saga

    def get(self, name: str) -> Saga | None:
        return self._sagas.get(name)

    def names(self) -> list[str]:
        return sorted(self._sagas)


class StepLedger(Protocol):
    """Where completed steps are kept, in the store the steps write to."""

    def transaction(self) -> AbstractContextManager[object]:
        """One write transaction of the store (a transactional step's effects join it)."""

    def recorded(self, workflow_id: str, index: int, phase: Phase) -> str | None:
        """The output (JSON text) a completed step left, or None."""

    def record(self, ctx: StepContext, index: int, output: str) -> None:
        """Keep a step's output; inside :meth:`transaction` (with the step's trace event and
        audit entry, where the store keeps them). Raises if it is kept already."""


#: runs one step (or compensation) of a saga once, durably: (saga, index, phase, results) -> output
StepRunner = Callable[[Saga, int, Phase, Mapping[str, Json]], Json]


def drive(saga: Saga, run_step: StepRunner) -> dict[str, Json]:
    """Run ``saga``'s steps in order through ``run_step``; when one fails for good, compensate
    the completed ones in reverse. The saga's outcome: ``{"status": "completed", "results":
    {...}}`` or ``{"status": "compensated", "failed": {...}, "compensated": [...]}``; a
    compensation that fails for good raises its StepFailed (the saga is then ``failed``)."""
    results: dict[str, Json] = {}
    done: list[int] = []
    for index, step in enumerate(saga.steps):
        try:
            results[step.name] = run_step(saga, index, "run", dict(results))
        except StepFailed as exc:
            undone = []
            for back in reversed(done):
                if saga.steps[back].compensate is not None:
                    run_step(saga, back, "compensate", dict(results))
                    undone.append(saga.steps[back].name)
            failed = {"step": exc.step, "attempts": exc.attempts, "error": exc.error}
            return {"status": "compensated", "failed": failed, "compensated": undone, "results": results}
        done.append(index)
    return {"status": "completed", "results": results}


def attempt_step(
    ledger: StepLedger,
    ctx: StepContext,
    step: Step,
    index: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Json:
    """Run one step (or its compensation) to completion or to failure for good: its kept output
    if it completed before, else attempts as its :class:`Retry` allows, each under its timeout.
    StepFailed when every attempt failed."""
    if not step.transactional:  # (a transactional attempt looks in its own transaction)
        kept = _kept(ledger, ctx.workflow_id, index, ctx.phase)
        if kept is not _NONE:
            return kept
    delays = step.retry.delays(rng)
    error = ""
    attempt = 0
    for attempt in range(1, step.retry.attempts + 1):
        deadline = None if step.timeout_s is None else time.monotonic() + step.timeout_s
        try:  # each attempt its own context: an abandoned one keeps its own deadline
            return _one_attempt(ledger, replace(ctx, attempt=attempt, deadline=deadline), step, index)
        except TruthvaultError as exc:
            error = f"{exc.code}: {exc.message}"
            if isinstance(exc, PERMANENT):
                break  # bad input, a refusal, a conflict: the same again would fail alike
        except Exception as exc:  # a step's own failure, whatever it raised
            error = f"{type(exc).__name__}: {exc}"
        wait = next(delays, None)
        if wait is not None:
            sleep(wait)
    raise StepFailed(
        f"{ctx.saga}: step {step.name!r} ({ctx.phase}) failed {attempt} time(s): {error}",
        step=step.name,
        phase=ctx.phase,
        attempts=attempt,
        error=error,
    )


_NONE = object()


def _kept(ledger: StepLedger, workflow_id: str, index: int, phase: Phase) -> Json:
    with ledger.transaction():
        text = ledger.recorded(workflow_id, index, phase)
    return _NONE if text is None else json.loads(text)


def _one_attempt(ledger: StepLedger, ctx: StepContext, step: Step, index: int) -> Json:
    """One attempt, in a thread of its own so that its timeout holds even when it hangs: an
    attempt still running at its deadline is abandoned, and rolls back when it ends."""
    box: list[Any] = []

    def body() -> None:
        try:
            box.append((True, _run_and_record(ledger, ctx, step, index)))
        except BaseException as exc:  # handed to the caller's thread
            box.append((False, exc))

    worker = threading.Thread(target=body, name=f"saga-{ctx.saga}-{step.name}", daemon=True)
    worker.start()
    worker.join(step.timeout_s)
    if not box:
        raise StepTimeout(f"{ctx.saga}: step {step.name!r} ran past its timeout of {step.timeout_s:g} s")
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _run_and_record(ledger: StepLedger, ctx: StepContext, step: Step, index: int) -> Json:
    fn: Callable[[StepContext], Json] | None = step.run if ctx.phase == "run" else step.compensate
    assert fn is not None
    if not step.transactional:
        out = fn(ctx)
        ctx.check()
        with ledger.transaction():
            if ledger.recorded(ctx.workflow_id, index, ctx.phase) is None:
                ledger.record(ctx, index, _json(out, step))
        return out
    with ledger.transaction() as db:
        kept = ledger.recorded(ctx.workflow_id, index, ctx.phase)
        if kept is not None:  # another attempt (one abandoned at its deadline) got there first
            return json.loads(kept)
        ctx.db = db
        out = fn(ctx)
        ctx.check()  # past the deadline: roll back, the next attempt (or none) decides
        ledger.record(ctx, index, _json(out, step))
    return out


def _json(out: Json, step: Step) -> str:
    try:
        return json.dumps(out, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"step {step.name}: its output is not JSON ({exc})") from None


def step_names(saga: Saga) -> Sequence[str]:
    return [s.name for s in saga.steps]


class SqlStepLedger:
    """A :class:`StepLedger` in a store's ``workflow_steps`` table: ``transaction`` opens the
    store's write transaction and yields what runs its SQL (with qmark parameters), the vault's
    connection or the hub's database alike; ``on_record`` writes what the store keeps of a
    completed step (its trace event, its audit entry) in the same transaction."""

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Any]],
        on_record: Callable[[StepContext, str], None] | None = None,
    ) -> None:
        self._transaction = transaction
        self._on_record = on_record
        self._local = threading.local()

    def transaction(self) -> AbstractContextManager[object]:
        return _Joined(self)

    def _db(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None:
            raise RuntimeError("the step ledger is used outside its transaction")
        return db

    def recorded(self, workflow_id: str, index: int, phase: Phase) -> str | None:
        row = (
            self._db()
            .execute(
                "SELECT output FROM workflow_steps WHERE workflow_id = ? AND step = ? AND phase = ?",
                (workflow_id, index, phase),
            )
            .fetchone()
        )
        return None if row is None else str(row[0])

    def record(self, ctx: StepContext, index: int, output: str) -> None:
        self._db().execute(
            "INSERT INTO workflow_steps (workflow_id, step, phase, output) VALUES (?, ?, ?, ?)",
            (ctx.workflow_id, index, ctx.phase, output),
        )
        if self._on_record is not None:  # the store's trace event and audit entry of the step
            self._on_record(ctx, output)


class _Joined:
    """The store's transaction, with what runs its SQL kept for this thread while it is open."""

    def __init__(self, ledger: SqlStepLedger) -> None:
        self._ledger = ledger
        self._cm: AbstractContextManager[Any] | None = None
        self._outer: Any = None

    def __enter__(self) -> object:
        self._cm = self._ledger._transaction()
        db = self._cm.__enter__()
        local = self._ledger._local
        self._outer = getattr(local, "db", None)
        local.db = db
        return db

    def __exit__(self, *exc: Any) -> bool | None:
        self._ledger._local.db = self._outer
        assert self._cm is not None
        return self._cm.__exit__(*exc)
