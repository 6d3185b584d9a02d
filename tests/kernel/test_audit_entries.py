"""Audit entries, device batches and checkpoints: canonical bytes, signatures that fail when
anything changes."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truthvault.crypto import DeviceKeys
from truthvault.errors import InvalidInput
from truthvault.kernel import Actor, AuditRecord, Target
from truthvault.kernel._audit import (
    Checkpoint,
    DeviceBatch,
    decode_entry,
    encode_record,
    sign_batch,
    sign_checkpoint,
    verify_batch,
    verify_checkpoint,
)
from truthvault.kernel._merkle import leaf_hash


def _record(**over: object) -> AuditRecord:
    fields: dict[str, object] = {
        "tenant_id": "t1",
        "action": "notes.create",
        "action_version": "1.0.0",
        "actor": Actor("user:voice", device_id="dev-a", tenant_id="t1"),
        "decision": "approved",
        "at": "2026-12-07T10:00:00.000Z",
        "input_hash": "ab" * 32,
        "targets": (Target("e1", "note", 3, 1), Target("e2", "task", 1)),
        "approved_by": "dev-b",
    }
    fields.update(over)
    return AuditRecord(**fields)  # type: ignore[arg-type]


def test_an_entry_names_actor_decision_and_targets_but_no_payload() -> None:
    data = encode_record(_record())
    entry = decode_entry(data)
    assert (entry.source, entry.device, entry.level) == ("user:voice", "dev-a", 1)
    assert entry.decision == "approved" and entry.approved_by == "dev-b"
    assert entry.targets == [("e1", 3), ("e2", 1)]
    assert b"task" not in data  # ids and versions only: not even the type
    assert data == encode_record(_record())


@settings(max_examples=50, deadline=None)
@given(
    st.text(max_size=20), st.text(max_size=20), st.lists(st.tuples(st.text(max_size=8), st.integers(0, 99)))
)
def test_encoding_is_deterministic_and_round_trips(
    action: str, reason: str, targets: list[tuple[str, int]]
) -> None:
    record = _record(action=action, reason=reason, targets=tuple(Target(i, "note", v) for i, v in targets))
    data = encode_record(record)
    assert data == encode_record(record)
    entry = decode_entry(data)
    assert entry.action == action and entry.reason == reason
    assert [tuple(t) for t in entry.targets] == targets


def test_a_non_canonical_or_foreign_entry_is_refused() -> None:
    data = encode_record(_record())
    with pytest.raises(InvalidInput, match="canonical"):
        decode_entry(data.replace(b'"v":1,', b'"v": 1,'))
    with pytest.raises(InvalidInput, match="not an audit entry"):
        decode_entry(b'{"v":1}')
    with pytest.raises(InvalidInput, match="not supported"):
        decode_entry(data.replace(b'"v":1,', b'"v":2,'))


def test_a_device_batch_verifies_and_any_change_fails() -> None:
    keys = DeviceKeys.generate()
    public = keys.public_bundle()["sign"]
    entries = [encode_record(_record(at=f"2026-12-07T10:00:0{i}.000Z")) for i in range(3)]
    batch = sign_batch(keys.sign, "t1", "dev-a", 1, entries)
    verify_batch(batch, public)
    assert batch.leaves() == [leaf_hash(e) for e in entries]
    wire = msgspec.json.decode(msgspec.json.encode(batch), type=DeviceBatch)
    verify_batch(wire, public)
    tampered = [
        msgspec.structs.replace(batch, entries=[batch.entries[0], batch.entries[2], batch.entries[1]]),
        msgspec.structs.replace(batch, entries=batch.entries[:2]),
        msgspec.structs.replace(batch, seq=2),
        msgspec.structs.replace(
            batch, entries=[batch.entries[0].replace('"approved"', '"allowed"'), *batch.entries[1:]]
        ),
    ]
    for bad in tampered:
        with pytest.raises(InvalidInput, match=r"bad signature|canonical"):
            verify_batch(bad, public)
    with pytest.raises(InvalidInput, match="bad signature"):
        verify_batch(batch, DeviceKeys.generate().public_bundle()["sign"])


def test_a_device_cannot_sign_entries_of_another_device() -> None:
    keys = DeviceKeys.generate()
    entry = encode_record(_record(actor=Actor("user:cli", device_id="dev-other", tenant_id="t1")))
    batch = sign_batch(keys.sign, "t1", "dev-a", 1, [entry])
    with pytest.raises(InvalidInput, match=r"entries\[0\]"):
        verify_batch(batch, keys.public_bundle()["sign"])


def test_a_checkpoint_verifies_only_unchanged_and_under_its_key() -> None:
    hub = DeviceKeys.generate()
    public = hub.public_bundle()["sign"]
    cp = sign_checkpoint(hub.sign, public, "t1", 10, b"\x07" * 32, "2026-12-07T10:00:00.000Z")
    assert verify_checkpoint(cp) and verify_checkpoint(cp, public)
    assert not verify_checkpoint(cp, DeviceKeys.generate().public_bundle()["sign"])
    for change in ({"size": 11}, {"root": "08" * 32}, {"tenant": "t2"}, {"at": "2026-12-07T10:00:01.000Z"}):
        assert not verify_checkpoint(msgspec.structs.replace(cp, **change))
    assert not verify_checkpoint(msgspec.structs.replace(cp, signature="!!"))
    assert Checkpoint("t1", 0, "", "").key == ""
