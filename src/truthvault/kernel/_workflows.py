"""The workflow engine: sagas (:mod:`._saga`) made durable by DBOS Transact.

DBOS keeps each workflow's progress in its system database (a SQLite file on a device or a
small hub; PostgreSQL at scale, where several hub processes share it). One DBOS workflow,
``truthvault.saga``, drives any saga; each step (or compensation) is one DBOS step, so a
process killed in the middle resumes on restart from the last checkpointed step. A step DBOS
had not checkpointed when the process died runs again, and then finds its row in the
:class:`~._saga.StepLedger` (kept in the same transaction as the step's effects): a completed
step never runs twice.

DBOS is one per process, so one engine is launched per process (:meth:`WorkflowEngine.launch`);
DBOS is imported only then (it takes about a quarter of a second), so commands that run no
workflow do not pay for it. Inputs and outputs are stored as JSON (DBOS's portable serializer),
never pickled.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConflictState, InvalidInput, NotFound
from ._executors import executor_id, no_sqlite_file, private_file, shown, take_up_orphans
from ._saga import Json, Phase, Saga, SagaRegistry, StepContext, StepFailed, StepLedger, attempt_step, drive

if TYPE_CHECKING:
    from dbos import WorkflowStatus

__all__ = ["STATUSES", "StepEvent", "WorkflowEngine", "WorkflowInfo"]

#: the DBOS workflow and step every saga runs as
_WORKFLOW = "truthvault.saga"
_STEP = "truthvault.saga.step"


@dataclass(frozen=True, slots=True)
class StepEvent:
    """What the engine tells its observer of a step: ``started``, ``completed`` or ``failed``."""

    workflow_id: str
    saga: str
    step: str
    phase: Phase
    outcome: str
    actor: Mapping[str, str]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A workflow as ``truthvault workflow list|show`` shows it. ``status``: ``running``,
    ``completed``, ``compensated``, ``failed``, ``cancelled`` or ``queued``."""

    id: str
    saga: str
    status: str
    input: Mapping[str, Json] | None
    outcome: Mapping[str, Json] | None
    error: str | None
    created_at: int | None
    updated_at: int | None
    steps: tuple[tuple[str, str, str], ...] = ()  # (step, phase, "done" | "failed: ...")


#: the states a workflow is shown in
STATUSES = ("running", "queued", "completed", "compensated", "failed", "cancelled")

#: how often a workflow started elsewhere is looked at while its result is awaited
_POLL_S = 0.05
#: how often DBOS's notification listener polls (see launch)
_LISTENER_POLL_S = 0.1
_MAX_HANDLES = 10_000

_lock = threading.Lock()
_current: WorkflowEngine | None = None
_registered = False


def _engine() -> WorkflowEngine:
    if _current is None:
        raise ConflictState("no workflow engine is running in this process")
    return _current


