"""A key rotation killed half-way, with real processes (each hub backend): the device that ran
it says the rotation is unfinished, the next launch of its workflows finishes or undoes it, and
then every device agrees on one key and reads everything, and so does a device recovered with
the passphrase."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from truthvault.vault import DB_NAME

from .conftest import HubProc
from .test_e2e_encryption import _enroll, _tenant, _texts

pytestmark = pytest.mark.e2e

PASSPHRASE = "correct horse battery staple"


def _steps_done(vault_db: Path) -> set[int]:
    with closing(sqlite3.connect(f"file:{vault_db}?mode=ro", uri=True, timeout=30)) as conn:
        rows = conn.execute(
            "SELECT step FROM workflow_steps WHERE workflow_id LIKE 'keys.rotate:%' AND phase = 'run'"
        ).fetchall()
    return {int(r[0]) for r in rows}


@pytest.fixture
def bare_hub(hub_db: str, tmp_path: Path) -> Iterator[HubProc]:
    """A running hub with no tenant yet."""
    proc = HubProc(hub_db, tmp_path / "hub-home")
    proc.start()
    yield proc
    proc.stop()


def test_a_rotation_killed_after_its_share_is_finished_or_undone_and_nothing_is_lost(
    bare_hub: HubProc, tmp_path: Path
) -> None:
    hub = bare_hub
    _tenant(hub, "family", "local_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    laptop.run("note", "add", "written before")
    laptop.sync()
    phone = _enroll(hub, tmp_path, "family", "phone")
    laptop.sync()
    phone.sync()
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE)
    laptop.run("keys", "recovery", "set", "--passphrase-file", str(secret))
    before = laptop.json("keys", "status")["current_key"]

    child = subprocess.Popen(
        [sys.executable, "-m", "truthvault", "keys", "rotate", "--passphrase-file", str(secret)],
        env=laptop.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    vault_db = laptop.home / DB_NAME
    try:
        while child.poll() is None and 2 not in _steps_done(vault_db):  # step 2: the share
            time.sleep(0.002)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    done = _steps_done(vault_db)
    assert 2 in done, "the rotation never shared its key"

    status = laptop.json("keys", "status")
    if 4 not in done:  # killed before it adopted the new key: it is left unfinished
        [workflow_id] = status["unfinished_rotations"]
        resumed = laptop.run("workflow", "resume", workflow_id)
        # without its passphrase (held only by the killed process) a rotation that had not
        # re-wrapped the recovery copy is undone; one that had is finished
        expected = "completed" if 3 in done else "compensated"
        assert expected in resumed.stdout, resumed.stdout
    assert laptop.json("keys", "status")["unfinished_rotations"] == []
    laptop.run("note", "add", "written after")
    laptop.sync()
    phone.sync()
    laptop.sync()  # (a device that took the key in shares what it holds)
    phone.sync()
    keys = {laptop.json("keys", "status")["current_key"], phone.json("keys", "status")["current_key"]}
    assert len(keys) == 1, keys
    if 3 not in done:
        assert keys == {before}
    assert _texts(phone) == _texts(laptop) == {"written before", "written after"}

    tablet = _enroll(hub, tmp_path, "family", "tablet", "--recover", "--passphrase-file", str(secret))
    tablet.sync()
    assert _texts(tablet) == {"written before", "written after"}
    assert os.stat(laptop.home / "workflows.sqlite").st_mode & 0o077 == 0
    assert PASSPHRASE.encode() not in (laptop.home / "workflows.sqlite").read_bytes()


def test_a_rotation_the_policy_holds_for_an_approval_runs_with_approval(
    bare_hub: HubProc, tmp_path: Path
) -> None:
    """The hub governed every PUT /v1/keys/wrapped as an action of its own named keys.rotate,
    and could not redeem the device's approval: a policy holding keys.rotate for an approval
    made the share fail at the hub, and every routine share of a sync too. It is keys.share."""
    hub = bare_hub
    _tenant(hub, "family", "local_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    laptop.sync()
    before = laptop.json("keys", "status")["current_key"]
    policy = tmp_path / "policy.cedar"
    policy.write_text(
        '@id("owner.all")\npermit (principal in Role::"owner", action, resource)\n'
        'unless { action == Action::"keys.rotate" };\n\n'
        '@id("owner.rotate")\n@approval("approve")\n'
        'permit (principal in Role::"owner", action == Action::"keys.rotate", resource);\n'
    )
    laptop.run("policy", "set", str(policy))
    held = laptop.run("keys", "rotate", check=False)
    assert held.returncode == 1 and "--approval" in held.stderr, held.stderr
    [request_id] = [r["id"] for r in laptop.json("approvals")]
    assert f"'truthvault keys rotate --approval {request_id}'" in held.stderr
    assert laptop.json("keys", "status")["current_key"] == before
    laptop.run("approve", request_id)
    done = laptop.run("keys", "rotate", "--approval", request_id).stdout
    assert "rotated the tenant data key" in done
    assert laptop.json("keys", "status")["current_key"] != before
