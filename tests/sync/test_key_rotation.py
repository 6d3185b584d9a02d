"""``keys.rotate`` as a compensated workflow, through a hub (each backend): a rotation reaches
every device and the recovery copy; one that fails half-way is undone, and every entry written
meanwhile stays readable everywhere; the passphrase never reaches the workflow's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from truthvault.errors import ConflictState
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.kernel import ActionForbidden, Actor, AuditEntry, StepContext, decode_entry
from truthvault.sync import device_engine, device_kernel, rotate_data_key
from truthvault.sync._keys import open_recovery
from truthvault.vault import DB_NAME, WORKFLOWS_FILE

from .test_input_hash_sync import LocalFirstDevice

PASSPHRASE = "correct horse battery staple 42"


#: the hub's backend is not what these test (each runs on SQLite only; the hub's store is tested on both)
ON_SQLITE = pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)


@pytest.fixture
def pair(
    hub_store: HubStore, tmp_path: Path
) -> Iterator[tuple[LocalFirstDevice, LocalFirstDevice, TestClient]]:
    hub_store.add_tenant("fam", "local_first")
    settings = HubSettings(audit_key_path=str(tmp_path / "audit.key"))
    with TestClient(create_app(hub_store, settings)) as http:
        laptop = LocalFirstDevice(http, hub_store, tmp_path / "laptop")
        phone = LocalFirstDevice(http, hub_store, tmp_path / "phone")
        laptop.sync()
        phone.sync()
        laptop.syncer.keys.set_recovery(PASSPHRASE)
        yield laptop, phone, http
        laptop.vault.close(), phone.vault.close()


def _entries(device: LocalFirstDevice) -> list[AuditEntry]:
    vault = device.vault
    return [decode_entry(e) for _, batch in vault.audit.seal(vault.tenant_id, vault.device_id) for e in batch]


def _current(device: LocalFirstDevice) -> str:
    ring = device.vault.replica.keyring()
    assert ring is not None
    return ring.current


def test_a_rotation_reaches_every_device_and_the_recovery_copy_and_leaves_a_trace(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    laptop, phone, http = pair
    before = _current(laptop)
    old = laptop.vault.put("note", {"text": "written under the old key"}).item
    laptop.sync()
    done = rotate_data_key(laptop.vault, PASSPHRASE, transport=http._transport)
    entries = _entries(laptop)  # (before a sync sends them to the hub)
    assert done.previous == before != done.current == _current(laptop)
    assert done.devices == 2 and done.recovery_rewrapped
    new = laptop.vault.put("note", {"text": "written under the new key"}).item
    laptop.sync()
    phone.sync()
    assert _current(phone) == done.current
    assert {phone.vault.get(e.entity_id).data()["text"] for e in (old, new)} == {
        "written under the old key",
        "written under the new key",
    }
    recovered = open_recovery(laptop.syncer.keys._call("GET", "/v1/keys/recovery")["blob"], PASSPHRASE)
    assert recovered.current == done.current and before in recovered.kids
    # every step left its audit entry; the passphrase is in no workflow's input, output or file
    steps = [e.reason or "" for e in entries if e.action == "workflow.run"]
    assert [s.split()[1] for s in steps if s.startswith("keys.rotate")] == [
        "refresh", "prepare", "share", "recovery", "adopt",
    ]  # fmt: skip
    with device_engine(laptop.vault) as engine:
        info = engine.info(done.workflow_id)
    assert info.status == "completed" and info.input == {"recovery": True}
    for file in (laptop.vault.home / WORKFLOWS_FILE, laptop.vault.home / DB_NAME):
        if file.exists():
            assert PASSPHRASE.encode() not in file.read_bytes()


def test_a_rotation_that_fails_half_way_is_undone_and_nothing_written_meanwhile_is_lost(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    """A rotation resumed in a process that does not hold its passphrase (the one that started it
    was killed after the share) cannot re-wrap the recovery copy: it is compensated."""
    laptop, phone, http = pair
    before = _current(laptop)
    actor = {"source": "user:cli", "device_id": laptop.vault.device_id, "tenant_id": laptop.vault.tenant_id}
    with device_engine(laptop.vault, transport=http._transport) as engine:
        outcome = engine.run("keys.rotate", {"recovery": True}, actor=actor, workflow_id="keys.rotate:killed")
        assert outcome["status"] == "compensated"
        assert outcome["failed"]["step"] == "recovery" and outcome["compensated"] == ["share"]
        new_kid = outcome["results"]["prepare"]["kid"]
        entries = _entries(laptop)
        phone.sync()
        assert _current(phone) == before  # the share was undone at the hub before the phone synced
    assert _current(laptop) == before and new_kid in laptop.vault.replica.keyring().kids  # type: ignore[union-attr]
    laptop.vault.put("note", {"text": "after the undone rotation"})
    laptop.sync()
    phone.sync()
    assert [e.data()["text"] for e in phone.vault.list("note")] == ["after the undone rotation"]
    recovered = open_recovery(laptop.syncer.keys._call("GET", "/v1/keys/recovery")["blob"], PASSPHRASE)
    assert recovered.current == before and new_kid not in recovered.kids
    compensated = [e.reason or "" for e in entries if e.action == "workflow.compensate"]
    assert any("keys.rotate share" in r for r in compensated)
    # a dead letter says what failed, and nothing of a passphrase
    letters = [d for d in laptop.vault.dead_letters.list() if d.ref == "keys.rotate:killed"]
    assert letters and "passphrase" in letters[0].error


@ON_SQLITE
def test_a_device_that_adopted_the_new_key_goes_back_to_the_old_one_and_keeps_both(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    laptop, phone, http = pair
    before = _current(laptop)
    saga = device_engine(laptop.vault, transport=http._transport).registry.get("keys.rotate")
    assert saga is not None
    names = [s.name for s in saga.steps]
    assert names == ["refresh", "prepare", "share", "recovery", "adopt"]
    # the share step's compensation, met by a phone that took the new key in and wrote with it
    with device_engine(laptop.vault, transport=http._transport) as engine:
        engine.run(
            "keys.rotate",
            {"recovery": False},
            actor={"source": "user:cli", "device_id": laptop.vault.device_id},
        )
        rotated = _current(laptop)
        assert rotated != before
        phone.sync()
        assert _current(phone) == rotated
        written = phone.vault.put("note", {"text": "sealed with the new key"}).item
        phone.sync()
        # now undo it as a compensation would: the previous key current, the new one kept
        share = saga.steps[names.index("share")]
        assert share.compensate is not None
        ctx = StepContext(
            "undo",
            "keys.rotate",
            "share",
            "compensate",
            {},
            {"prepare": {"previous": before, "kid": rotated}},
        )
        share.compensate(ctx)
    phone.sync()
    assert _current(phone) == before and rotated in phone.vault.replica.keyring().kids  # type: ignore[union-attr]
    laptop.sync()
    assert laptop.vault.get(written.entity_id).data()["text"] == "sealed with the new key"


@ON_SQLITE
def test_the_action_is_governed_and_needs_the_device_engine(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    laptop, _, http = pair
    kernel = device_kernel(laptop.vault)
    with pytest.raises(ConflictState, match="workflow engine is not running"):
        kernel.run("keys.rotate", {}, actor=laptop.vault.actor())
    ai = Actor("ai-cloud:openai/gpt", laptop.vault.device_id, laptop.vault.tenant_id)
    with pytest.raises(ActionForbidden):
        rotate_data_key(laptop.vault, source=ai.source, transport=http._transport)
    denied = [e for e in _entries(laptop) if e.action == "keys.rotate" and e.decision == "denied"]
    assert denied and denied[-1].source == "ai-cloud:openai/gpt"


@ON_SQLITE
def test_a_rotation_held_for_an_approval_runs_once_it_is_redeemed(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    """From mobile a security action needs a fresh confirmation: the rotation asks for one,
    starts nothing, and runs when the approved request is redeemed."""
    from truthvault.kernel import ApprovalRequired

    laptop, phone, http = pair
    before = _current(laptop)
    with pytest.raises(ApprovalRequired) as asked:
        rotate_data_key(laptop.vault, PASSPHRASE, source="user:mobile", transport=http._transport)
    rid = asked.value.request_id
    assert rid is not None and _current(laptop) == before
    laptop.vault.broker.approve(rid, actor=laptop.vault.actor("user:cli"))
    done = rotate_data_key(
        laptop.vault, PASSPHRASE, source="user:mobile", approval=rid, transport=http._transport
    )
    assert done.current == _current(laptop) != before and done.recovery_rewrapped
    assert laptop.vault.broker.get(rid).status == "used"
    approved = [e for e in _entries(laptop) if e.action == "keys.rotate" and e.decision == "approved"]
    assert approved and approved[-1].source == "user:mobile"
    phone.sync()
    assert _current(phone) == done.current


@ON_SQLITE
def test_undoing_a_rotation_leaves_a_later_rotation_of_another_device_current(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    """A compensation that comes after another device rotated on top (it took the new key in,
    then made its own) must not set every device back to the key before both: the phone's
    rotation (a revoked device's key rotated away, say) would be undone without a word."""
    laptop, phone, http = pair
    before = _current(laptop)
    saga = device_engine(laptop.vault, transport=http._transport).registry.get("keys.rotate")
    assert saga is not None
    share = next(s for s in saga.steps if s.name == "share")
    assert share.compensate is not None
    with device_engine(laptop.vault, transport=http._transport) as engine:
        engine.run("keys.rotate", {"recovery": False}, actor={"source": "user:cli"})
    rotated = _current(laptop)
    phone.sync()
    assert _current(phone) == rotated
    latest = phone.syncer.keys.rotate().current  # the phone rotates on top of it
    ctx = StepContext(
        "undo", "keys.rotate", "share", "compensate", {}, {"prepare": {"previous": before, "kid": rotated}}
    )
    share.compensate(ctx)  # the laptop's rotation undone, late
    phone.sync()
    laptop.sync()
    assert _current(phone) == _current(laptop) == latest


@ON_SQLITE
def test_a_keyring_the_hub_made_up_is_never_taken_in(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    """A copy wrapped to a device needs only its public box key, which the hub serves: a hub
    operator could wrap a keyring of its own, current key and all, so that the device seals
    what it writes with a key the hub holds. Every copy a device of the tenant wraps holds the
    tenant's first key (no key ever leaves a keyring): one that shares no key with this
    device's is not from a device of the tenant."""
    from truthvault.crypto import Keyring, wrap_for_device
    from truthvault.errors import DecryptionFailed

    laptop, phone, _ = pair
    before = _current(laptop)
    forged = Keyring.new()  # the hub's own key
    holders = phone.syncer.keys.holders()
    box = next(h["box_public"] for h in holders if h["id"] == laptop.vault.device_id)
    blob = wrap_for_device(forged.serialize(), box).decode()
    phone.syncer.keys._call(
        "PUT", "/v1/keys/wrapped", {"blobs": {laptop.vault.device_id: blob}, "kid": forged.current}
    )
    with pytest.raises(DecryptionFailed, match="shares no key"):
        laptop.sync()
    ring = laptop.vault.replica.keyring()
    assert ring is not None and ring.current == before and forged.current not in ring.kids


@ON_SQLITE
def test_a_mistyped_passphrase_undoes_the_rotation_and_the_recovery_copy_still_opens_with_the_right_one(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    """The passphrase given to a rotation re-wraps the recovery copy: one typed wrong would have
    locked the copy under a passphrase nobody knows."""
    laptop, phone, http = pair
    before = _current(laptop)
    with pytest.raises(ConflictState, match="recovery step") as failed:
        rotate_data_key(laptop.vault, "correct horse battery stapel 42", transport=http._transport)
    assert "wrong recovery passphrase" in str(failed.value)
    assert "stapel" not in str(failed.value)
    assert _current(laptop) == before
    recovered = open_recovery(laptop.syncer.keys._call("GET", "/v1/keys/recovery")["blob"], PASSPHRASE)
    assert recovered.current == before
    phone.sync()
    assert _current(phone) == before


@ON_SQLITE
def test_a_keyring_written_from_a_stale_read_never_drops_a_key(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient],
) -> None:
    """A sync in another process reads the keyring, the rotation's prepare step adds its new key,
    then the sync writes what it merged from its stale read: the prepared key must survive
    (else the share wraps a keyring without it, and what others seal with it is lost here)."""
    from truthvault.crypto import Keyring

    laptop, _, _ = pair
    stale = laptop.vault.replica.keyring()
    assert stale is not None
    keys = {kid: k for kid in stale.kids if (k := stale.key(kid))}
    prepared = Keyring(keys, stale.current)
    new_kid = prepared.rotate()
    laptop.vault.replica.set_keyring(Keyring({**keys, new_kid: prepared.key(new_kid) or b""}, stale.current))
    laptop.vault.replica.set_keyring(stale)  # the other process's write, from before the prepare
    ring = laptop.vault.replica.keyring()
    assert ring is not None and new_kid in ring.kids and ring.current == stale.current


@ON_SQLITE
def test_a_share_the_hub_took_though_its_answer_was_lost_is_undone_too(
    pair: tuple[LocalFirstDevice, LocalFirstDevice, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that fails for good is not compensated, only those before it: a share whose every
    answer was lost (the hub took it; a network cut, or a hostile hub) would leave every device
    on the new key while the rotation says it was undone, and the recovery copy without it."""
    import json

    import httpx

    from truthvault.kernel import Retry
    from truthvault.sync import _rotation

    laptop, phone, http = pair
    before = _current(laptop)

    class LostAnswers(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = http._transport.handle_request(request)
            shared = request.method == "PUT" and request.url.path == "/v1/keys/wrapped"
            if shared and json.loads(request.read())["kid"] != before:  # the share's, not its undoing
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return response

    monkeypatch.setattr(_rotation, "_NETWORK", Retry(attempts=2, first_s=0))
    with pytest.raises(ConflictState, match="share step"):
        rotate_data_key(laptop.vault, PASSPHRASE, transport=LostAnswers())
    phone.sync()
    laptop.sync()
    assert _current(phone) == _current(laptop) == before
