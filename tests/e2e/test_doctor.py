"""``truthvault doctor`` on real vaults against a real hub process: all good after a sync; a
stopped hub, a vault file others can read, a key file others can read, a corrupted vault file
each fail with what to do, and a non-zero exit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import Cli, HubProc


def _checks(cli: Cli) -> tuple[int, dict[str, dict[str, str]]]:
    import json

    result = cli.run("doctor", "--json", check=False)
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)}


@pytest.mark.both_backends
def test_doctor_of_an_enrolled_device(hub: HubProc, tmp_path: Path) -> None:
    code = hub.admin.json("hub", "tenant", "code", "family")["enrol_code"]
    laptop = Cli(tmp_path / "laptop")
    laptop.run("enroll", "--hub", hub.url, "--code", code, "--name", "laptop")
    laptop.run("note", "add", "hello")
    rc, checks = _checks(laptop)
    assert checks["sync.pending"]["detail"].startswith("1 change(s)")
    laptop.run("sync", "now")
    rc, checks = _checks(laptop)
    assert rc == 0, checks
    for name in ("vault.file", "vault.permissions", "vault.schema", "keys.device", "hub.reachable",
                 "clock.skew", "sync.pending", "audit.checkpoint"):  # fmt: skip
        assert checks[name]["status"] == "ok", checks[name]
    text = laptop.run("doctor").stdout
    assert "all checks passed" in text or "0 failed" in text

    key = Path(checks["keys.device"]["detail"].split(" is ")[0])
    key.chmod(0o644)
    rc, checks = _checks(laptop)
    assert rc == 1 and checks["keys.device"]["status"] == "fail"
    assert f"chmod 600 {key}" in checks["keys.device"]["fix"]
    key.chmod(0o600)

    hub.stop()
    rc, checks = _checks(laptop)
    assert rc == 1 and checks["hub.reachable"]["status"] == "fail"
    assert "is the hub running" in checks["hub.reachable"]["fix"]
    assert checks["vault.file"]["status"] == "ok"  # the other checks still ran
    shown = laptop.run("doctor", check=False)
    assert shown.returncode == 1 and "FAIL  hub.reachable" in shown.stdout and "->" in shown.stdout


def test_doctor_finds_a_readable_and_a_corrupted_vault_file(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "solo")
    cli.run("init")
    for n in range(3):
        cli.run("note", "add", f"note {n} " + "x" * 200)
    vault = tmp_path / "solo" / "vault.db"
    vault.chmod(0o644)
    rc, checks = _checks(cli)
    assert rc == 1 and checks["vault.permissions"]["status"] == "fail"
    assert checks["vault.permissions"]["fix"] == f"chmod 600 {vault}"
    assert checks["hub.reachable"]["status"] == "warn"  # not joined: worth a word, not a failure
    vault.chmod(0o600)
    for extra in ("-wal", "-shm"):
        Path(str(vault) + extra).unlink(missing_ok=True)
    size = vault.stat().st_size
    with vault.open("r+b") as f:  # overwrite the second half of the file: pages of tables and indexes
        f.seek(size // 2)
        f.write(os.urandom(size - size // 2))
    rc, checks = _checks(cli)
    assert rc == 1 and checks["vault.file"]["status"] == "fail"
    assert checks["vault.file"]["fix"]


def test_the_devices_dlq_commands(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "solo")
    cli.run("init")
    assert cli.run("dlq", "list").stdout.strip() == "no dead letters"
    assert cli.json("dlq", "list") == []
    from truthvault import Vault

    with Vault.open(tmp_path / "solo") as vault:
        kept = vault.dead_letters.add("automation", "run-1", "rule r1", "boom", {"token": "abc"}, 3)
    shown = cli.run("dlq", "show", kept.id[:8]).stdout
    assert "rule r1" in shown and '"token": "***"' in shown and "abc" not in shown
    assert cli.json("dlq", "quarantine", kept.id[:8], "--note", "later")["status"] == "quarantined"
    # a retry runs its workflow again with this vault's engine: one that never ran is named
    refused = cli.run("dlq", "retry", kept.id[:8], check=False)
    assert refused.returncode == 1 and refused.stderr == "error: no workflow 'run-1' to restart\n"
    assert cli.json("dlq", "show", kept.id[:8])["status"] == "quarantined"  # unchanged by the refusal
    short = cli.run("dlq", "discard", "ab", check=False)
    assert short.returncode == 1 and "id" in short.stderr.splitlines()[0]
    assert cli.json("dlq", "discard", kept.id, "--note", "not needed")["status"] == "discarded"
