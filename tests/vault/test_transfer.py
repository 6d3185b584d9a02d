"""JSON Lines export and import: round trips, validation, conflicts, chunking."""

from __future__ import annotations

import io
import sqlite3
import time
from collections.abc import Callable

import msgspec
import pytest

from truthvault.clock import format_stamp
from truthvault.errors import InvalidInput, InvalidSource, TruthvaultError
from truthvault.kernel import ValidationFailed
from truthvault.model import SyncItem
from truthvault.truth import Outcome
from truthvault.vault import Vault, _transfer, payload_of

from .conftest import deliver

AI = "ai-local:llama3"


def _fill(v: Vault) -> None:
    v.put("note", {"title": "plain", "tags": ["a", "b"]})
    ai = v.put("task", {"todo": "ai draft"}, source=AI).item
    v.edit(ai.entity_id, {"todo": "mine now"})  # U1, accepted, with an origin chain
    gone = v.put("note", {"t": "bye"}).item
    v.delete(gone.entity_id)
    accepted = v.put("note", {"t": "accepted"}, source="ai-cloud:x/y").item
    v.upgrade_truth(accepted.entity_id)


def _all(v: Vault) -> list[SyncItem]:
    return sorted(v.list(include_deleted=True, limit=1000), key=lambda i: i.entity_id)


def test_round_trip_keeps_every_truth_field(make_vault: Callable[[str], Vault]) -> None:
    src, dst = make_vault("src"), make_vault("dst")
    _fill(src)
    buf = io.BytesIO()
    assert src.export_jsonl(buf) == 4
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4 and all(line.startswith(b"{") for line in lines)
    buf.seek(0)
    assert dst.import_jsonl(buf) == 4
    assert _all(dst) == _all(src)
    assert dst.replica.checksum() == src.replica.checksum()
    assert [i.entity_id for i in dst.search("mine")] == [i.entity_id for i in src.search("mine")]
    assert dst.replica.pending_count() == 4  # queued for push by default


def test_export_can_skip_tombstones_and_write_text(make_vault: Callable[[str], Vault]) -> None:
    src = make_vault("src")
    _fill(src)
    text = io.StringIO()
    assert src.export_jsonl(text, include_deleted=False) == 3
    assert all(
        not msgspec.json.decode(line)["deleted"] if "deleted" in line else True
        for line in text.getvalue().splitlines()
    )
    dst = make_vault("dst")
    text.seek(0)
    assert dst.import_jsonl(text, queue_for_push=False) == 3
    assert dst.count() == 3 and dst.replica.pending_batch() is None


def _line(**changes: object) -> bytes:
    base: dict[str, object] = {
        "entity_type": "note",
        "entity_id": "n1",
        "tenant_id": "someone-else",
        "truth_level": 1,
        "origin_source": "user:cli",
        "last_modified_at": "2026-01-01T00:00:00.000Z-0000",
        "device_id": "d1",
        "payload": {"t": "hello"},
    }
    base.update(changes)
    return msgspec.json.encode({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b"not json", "line 3: not a valid JSON object"),
        (_line(truth_level="high"), "line 3: truth_level: Expected `int`, got `str`"),
        (_line(truth_level=9), "line 3: truth_level"),
        (_line(entity_id=None), "line 3: "),
        (_line(last_modified_at="yesterday"), "line 3: last_modified_at"),
        (_line(payload=[1]), "line 3: payload: must be a JSON object"),
        (_line(entity_type="Bad Type"), "line 3: entity_type"),
        (_line(last_modified_at="2099-01-01T00:00:00.000Z-0000"), "line 3: last_modified_at: 2099"),
        (_line(payload=msgspec.json.decode(b'{"a":' * 80 + b"1" + b"}" * 80)), "line 3: payload: nested"),
        # what the hub would refuse at every push, so a device's queue would jam on it (issue 9)
        (_line(last_modified_at="2026-11-32T00:00:00.000Z-0000"), "line 3: last_modified_at"),
        (_line(base_clock="2026-02-30T00:00:00.000Z-0000"), "line 3: base_clock"),
        (_line(device_id="d\u0000x"), "line 3: device_id: text must not contain NUL"),
        (
            _line(origin_chain=[{"level": 1, "source": "user:cli", "at": "x\u0000"}]),
            "line 3: origin_chain[0].at: text must not contain NUL",
        ),
        (_line(payload={"t": "x" * (1 << 21)}), "line 3: payload: 2097160 bytes is over the limit"),
        (_line(version=2**63 - 1), "line 3: version: Expected `int` <= 9007199254740991"),
        (_line().replace(b'"hello"', b"1e99999"), "line 3: payload: Number out of range"),
        (_line().replace(b'"hello"', b"99999999999999999999"), "line 3: payload: the integer"),
        (_line().replace(b"hello", b"\xff\xfe"), "line 3: payload: not valid JSON text (invalid UTF-8"),
        (_line().replace(b"hello", b"\\ud800"), "line 3: not a valid JSON object (half of a surrogate"),
        (
            _line().replace(b'"hello"', b"[" * 1000 + b"]" * 1000),
            "line 3: nested deeper than a reader can take",
        ),
        (_line(truth_level=3, origin_source=AI, accepted_by_user=True), "line 3: accepted_by_user"),
    ],
)
def test_bad_line_imports_nothing(vault: Vault, bad: bytes, message: str) -> None:
    vault.put("note", {"t": "existing"})
    good = [_line(entity_id="ok1"), _line(entity_id="ok2")]
    data = b"\n".join([*good, bad]) + b"\n"
    with pytest.raises(TruthvaultError) as info:
        vault.import_jsonl(io.BytesIO(data))
    assert message in str(info.value)
    assert vault.count() == 1 and vault.search("hello") == []


