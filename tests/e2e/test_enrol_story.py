"""The enrolment story with real processes: codes, signing devices, revocation, security events."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cli, HubProc


@pytest.fixture
def hub_and_code(hub_db: str, tmp_path: Path) -> Iterator[tuple[HubProc, str]]:
    """A running hub with tenant 'family' and the enrolment code its creation printed."""
    proc = HubProc(hub_db, tmp_path / "hub-home")
    created = proc.admin.json("hub", "tenant", "add", "family", "--mode", "local_first")
    proc.start()
    yield proc, created["enrol_code"]
    proc.stop()


def test_enrol_sync_list_revoke(hub_and_code: tuple[HubProc, str], tmp_path: Path) -> None:
    hub, code = hub_and_code
    laptop, phone = Cli(tmp_path / "laptop"), Cli(tmp_path / "phone")

    out = laptop.run("enroll", "--hub", hub.url, "--code", code, "--name", "laptop").stdout
    assert "enrolled as device 'laptop' of tenant 'family'" in out
    key = tmp_path / "laptop" / "device.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    laptop.run("note", "add", "buy oat milk")
    assert laptop.sync()["outcomes"] == {"applied": 1}
    laptop.run("keys", "rotate-device", "--grace", "1")
    assert laptop.sync()["pushed"] == 0  # signed with the new key

    # The code was single use; the next device gets another one.
    used = Cli(tmp_path / "other").run("enroll", "--hub", hub.url, "--code", code, check=False)
    assert used.returncode != 0 and "already used" in used.stderr
    second = hub.admin.json("hub", "tenant", "code", "family")["enrol_code"]
    phone.run("enroll", "--hub", hub.url, "--code", "-", "--name", "phone", stdin=second + "\n")
    laptop.sync()  # a local-first tenant: the laptop wraps the tenant's data key to the phone
    phone.sync()
    assert "buy oat milk" in phone.run("list", "--json").stdout

    listed = laptop.json("devices")
    assert [(d["name"], d["revoked"]) for d in listed] == [("laptop", False), ("phone", False)]
    assert all(d["last_seen_at"] for d in listed)
    phone_id = next(d["id"] for d in listed if d["name"] == "phone")

    laptop.run("devices", "revoke", "phone")
    refused = phone.run("sync", "now", check=False)
    assert refused.returncode != 0
    first, *rest = refused.stderr.strip().splitlines()
    assert first.startswith("error: ") and "revoked" in first and len(rest) <= 1  # one line (+ a hint)
    assert laptop.sync()["pushed"] == 0  # the others carry on

    events = hub.admin.json("hub", "security-events", "--tenant", "family")
    kinds = [e["type"] for e in events]
    assert {"DEVICE_ENROLLED", "KEY_ROTATED", "DEVICE_REVOKED", "AUTH_REVOKED"} <= set(kinds)
    (revoked,) = [e for e in events if e["type"] == "AUTH_REVOKED"]
    assert revoked["device_id"] == phone_id and revoked["detail"]["path"].startswith(
        ("/v1/sync/", "/v1/keys/")
    )  # a sync starts with keys
    table = hub.admin.run("hub", "security-events").stdout
    assert "AUTH_REVOKED" in table and "ENROLL_FAILED" in table


def test_a_moved_vault_folder_keeps_its_key_and_syncs(
    hub_and_code: tuple[HubProc, str], tmp_path: Path
) -> None:
    hub, code = hub_and_code
    laptop = Cli(tmp_path / "laptop")
    laptop.run("enroll", "--hub", hub.url, "--code", code, "--name", "laptop")
    laptop.run("note", "add", "before the move")
    assert laptop.sync()["outcomes"] == {"applied": 1}

    (tmp_path / "laptop").rename(tmp_path / "renamed")
    moved = Cli(tmp_path / "renamed")
    moved.run("note", "add", "after the move")
    assert moved.sync()["outcomes"] == {"applied": 1}
