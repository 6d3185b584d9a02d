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
    for _ in range(2):  # only looking whether a recovery copy exists fetches none
        assert laptop.json("keys", "status")["recovery_passphrase_set"] is False
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
    # the hub's events newest first, as the device's own are, with the device of each
    every = laptop.json("events", "--hub", "--limit", "100")
    assert [e["id"] for e in every] == sorted((e["id"] for e in every), reverse=True)
    assert laptop.json("events", "--hub", "--limit", "1") == every[:1]
    assert (every[0]["type"], every[0]["device_name"]) == ("SYNC_PULL", "phone")
    assert {e["device_name"] for e in every if e["type"] != "WORKFLOW_STEP"} == {"laptop", "phone"}
    # the tenant's provisioning, step by step, by the hub itself
    provisioned = [e["detail"]["step"] for e in reversed(every) if e["type"] == "WORKFLOW_STEP"]
    assert provisioned == ["tenant", "policy", "contracts"]

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
    assert "KEY_RECOVERY_FETCHED" not in kinds
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


def _code(hub: HubProc) -> str:
    return str(hub.admin.json("hub", "tenant", "code", "family")["enrol_code"])


def _texts(cli: Cli) -> list[str]:
    return sorted(str(e["payload"].get("text")) for e in cli.json("list"))


# The hub's part of this is tested on both backends at the store (tests/sync, tests/hub); the
# story through real processes once, on SQLite, keeps the suite within its time.
@pytest.mark.parametrize("hub_db", ["sqlite"], indirect=True)
def test_revoking_another_device_offers_to_rotate_the_data_key(
    hub_and_code: tuple[HubProc, str], tmp_path: Path
) -> None:
    hub, code = hub_and_code
    phone, tablet, watch = Cli(tmp_path / "phone"), Cli(tmp_path / "tablet"), Cli(tmp_path / "watch")
    phone.run("enroll", "--hub", hub.url, "--code", code, "--name", "phone")
    phone.sync()  # the tenant's data key is made here
    for cli, name in ((tablet, "tablet"), (watch, "watch")):
        cli.run("enroll", "--hub", hub.url, "--code", _code(hub), "--name", name)
    phone.sync()  # wraps the key to both
    tablet.sync()
    watch.sync()
    first = phone.json("keys", "status")["current_key"]

    # no terminal, no --rotate-key: revoked, and told the revoked device still has the key
    out = phone.run("devices", "revoke", "tablet").stdout
    assert "device 'tablet' revoked" in out and "truthvault keys rotate" in out
    status = phone.json("keys", "status")
    assert status["current_key"] == first and status["revoked_devices_hold_current_key"] == ["tablet"]
    assert {d["name"]: (d["revoked"], d["key"]) for d in status["devices"]}["tablet"] == (True, first)
    listed = phone.run("keys", "status").stdout
    assert "tablet: revoked, holds the current key" in listed and "truthvault keys rotate" in listed

    # at a terminal, the rotation is offered; --rotate-key does it without asking
    asked = phone.run_at_terminal("devices", "revoke", "watch", answers="y\n")
    assert asked.returncode == 0, asked.stderr
    assert "rotate the tenant data key now" in asked.stdout and "rotated the tenant data key" in asked.stdout
    status = phone.json("keys", "status")
    assert status["current_key"] != first and status["revoked_devices_hold_current_key"] == []
    assert {d["name"]: (d["revoked"], d["key"]) for d in status["devices"]}["tablet"] == (True, first)
    again = phone.run("devices", "revoke", "tablet", "--rotate-key").stdout  # already revoked: still fine
    assert "rotated the tenant data key" in again
    phone.run("note", "add", "after the rotations")
    assert phone.sync()["outcomes"] == {"applied": 1}


# The hub's part of this is tested on both backends at the store (tests/sync, tests/hub); the
# story through real processes once, on SQLite, keeps the suite within its time.
@pytest.mark.parametrize("hub_db", ["sqlite"], indirect=True)
def test_revoking_this_device_asks_and_a_rejoin_keeps_its_unsynced_changes(
    hub_and_code: tuple[HubProc, str], tmp_path: Path
) -> None:
    hub, code = hub_and_code
    laptop, phone = Cli(tmp_path / "laptop"), Cli(tmp_path / "phone")
    laptop.run("enroll", "--hub", hub.url, "--code", code, "--name", "laptop")
    laptop.run("note", "add", "synced")
    laptop.sync()
    phone.run("enroll", "--hub", hub.url, "--code", _code(hub), "--name", "phone")
    laptop.sync()
    phone.sync()
    (synced,) = laptop.json("list")
    laptop.run("edit", synced["entity_id"], "--set", "text=synced, then edited offline")
    laptop.run("note", "add", "written offline")

    # Revoking this very device needs a yes: at a terminal, or --yes; never by default.
    refused = laptop.run("devices", "revoke", "laptop", check=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    declined = laptop.run_at_terminal("devices", "revoke", "laptop", answers="n\n")
    assert declined.returncode == 1 and "not confirmed" in declined.stderr
    assert not {d["name"]: d["revoked"] for d in phone.json("devices")}["laptop"]
    out = laptop.run("devices", "revoke", "laptop", "--yes").stdout
    assert "this device" in out and "enroll --rejoin" in out and "2 unsynced change(s)" in out
    assert "keys rotate" in out  # from another device: this one can no longer
    assert laptop.run("sync", "now", check=False).returncode == 1
    stuck = laptop.run("enroll", "--hub", hub.url, "--code", _code(hub), check=False)
    assert stuck.returncode == 1 and "already joined" in stuck.stderr and "--rejoin" in stuck.stderr
    phone.run("keys", "rotate")

    # A code of another tenant enrols a device there, but this vault stays as it was.
    other = hub.admin.json("hub", "tenant", "add", "other", "--mode", "local_first")["enrol_code"]
    wrong = laptop.run("enroll", "--rejoin", "--code", other, "--name", "stray", check=False)
    assert wrong.returncode == 1 and "left as it was" in wrong.stderr
    assert laptop.json("sync", "status")["pending"] == 2
    assert not (tmp_path / "laptop" / "device.key.rejoin").exists()

    # A new code: a new device identity, the same vault, its queue intact.
    out = laptop.run(
        "enroll", "--rejoin", "--code", "-", "--name", "laptop-2", stdin=_code(hub) + "\n"
    ).stdout
    assert "rejoined as device 'laptop-2'" in out and "2 unsynced change(s)" in out
    assert laptop.sync()["outcomes"] == {"applied": 2}
    phone.sync()
    assert _texts(phone) == ["synced, then edited offline", "written offline"]
    assert _texts(laptop) == _texts(phone)
    assert laptop.json("sync", "check")["in_sync"] is True
    laptop.run("note", "add", "as laptop-2")
    assert laptop.sync()["outcomes"] == {"applied": 1}  # sealed with the key it had or the new one
    phone.sync()
    assert "as laptop-2" in _texts(phone)
    devices = {d["name"]: d["revoked"] for d in phone.json("devices")}
    assert devices == {"laptop": True, "laptop-2": False, "phone": False}
