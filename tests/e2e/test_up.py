"""The Quickstart: `truthvault up` runs a hub with the vault enrolled, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import Cli

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_up_serves_syncs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    port = _free_port()
    log = tmp_path / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "truthvault", "up", "--port", str(port)],
            env=cli.env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        printed = log.read_text()
        assert "127.0.0.1" in printed and "loopback only" in printed and "note add" in printed

        cli.json("note", "add", "hello from the quickstart")
        synced = cli.json("sync", "now")
        assert synced["outcomes"] == {"applied": 1}
        assert cli.json("sync", "check")["in_sync"]
        # enrolled as a user would be: with its own key pair, so the tenant key is wrapped to it
        assert (tmp_path / "home" / "device.key").exists()
        status = cli.json("keys", "status")
        assert [(d["key"], d["can_receive"]) for d in status["devices"]] == [(status["current_key"], True)]
        again = Cli(tmp_path / "home")  # a second `up` on the same home must refuse the busy port
        busy = again.run("up", "--port", str(port), check=False)
        assert busy.returncode == 1 and "in use" in busy.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(15)
    assert code == 0, log.read_text()
    assert "hub stopped" in log.read_text()
    assert "Traceback" not in log.read_text()
