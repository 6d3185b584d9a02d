"""Crashes: kill -9 of the hub or of the client during a push loses nothing acknowledged
and duplicates nothing on retry."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Cli, HubProc, _device

pytestmark = pytest.mark.e2e

COUNT = 20_000


def _fill(cli: Cli, tmp_path: Path, count: int = COUNT) -> None:
    lines = []
    for n in range(count):
        item = {
            "entity_type": "note",
            "entity_id": f"crash-{n:06d}",
            "tenant_id": "local",
            "truth_level": 1,
            "origin_source": "user:import",
            "last_modified_at": f"2026-01-01T00:00:{n // 1000:02d}.{n % 1000:03d}Z-0000",
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


def _push_in_background(cli: Cli) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "truthvault", "sync", "push"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_client_killed_during_push(hub: HubProc, laptop: Cli, tmp_path: Path) -> None:
    _fill(laptop, tmp_path)
    proc = _push_in_background(laptop)
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    retry = laptop.json("sync", "push")
    assert retry["pushed"] <= COUNT
    assert set(retry["outcomes"]) <= {"applied", "duplicate"}
    _verify(hub, tmp_path, laptop, "reader")


def test_hub_killed_during_push(hub: HubProc, laptop: Cli, tmp_path: Path) -> None:
    _fill(laptop, tmp_path)
    proc = _push_in_background(laptop)
    time.sleep(1.0)
    hub.stop(kill=True)
    proc.wait(60)
    assert (
        proc.returncode != 0 or "pushed" in proc.stdout
    )  # the client saw the hub vanish, or it had finished
    assert "Traceback" not in proc.stderr
    hub.start()
    retry = laptop.json("sync", "push")
    assert set(retry["outcomes"]) <= {"applied", "duplicate"}
    _verify(hub, tmp_path, laptop, "reader")
