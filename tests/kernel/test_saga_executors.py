"""Each process is a workflow executor of its own: a process launching an engine takes up the
workflows of processes that ended (killed mid-way), never one a live process is running (DBOS's
one shared executor made a second process run it too: a key rotation, resumed without its
passphrase, was undone while the first process said it was done)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from truthvault.hub.store import HubStore, open_store
from truthvault.kernel import SqlStepLedger, WorkflowEngine

from ._saga_holder import holding_saga

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HubStore]:
    opened = open_store(str(tmp_path / "hub.db"), create=True)
    yield opened
    opened.close()


def _holder(tmp_path: Path, dbos: str, wid: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.kernel._saga_holder", str(tmp_path / "hub.db"), dbos, wid, str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while not (tmp_path / "attempts").exists():  # its step has begun
        assert child.poll() is None, child.communicate()
        time.sleep(0.01)
    return child


def _attempts(tmp_path: Path) -> int:
    return len((tmp_path / "attempts").read_text().splitlines())


def test_a_launch_leaves_a_live_processs_workflow_to_it(store: HubStore, tmp_path: Path) -> None:
    dbos = f"sqlite:///{tmp_path / 'workflows.sqlite'}"
    child = _holder(tmp_path, dbos, "held-1")
    engine = WorkflowEngine(holding_saga(tmp_path), SqlStepLedger(store.database.write), database_url=dbos)
    with engine:
        # taken up, it would be on DBOS's queue now (launch re-enqueues what it takes up)
        assert engine.info("held-1").status == "running"
        (tmp_path / "release").touch()
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert json.loads(out)["status"] == "completed"
        assert engine.result("held-1")["status"] == "completed"
    assert _attempts(tmp_path) == 1  # the step ran in the live process alone


def test_a_launch_takes_up_the_workflow_of_a_killed_process(store: HubStore, tmp_path: Path) -> None:
    dbos = f"sqlite:///{tmp_path / 'workflows.sqlite'}"
    child = _holder(tmp_path, dbos, "held-2")
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)
    (tmp_path / "release").touch()
    engine = WorkflowEngine(holding_saga(tmp_path), SqlStepLedger(store.database.write), database_url=dbos)
    with engine:
        assert engine.result("held-2")["status"] == "completed"
    assert _attempts(tmp_path) == 2  # begun in the killed process, run again here
