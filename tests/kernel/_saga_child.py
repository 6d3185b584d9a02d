"""A process that runs 3-step sagas against a hub store and kills itself (SIGKILL) at one step
boundary: ``python -m tests.kernel._saga_child HUB_URL DBOS_URL SCHEMA WAIT START KILL_AT``.

It launches the engine (which resumes what a killed process left), waits for the workflows
named in WAIT (comma-separated, ``-`` for none) and prints their outcomes as one JSON object;
then, unless START is ``-``, starts workflow START (``<id>`` or ``<id>:fail`` for one whose last
step fails for good, so that it compensates) and kills itself at KILL_AT (``step:phase:outcome``,
such as ``two:run:completed``)."""

from __future__ import annotations

import json
import os
import signal
import sys

from truthvault.hub.store import open_store
from truthvault.kernel import (
    Retry,
    Saga,
    SagaRegistry,
    SqlStepLedger,
    Step,
    StepContext,
    StepEvent,
    WorkflowEngine,
)


def main() -> None:
    hub_url, dbos_url, schema, wait, start, kill_at = sys.argv[1:7]
    store = open_store(hub_url)
    with store.database.write() as db:
        key = "BIGINT GENERATED ALWAYS AS IDENTITY" if hub_url.startswith("postgresql") else "INTEGER"
        db.execute(
            f"CREATE TABLE IF NOT EXISTS fx (n {key} PRIMARY KEY, wf TEXT NOT NULL, name TEXT NOT NULL)"
        )

    def effect(ctx: StepContext) -> str:
        if ctx.phase == "run" and ctx.input.get("fail_at") == ctx.step:
            raise RuntimeError(f"{ctx.step} broke")
        ctx.db.execute(
            "INSERT INTO fx (wf, name) VALUES (?, ?)", (ctx.workflow_id, f"{ctx.step}:{ctx.phase}")
        )
        return ctx.step

    steps = tuple(Step(n, effect, effect, retry=Retry(attempts=1)) for n in ("one", "two", "three"))
    registry = SagaRegistry()
    registry.add(Saga("test.crash", "1.0.0", steps))

    def observe(event: StepEvent) -> None:
        if (
            event.workflow_id == start.split(":")[0]
            and kill_at == f"{event.step}:{event.phase}:{event.outcome}"
        ):
            os.kill(os.getpid(), signal.SIGKILL)

    engine = WorkflowEngine(
        registry, SqlStepLedger(store.database.write), database_url=dbos_url,
        schema=None if schema == "-" else schema, observe=observe,
    )  # fmt: skip
    engine.launch()
    outcomes = {wid: engine.result(wid) for wid in wait.split(",") if wid != "-"}
    print(json.dumps(outcomes), flush=True)
    if start != "-":
        wid, _, fail = start.partition(":")
        engine.start("test.crash", {"fail_at": "three" if fail else None}, workflow_id=wid)
        engine.result(wid)
        print("the kill point was never reached", file=sys.stderr)
        sys.exit(3)
    engine.close()
    store.close()


if __name__ == "__main__":
    main()
