"""The dead-letter queue and the hub's health through real processes: a provisioning that fails
for good becomes a dead letter; the admin lists, shows, quarantines and retries it (the serving
hub runs the retried workflow, which fails alike and leaves a new dead letter); /readyz and the
admin-token-guarded /diagz answer from the serving hub."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from .conftest import HubProc


@pytest.mark.both_backends
def test_a_failed_provisioning_is_kept_decided_and_retried(hub: HubProc, tmp_path: Path) -> None:
    admin = hub.admin
    assert admin.json("hub", "dlq", "list") == []
    taken = admin.run("hub", "tenant", "add", "family", check=False)  # a taken name: refused at once
    assert taken.returncode != 0 and "already exists" in taken.stderr
    assert admin.json("hub", "dlq", "list") == []
    broken = tmp_path / "broken.cedar"
    broken.write_text("permit(")
    failed = admin.run("hub", "tenant", "add", "work", "--policy", str(broken), check=False)
    assert failed.returncode != 0 and "step 'policy' failed" in failed.stderr
    assert "work" not in {t["name"] for t in admin.json("hub", "tenant", "list")}  # compensated
    [letter] = admin.json("hub", "dlq", "list")
    assert letter["kind"] == "workflow" and letter["status"] == "open"
    assert letter["source"] == "tenant.provision/policy (run)" and letter["error"].startswith(
        "VALIDATION_ERROR: text"
    )
    assert letter["input"]["input"]["name"] == "work"

    shown = admin.run("hub", "dlq", "show", letter["id"][:8]).stdout
    assert letter["ref"] in shown and "tenant.provision/policy (run)" in shown

    quarantined = admin.json("hub", "dlq", "quarantine", letter["id"][:8], "--note", "duplicate name")
    assert quarantined["status"] == "quarantined" and quarantined["note"] == "duplicate name"
    assert admin.json("hub", "dlq", "list", "--status", "open") == []

    retried = admin.json("hub", "dlq", "retry", letter["id"])
    assert retried["status"] == "retried" and retried["retried_as"]
    # the serving hub runs the retried workflow: it fails alike, and is kept too
    deadline = time.monotonic() + 60
    refs: set[str] = set()
    while time.monotonic() < deadline:
        refs = {x["ref"] for x in admin.json("hub", "dlq", "list")}
        if retried["retried_as"] in refs:
            break
        time.sleep(0.5)
    assert refs == {letter["ref"], retried["retried_as"]}
    [new] = [x for x in admin.json("hub", "dlq", "list") if x["ref"] == retried["retried_as"]]
    assert new["status"] == "open" and new["source"] == "tenant.provision/policy (run)"

    # bad input: one line each, non-zero
    short = admin.run("hub", "dlq", "show", "ab", check=False)
    assert short.returncode != 0 and "at least 4 characters" in short.stderr
    assert len(short.stderr.strip().splitlines()) <= 2
    missing = admin.run("hub", "dlq", "discard", "ffffffff", check=False)
    assert missing.returncode != 0 and "no dead letter" in missing.stderr
    twice = admin.run("hub", "dlq", "discard", letter["id"], check=False)
    assert twice.returncode != 0 and "retried" in twice.stderr


@pytest.mark.both_backends
def test_readyz_and_diagz_of_a_serving_hub(hub: HubProc) -> None:
    assert httpx.get(hub.url + "/readyz", timeout=10).json()["status"] == "ready"
    assert httpx.get(hub.url + "/diagz", timeout=10).status_code == 401
    made = hub.admin.json("hub", "admin-token", "--name", "ops")
    assert made["token"].startswith("tvadm_")
    assert made["token"] not in hub.log.read_text()
    hub.admin.run("hub", "audit", "verify")
    body = httpx.get(
        hub.url + "/diagz", headers={"Authorization": f"Bearer {made['token']}"}, timeout=10
    ).json()
    assert body["database"]["reachable"] is True
    assert body["audit"]["last_verification"]["ok"] is True
    assert body["workflows"]["kept"] is True  # 'tenant add' ran tenant.provision
    assert body["dead_letters"]["total"] == 0
    hub.admin.run("hub", "admin-token", "--revoke", "ops")
    revoked = httpx.get(hub.url + "/diagz", headers={"Authorization": f"Bearer {made['token']}"}, timeout=10)
    assert revoked.status_code == 401