class WorkflowEngine:
    """Runs the sagas of ``registry`` durably; ``ledger`` keeps completed steps in the store the
    steps write to; ``database_url`` names DBOS's system database (``sqlite:///path`` or
    ``postgresql://...``); ``observe`` hears of every step (trace events, audit entries)."""

    def __init__(
        self,
        registry: SagaRegistry,
        ledger: StepLedger,
        *,
        database_url: str,
        name: str = "truthvault",
        schema: str | None = None,
        observe: Callable[[StepEvent], None] | None = None,
        on_dead_letter: Callable[[StepContext, StepFailed], None] | None = None,
    ) -> None:
        self.registry = registry
        self.ledger = ledger
        self.database_url = database_url
        self.name = name
        self.schema = schema
        self.observe = observe
        #: hears of each step that failed for good (its saga ends compensated or failed)
        self.on_dead_letter = on_dead_letter
        self._launched = False
        self._client: Any = None
        #: the handles of workflows started here and not yet waited for (their results come
        #: from memory, not by polling DBOS's database)
        self._handles: dict[str, Any] = {}

    # -- life --------------------------------------------------------------------------
    @staticmethod
    def running() -> WorkflowEngine | None:
        """The engine launched in this process, if one is (an action that starts a workflow
        starts it there)."""
        return _current

    def launch(self) -> WorkflowEngine:
        """Start DBOS in this process (one engine per process); workflows a killed process left
        running resume now, in the background."""
        global _current
        with _lock:
            if _current is not None:
                raise ConflictState("a workflow engine is running in this process already")
            private_file(self.database_url)
            _register()
            from dbos import DBOS, DBOSConfig, DBOSPortableJSONSerializer

            config: DBOSConfig = {
                "name": self.name,
                "system_database_url": self.database_url,
                "serializer": DBOSPortableJSONSerializer(),
                "log_level": "WARNING",
            }
            if self.schema:  # PostgreSQL: DBOS's tables in a schema of their own
                config["dbos_system_schema"] = self.schema
            config["executor_id"] = executor_id()
            # DBOS's notification listener sleeps this long between polls, and its shutdown
            # joins it: at 1 s (DBOS's default) every command that ran a workflow waited a
            # second to end. We use no DBOS notifications; a poll is one small query.
            config["notification_listener_polling_interval_sec"] = _LISTENER_POLL_S
            DBOS(config=config)
            _current = self
            try:
                DBOS.launch()
            except BaseException:
                _current = None
                DBOS.destroy()
                raise
            self._launched = True
        take_up_orphans(_WORKFLOW)
        return self

    def close(self) -> None:
        """Stop DBOS; workflows still running resume at the next launch."""
        global _current
        if self._client is not None:
            self._client.destroy()
            self._client = None
        with _lock:
            if not self._launched:
                return
            from dbos import DBOS

            DBOS.destroy()
            self._launched = False
            _current = None

    def _api(self) -> Any:
        """What reads and manages workflows: DBOS itself once launched, else a client of its
        system database that runs nothing (so listing workflows does not resume them)."""
        if self._launched:
            from dbos import DBOS

            return DBOS
        if self._client is None:
            from dbos import DBOSClient, DBOSPortableJSONSerializer

            if no_sqlite_file(self.database_url):  # (a client would make an empty one)
                raise NotFound(
                    f"no workflows are kept at {shown(self.database_url)}: none has run here",
                    hint="a workflow runs first where the engine is launched",
                )

            try:
                self._client = DBOSClient(
                    system_database_url=self.database_url,
                    dbos_system_schema=self.schema or "dbos",
                    serializer=DBOSPortableJSONSerializer(),
                    retry_connection_errors=False,
                )
            except Exception as exc:  # no system database yet, or it cannot be reached
                raise NotFound(
                    f"no workflows are kept at {shown(self.database_url)} ({type(exc).__name__})",
                    hint="a workflow runs first where the engine is launched",
                ) from None
        return self._client

    def __enter__(self) -> WorkflowEngine:
        return self.launch()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running -----------------------------------------------------------------------
    def start(
        self,
        saga: str,
        input: Mapping[str, Json] | None = None,
        *,
        actor: Mapping[str, str] | None = None,
        workflow_id: str | None = None,
    ) -> str:
        """Start saga ``saga`` with ``input`` as ``actor``; its workflow id (``workflow_id``,
        or a new one). Starting an id again returns it, without running it twice."""
        from dbos import DBOS, SetWorkflowID

        if self.registry.get(saga) is None:
            raise NotFound(f"no workflow {saga!r}", hint="'truthvault workflow list --kinds' lists them")
        _check_json(input, "the workflow's input")
        wid = workflow_id or str(uuid.uuid4())
        with SetWorkflowID(wid):
            handle = DBOS.start_workflow(_saga_workflow, saga, dict(input or {}), dict(actor or {}))
        if len(self._handles) >= _MAX_HANDLES:  # a runner that never waits: forget the oldest
            self._handles.pop(next(iter(self._handles)))
        self._handles[wid] = handle
        return str(handle.get_workflow_id())

    def run(self, saga: str, input: Mapping[str, Json] | None = None, **kw: Any) -> dict[str, Json]:
        """Run saga ``saga`` to its end; its outcome."""
        return self.result(self.start(saga, input, **kw))

    def result(self, workflow_id: str) -> dict[str, Json]:
        """Wait for workflow ``workflow_id`` to end; its outcome (StepFailed re-raised)."""
        from dbos import DBOS

        handle = self._handles.pop(workflow_id, None) or DBOS.retrieve_workflow(workflow_id)
        out: dict[str, Json] = handle.get_result(polling_interval_sec=_POLL_S)
        return out

    def info(self, workflow_id: str) -> WorkflowInfo:
        """Workflow ``workflow_id`` with its steps; NotFound if there is none."""
        api = self._api()
        found = api.list_workflows(workflow_ids=[workflow_id], name=_WORKFLOW)
        if not found:
            raise NotFound(f"no workflow {workflow_id!r}", hint="'truthvault workflow list' lists them")
        return _info(found[0], api.list_workflow_steps(workflow_id))

    def list(
        self, *, status: str | None = None, prefix: str | None = None, limit: int = 50
    ) -> list[WorkflowInfo]:
        """The newest workflows (``status``: only those in that state; ``prefix``: only those
        whose id begins so)."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        if not self._launched and no_sqlite_file(self.database_url):
            return []  # no workflow has run here
        found = self._api().list_workflows(
            name=_WORKFLOW, sort_desc=True, limit=limit if status is None else None, workflow_id_prefix=prefix
        )
        infos = [_info(s) for s in found]
        return [i for i in infos if status is None or i.status == status][:limit]

    def cancel(self, workflow_id: str) -> WorkflowInfo:
        """Stop a running workflow before its next step (what it did stays; resume goes on)."""
        current = self.info(workflow_id)
        if current.status not in ("running", "queued"):
            raise ConflictState(
                f"workflow {workflow_id} is {current.status}: only a running one is cancelled"
            )
        self._api().cancel_workflow(workflow_id)
        return self.info(workflow_id)

    def resume(self, workflow_id: str) -> WorkflowInfo:
        """Go on with a cancelled (or failed) workflow from its last completed step: here when
        the engine is launched, else where it next is. A saga that failed for good (a step or a
        compensation used its retries) goes on as ``<id>:resumed-<n>``, a copy of it that tries
        that step again (DBOS keeps the failure as the step's outcome: going on with the workflow
        itself would only replay it); the info returned is of the workflow that goes on."""
        current = self.info(workflow_id)
        if current.status in ("completed", "compensated"):
            raise ConflictState(f"workflow {workflow_id} is {current.status} already")
        api = self._api()
        failed = [
            int(s["function_id"])
            for s in api.list_workflow_steps(workflow_id)
            if s.get("function_name") == _STEP
            and isinstance(s.get("output"), dict)
            and "failed" in s["output"]
        ]
        if current.status != "failed" or not failed:
            api.resume_workflow(workflow_id)
            return self.info(workflow_id)
        from dbos import SetWorkflowID

        again = f"{workflow_id}:resumed-{failed[-1]}"
        if api.list_workflows(workflow_ids=[again]):
            raise ConflictState(
                f"workflow {workflow_id} was resumed already, as {again}", hint=f"resume {again} instead"
            )
        with SetWorkflowID(again):  # one id a failed step: two people resuming make one copy
            api.fork_workflow(workflow_id, failed[-1])
        return self.info(again)

    def restart(self, workflow_id: str) -> str:
        """Run workflow ``workflow_id`` again from its first step, with its input and actor, as
        a new workflow (where the engine runs: now, or at its next launch); the new id."""
        from dbos._error import DBOSNonExistentWorkflowError

        api = self._api()
        try:
            handle = api.fork_workflow(workflow_id, 1)  # DBOS numbers a workflow's steps from 1
        except DBOSNonExistentWorkflowError:
            raise NotFound(f"no workflow {workflow_id!r} to restart") from None
        return str(handle.get_workflow_id())

    # -- what DBOS calls ---------------------------------------------------------------
    def _step(
        self,
        workflow_id: str,
        saga: Saga,
        index: int,
        phase: Phase,
        input: Mapping[str, Json],
        results: Mapping[str, Json],
        actor: Mapping[str, str],
    ) -> dict[str, Json]:
        step = saga.steps[index]
        ctx = StepContext(workflow_id, saga.name, step.name, phase, input, results, actor)
        self._tell(StepEvent(workflow_id, saga.name, step.name, phase, "started", actor))
        try:
            out = attempt_step(self.ledger, ctx, step, index)
        except StepFailed as exc:
            self._tell(StepEvent(workflow_id, saga.name, step.name, phase, "failed", actor, exc.error))
            if self.on_dead_letter is not None:  # once: a recovery replays this step's output
                self.on_dead_letter(ctx, exc)
            return {
                "step": step.name,
                "phase": phase,
                "failed": {"attempts": exc.attempts, "error": exc.error},
            }
        self._tell(StepEvent(workflow_id, saga.name, step.name, phase, "completed", actor))
        return {"step": step.name, "phase": phase, "output": out}

    def _tell(self, event: StepEvent) -> None:
        if self.observe is not None:
            self.observe(event)


def _saga_of(name: str) -> Saga:
    saga = _engine().registry.get(name)
    if saga is None:
        raise NotFound(f"no saga {name!r} in this process (was it registered before launch?)")
    return saga


def _saga_workflow(saga_name: str, input: dict[str, Json], actor: dict[str, str]) -> dict[str, Json]:
    raise AssertionError("replaced by _register")  # pragma: no cover


def _register() -> None:
    """Register the one DBOS workflow and step (once per process, before DBOS launches)."""
    global _registered, _saga_workflow
    if _registered:
        return
    from dbos import DBOS

    @DBOS.step(name=_STEP)
    def saga_step(
        saga_name: str,
        index: int,
        phase: str,
        input: dict[str, Json],
        results: dict[str, Json],
        actor: dict[str, str],
    ) -> dict[str, Json]:
        engine = _engine()
        workflow_id = DBOS.workflow_id
        assert workflow_id is not None
        return engine._step(workflow_id, _saga_of(saga_name), index, phase, input, results, actor)  # type: ignore[arg-type]

    @DBOS.workflow(name=_WORKFLOW)
    def saga_workflow(saga_name: str, input: dict[str, Json], actor: dict[str, str]) -> dict[str, Json]:
        saga = _saga_of(saga_name)

        def run_step(saga: Saga, index: int, phase: Phase, results: Mapping[str, Json]) -> Json:
            done = saga_step(saga.name, index, phase, input, dict(results), actor)
            if "failed" in done:  # a permanent failure is a step's output, so a replay sees it too
                failed = done["failed"]
                raise StepFailed(
                    f"{saga.name}: step {saga.steps[index].name!r} failed: {failed['error']}",
                    step=saga.steps[index].name, phase=phase,
                    attempts=int(failed["attempts"]), error=str(failed["error"]),
                )  # fmt: skip
            return done["output"]

        return {"saga": saga.name, **drive(saga, run_step)}

    _saga_workflow = saga_workflow
    _registered = True


_STATUS = {
    "PENDING": "running",
    "ENQUEUED": "queued",
    "DELAYED": "queued",
    "CANCELLED": "cancelled",
    "ERROR": "failed",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "failed",
}


def _info(status: WorkflowStatus, steps: list[Any] | None = None) -> WorkflowInfo:
    output = status.output if isinstance(status.output, dict) else None
    state = _STATUS.get(str(status.status), "failed")
    if str(status.status) == "SUCCESS":
        state = str((output or {}).get("status", "completed"))
    inputs: Mapping[str, Any] = status.input or {}
    args: tuple[Any, ...] = tuple(inputs.get("args") or ())
    saga = str(args[0]) if args else "?"
    shown: list[tuple[str, str, str]] = []
    for s in steps or ():
        if s.get("function_name") != _STEP:
            continue
        out = s.get("output") if isinstance(s.get("output"), dict) else {}
        failed = (out or {}).get("failed")
        shown.append(
            (str((out or {}).get("step", "?")), str((out or {}).get("phase", "?")),
             "done" if failed is None else f"failed: {failed.get('error')}")
        )  # fmt: skip
    return WorkflowInfo(
        id=status.workflow_id,
        saga=saga,
        status=state,
        input=args[1] if len(args) > 1 and isinstance(args[1], dict) else None,
        outcome=output,
        error=None if status.error is None else str(status.error),
        created_at=status.created_at,
        updated_at=status.updated_at,
        steps=tuple(shown),
    )


def _check_json(value: object, what: str) -> None:
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON ({exc})") from None