def test_bad_source_names_the_field(vault: Vault) -> None:
    data = _line(origin_source="automation:r1") + b"\n"  # level 1 but an automation source
    # the import is a governed action: its refusal is the kernel's, the vault's code its cause
    with pytest.raises(ValidationFailed, match="line 1: origin_source") as refused:
        vault.import_jsonl(io.BytesIO(data))
    assert refused.value.cause == InvalidSource.code


def test_import_takes_this_vaults_tenant_and_upgrade_rule(vault: Vault) -> None:
    # accepted on another app by the user, whose acceptance is the chain's last step
    user = {"level": 1, "source": "user:mobile", "at": "2026-01-01T00:00:00.000Z-0000"}
    data = _line(truth_level=3, origin_source=AI, accepted_by_user=True, origin_chain=[user]) + b"\n\n"
    assert vault.import_jsonl(io.BytesIO(data)) == 1
    item = vault.get("n1")
    assert item.tenant_id == "local"
    assert (item.truth_level, item.origin_source) == (1, "user:accepted")
    assert [s.source for s in item.origin_chain] == ["user:mobile", AI]


def test_import_resolves_existing_ids_by_the_truth_rule(vault: Vault) -> None:
    mine = vault.put("note", {"t": "mine"}, entity_id="n1").item
    later = format_stamp(time.time_ns() // 1_000_000 + 60_000)  # ahead, within the skew allowed
    lower = _line(truth_level=5, origin_source="ai-cloud:x/y", last_modified_at=later)
    assert vault.import_jsonl(io.BytesIO(lower + b"\n")) == 1
    assert vault.get("n1") == mine  # U1 is never replaced by a lower level
    [sug] = vault.suggestions()
    assert payload_of(sug.item) == {"t": "hello"}
    newer = _line(payload={"t": "restored"}, last_modified_at=later)
    vault.import_jsonl(io.BytesIO(newer + b"\n"))
    assert payload_of(vault.get("n1")) == {"t": "restored"}
    [conflict] = vault.conflicts()  # the replaced U1 version is kept
    assert payload_of(conflict.item) == {"t": "mine"}


def test_repeated_ids_within_a_file_resolve_in_order(vault: Vault) -> None:
    old = _line(payload={"v": 1}, last_modified_at="2026-01-01T00:00:00.000Z-0000")
    new = _line(payload={"v": 2}, last_modified_at="2026-01-02T00:00:00.000Z-0000")
    assert vault.import_jsonl(io.BytesIO(new + b"\n" + old + b"\n")) == 2
    assert payload_of(vault.get("n1")) == {"v": 2}
    assert vault.count() == 1
    assert vault.search("note")[0].entity_id == "n1"


def test_chunked_import_with_deferred_indexes(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transfer, "IMPORT_CHUNK", 7)
    seen: list[int] = []
    lines = [
        _line(
            entity_id=f"e{n:03d}",
            payload={"t": f"word{n}"},
            last_modified_at=f"2026-01-01T00:00:{n % 60:02d}.000Z-{n:04x}",
        )
        for n in range(40)
    ]
    lines.append(lines[3])  # a repeat in a later chunk: duplicate, no record
    assert vault.import_jsonl(io.BytesIO(b"\n".join(lines)), progress=seen.append) == 41
    assert seen == [7, 14, 21, 28, 35, 41]
    assert vault.count() == 40 and vault.records(status=None) == []
    assert [i.entity_id for i in vault.search("word17")] == ["e017"]
    indexes = {r[0] for r in vault._db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"entities_recent", "entities_type_recent", "entities_queued"} <= indexes
    batch = vault.replica.pending_batch(limit=100)
    assert batch is not None
    mutations = [i.mutation or 0 for i in batch.items]
    assert mutations == sorted(mutations) and len(set(mutations)) == 40


def test_failed_chunked_import_restores_indexes(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transfer, "IMPORT_CHUNK", 2)
    lines = [_line(entity_id=f"e{n}") for n in range(6)] + [b"{broken"]
    with pytest.raises(InvalidInput, match="line 7"):
        vault.import_jsonl(io.BytesIO(b"\n".join(lines)))
    assert vault.count() == 0
    conn = sqlite3.connect(vault.path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "entities_recent" in names


def test_import_then_sync_round_trip(make_vault: Callable[[str], Vault]) -> None:
    src, dst, peer = make_vault("src"), make_vault("dst"), make_vault("peer")
    _fill(src)
    buf = io.BytesIO()
    src.export_jsonl(buf)
    buf.seek(0)
    dst.import_jsonl(buf)
    deliver(dst, peer)
    assert peer.replica.checksum() == src.replica.checksum()


def test_an_imported_clock_moves_this_vaults_clock_past_it(vault: Vault) -> None:
    # A version stamped a few minutes ahead (another device's fast clock, within the skew
    # allowed) must not win the edits made here afterwards.
    ahead = format_stamp(time.time_ns() // 1_000_000 + 5 * 60_000)
    vault.import_jsonl(io.BytesIO(_line(entity_id="skew-1", last_modified_at=ahead) + b"\n"))
    result = vault.edit("skew-1", {"t": "my new text"})
    assert result.outcome is Outcome.APPLIED and result.item.last_modified_at > ahead
    assert payload_of(vault.get("skew-1")) == {"t": "my new text"}
    assert vault.conflicts() == []
