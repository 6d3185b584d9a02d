"""A process that starts a one-step saga whose step holds until released:
``python -m tests.kernel._saga_holder HUB_PATH DBOS_URL WORKFLOW_ID DIR``.

The step appends a line to ``DIR/attempts`` as it begins, then waits until ``DIR/release``
exists. The process prints the workflow's outcome once it ends."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from truthvault.hub.store import open_store
from truthvault.kernel import Retry, Saga, SagaRegistry, SqlStepLedger, Step, StepContext, WorkflowEngine


def holding_saga(folder: Path) -> SagaRegistry:
    def hold(ctx: StepContext) -> str:
        with (folder / "attempts").open("a") as out:
            out.write(f"{ctx.attempt}\n")
        while not (folder / "release").exists():
            time.sleep(0.01)
        return "held"

    registry = SagaRegistry()
    registry.add(
        Saga(
            "test.hold",
            "1.0.0",
            (Step("hold", hold, retry=Retry(attempts=1), timeout_s=None, transactional=False),),
        )
    )
    return registry


def main() -> None:
    hub_path, dbos_url, wid, folder = sys.argv[1:5]
    store = open_store(hub_path)
    engine = WorkflowEngine(
        holding_saga(Path(folder)), SqlStepLedger(store.database.write), database_url=dbos_url
    )
    engine.launch()
    print(json.dumps(engine.run("test.hold", {}, workflow_id=wid)), flush=True)
    engine.close()
    store.close()


if __name__ == "__main__":
    main()
