"""A process that runs a 3-step saga against a hub store and, when told, kills itself (SIGKILL)
at one step boundary: ``python -m tests.kernel._saga_child HUB_URL DBOS_URL SCHEMA WORKFLOW_ID
KILL_AT FAIL_AT``. KILL_AT is ``step:outcome`` (``two:completed``) or ``-``; FAIL_AT is the step
that fails for good (its saga then compensates) or ``-``. Without KILL_AT it launches (which
resumes what a killed process left), waits for the workflow and prints its outcome as JSON."""

from __future__ import annotations

import json
import os
import signal
import sys

from truthvault.hub.store import open_store
from truthvault.kernel._saga import Retry, Saga, SagaRegistry, SqlStepLedger, Step, StepContext
from truthvault.kernel._workflows import StepEvent, WorkflowEngine


def main() -> None:
    hub_url, dbos_url, schema, workflow_id, kill_at, fail_at = sys.argv[1:7]
    store = open_store(hub_url)
    with store.database.write() as db:
        key = "BIGINT GENERATED ALWAYS AS IDENTITY" if hub_url.startswith("postgresql") else "INTEGER"
        db.execute(
            f"CREATE TABLE IF NOT EXISTS fx (n {key} PRIMARY KEY, wf TEXT NOT NULL, name TEXT NOT NULL)"
        )

    def run(name: str):  # type: ignore[no-untyped-def]
        def body(ctx: StepContext) -> str:
            if name == fail_at:
                raise RuntimeError(f"{name} broke")
            ctx.db.execute(
                "INSERT INTO fx (wf, name) VALUES (?, ?)", (ctx.workflow_id, f"{name}:{ctx.phase}")
            )
            return name

        return body

    def undo(ctx: StepContext) -> None:
        ctx.db.execute(
            "INSERT INTO fx (wf, name) VALUES (?, ?)", (ctx.workflow_id, f"{ctx.step}:{ctx.phase}")
        )

    steps = tuple(Step(n, run(n), undo, retry=Retry(attempts=1)) for n in ("one", "two", "three"))
    registry = SagaRegistry()
    registry.add(Saga("test.crash", "1.0.0", steps))

    def observe(event: StepEvent) -> None:
        if kill_at == f"{event.step}:{event.phase}:{event.outcome}":
            os.kill(os.getpid(), signal.SIGKILL)

    engine = WorkflowEngine(
        registry, SqlStepLedger(store.database.write), database_url=dbos_url,
        schema=None if schema == "-" else schema, observe=observe,
    )  # fmt: skip
    engine.launch()
    if kill_at != "-":
        engine.start("test.crash", {}, workflow_id=workflow_id)
        engine.result(workflow_id)
        print("the kill point was never reached", file=sys.stderr)
        sys.exit(3)
    print(json.dumps(engine.result(workflow_id)))
    engine.close()
    store.close()


if __name__ == "__main__":
    main()
