"""Crashes: kill -9 of the hub or of the client during a push loses nothing acknowledged
and duplicates nothing on retry."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import Cli, HubProc, _device

pytestmark = pytest.mark.e2e

COUNT = 40_000


def _fill(cli: Cli, tmp_path: Path, count: int = COUNT) -> None:
    lines = []
    for n in range(count):
        item = {
            "entity_type": "note",
            "entity_id": f"crash-{n:06d}",
            "tenant_id": "local",
            "truth_level": 1,
            "origin_source": "user:import",
            "last_modified_at": f"2026-01-01T00:{n // 60000:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z-0000",
            "device_id": "importer",
            "payload": {"text": f"note {n} " + "x" * 200},
        }
        lines.append(json.dumps(item))
    source = tmp_path / "fill.jsonl"
    source.write_text("\n".join(lines) + "\n")
    cli.run("import", str(source))


def _verify(hub: HubProc, tmp_path: Path, pusher: Cli, name: str) -> None:
    reader = _device(hub, tmp_path, name)
    pulled = reader.json("sync", "now")
    assert pulled["pulled"] == COUNT
    # every entity change takes one sequence number: a re-applied batch would show here
    assert pulled["cursor"] == COUNT
    assert reader.json("sync", "check")["in_sync"]
    assert pusher.json("sync", "check")["in_sync"]


def _push_in_background(cli: Cli) -> subprocess.Popen[bytes]:
    with (cli.home / "push.out").open("wb") as out, (cli.home / "push.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "truthvault", "sync", "push"], env=cli.env, stdout=out, stderr=err
        )


def _wait_until_partly_pushed(hub: HubProc, proc: subprocess.Popen[bytes]) -> int:
    """Let the push run in short slices, stopped (SIGSTOP) while the hub's head is read, until
    some, not all, of it has committed; return the head. The pusher is left stopped: it moves
    only while this lets it, so no load on the machine can let it finish unseen (it once did)."""
    token = hub.device("family", "watcher")["token"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        proc.send_signal(signal.SIGSTOP)
        head = httpx.get(
            hub.url + "/v1/sync/pull",
            params={"since": 0, "limit": 1},
            headers={"authorization": f"Bearer {token}"},
        ).json()["head"]
        if head > 0:
            assert head < COUNT, "the push finished within one slice; raise COUNT"
            return int(head)
        assert proc.poll() is None, "the push ended before anything reached the hub"
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("nothing reached the hub in 120 s")


def test_client_killed_during_push(hub: HubProc, laptop: Cli, tmp_path: Path) -> None:
    _fill(laptop, tmp_path)
    proc = _push_in_background(laptop)
    _wait_until_partly_pushed(hub, proc)
    proc.kill()
    proc.wait()
    retry = laptop.json("sync", "push")
    assert retry["pushed"] <= COUNT
    assert set(retry["outcomes"]) <= {"applied", "duplicate"}
    _verify(hub, tmp_path, laptop, "reader")


@pytest.mark.both_backends
def test_hub_killed_during_push(hub: HubProc, laptop: Cli, tmp_path: Path) -> None:
    _fill(laptop, tmp_path)
    proc = _push_in_background(laptop)
    _wait_until_partly_pushed(hub, proc)
    hub.stop(kill=True)
    proc.send_signal(signal.SIGCONT)
    proc.wait(60)
    err = (laptop.home / "push.err").read_text()
    # the client saw the hub vanish and said so in one line
    assert proc.returncode == 1 and err.startswith("error: cannot reach the hub"), err
    assert "Traceback" not in err
    hub.start()
    retry = laptop.json("sync", "push")
    assert set(retry["outcomes"]) <= {"applied", "duplicate"}
    _verify(hub, tmp_path, laptop, "reader")
