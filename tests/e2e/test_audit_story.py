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
    # the log holds every governed act: the tenant's provisioning (each of its three steps, the
    # default policy it set and the first code), the admin's code for the laptop, each note the
    # laptop added (its device-signed batches) and each push
    size = laptop.json("audit", "verify", "--full")["size"]
    proofs = [laptop.json("audit", "proof", str(n)) for n in range(size)]
    actions = sorted(p["entry"]["action"] for p in proofs)
    assert actions == [
        "notes.create", "notes.create", "policy.set", "sync.push", "sync.push",
        "tenant.code", "tenant.code", *["workflow.run"] * 3,
    ]  # fmt: skip
    assert all(p["checkpoint"]["size"] == size for p in proofs)
    first_step = proofs[0]["entry"]  # the first: the provisioning's first step, by the hub's admin
    assert (first_step["action"], first_step["reason"].split(" ")[:2]) == (
        "workflow.run",
        ["tenant.provision", "tenant"],
    )
    shown = laptop.run("audit", "proof", "0").stdout
    assert "entry 0: workflow.run 1.0.0" in shown and "verified against the hub's signed checkpoint" in shown
    first = laptop.json("audit", "verify", "--full")
    assert (first["checked"], first["from"], first["size"]) == (size, 0, size)
    assert laptop.json("audit", "verify") == {**first, "checked": 0, "from": size}  # nothing new since
    assert laptop.json("audit", "verify", "--full") == first
    missing = laptop.run("audit", "proof", "99", check=False)
    assert missing.returncode == 1 and "no audit entry 99" in missing.stderr
    admin = json.loads(hub.admin.run("hub", "audit", "verify", "--json").stdout)
    assert admin[0]["tenant"] == "family" and admin[0]["entries"] == size
    # the hub made its checkpoint key, readable by its owner only, where it keeps its files
    key = Path(hub.admin.env["TRUTHVAULT_HOME"]) / "hub-audit.key"
    assert key.stat().st_mode & 0o077 == 0
