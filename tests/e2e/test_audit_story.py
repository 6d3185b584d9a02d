"""The audit log from the command line: a device enrolls, syncs, proves an entry and verifies
the log against a real hub process; the hub's admin verifies its database."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Cli, HubProc


def test_a_device_proves_and_verifies_the_log_and_the_admin_checks_the_database(
    hub: HubProc, tmp_path: Path
) -> None:
    code = hub.admin.json("hub", "tenant", "code", "family")["enrol_code"]
    laptop = Cli(tmp_path / "laptop")
    laptop.run("enroll", "--hub", hub.url, "--code", code, "--name", "laptop")
    laptop.run("note", "add", "first")
    laptop.run("sync", "now")
    laptop.run("note", "add", "second")
    laptop.run("sync", "now")
    proof = laptop.json("audit", "proof", "1")
    assert proof["entry"]["action"] == "sync.push" and proof["checkpoint"]["size"] == 2
    assert len(proof["proof"]) == 1
    shown = laptop.run("audit", "proof", "0").stdout
    assert "entry 0: sync.push 1.0.0" in shown and "verified against the hub's signed checkpoint" in shown
    first = laptop.json("audit", "verify")
    assert (first["checked"], first["from"], first["size"]) == (2, 0, 2)
    assert laptop.json("audit", "verify") == {**first, "checked": 0, "from": 2}  # nothing new since
    assert laptop.json("audit", "verify", "--full") == first
    missing = laptop.run("audit", "proof", "9", check=False)
    assert missing.returncode == 1 and "no audit entry 9" in missing.stderr
    admin = json.loads(hub.admin.run("hub", "audit", "verify", "--json").stdout)
    assert admin[0]["tenant"] == "family" and admin[0]["entries"] == 2
    # the hub made its checkpoint key, readable by its owner only, where it keeps its files
    key = Path(hub.admin.env["TRUTHVAULT_HOME"]) / "hub-audit.key"
    assert key.stat().st_mode & 0o077 == 0
