"""Encrypted backups: what goes in comes out, a changed, cut, reordered or foreign backup does
not open, the key is kept private, and the schedule makes one backup a time, keeping the
newest few, as a durable workflow."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from truthvault.errors import DecryptionFailed, InsecureKeyFile
from truthvault.kernel import WorkflowEngine
from truthvault.vault import Vault, _backup, vault_engine
from truthvault.vault._backup import backup_key, open_backup, schedule_of, set_schedule, write_backup

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.open(tmp_path / "v", source="user:cli") as v:
        for i in range(40):
            v.put("note", {"text": f"note {i} " + "x" * (i * 7)})
        v.delete(v.list("note")[0].entity_id)
        yield v


def _export(vault: Vault) -> bytes:
    buf = io.BytesIO()
    vault.export_jsonl(buf)
    return buf.getvalue()


@pytest.fixture(params=[100, 1 << 20], ids=["small-chunks", "one-chunk"])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(_backup, "_CHUNK", request.param)
    return int(request.param)


def test_a_backup_holds_the_vaults_export_and_reimports(vault: Vault, tmp_path: Path, chunk: int) -> None:
    made = write_backup(vault, tmp_path / "b", "truthvault-20261207T000000Z.tvbak")
    assert made.stat().st_mode & 0o777 == 0o600
    assert b"note 1" not in made.read_bytes()  # sealed
    out = io.BytesIO()
    open_backup(made, backup_key(vault), out)
    assert out.getvalue() == _export(vault)
    with Vault.open(tmp_path / "restored", source="user:cli") as other:
        other.import_jsonl(io.BytesIO(out.getvalue()))
        assert sorted(i.entity_id for i in other.list(include_deleted=True, limit=None)) == sorted(
            i.entity_id for i in vault.list(include_deleted=True, limit=None)
        )
    assert write_backup(vault, tmp_path / "b", made.name) == made  # there already: kept as it is


def _chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    head, rest, parts = data[:26], data[26:], []
    while rest:
        size = int.from_bytes(rest[:4], "big")
        parts.append(rest[: 4 + size])
        rest = rest[4 + size :]
    return head, parts


def test_a_changed_cut_reordered_or_foreign_backup_does_not_open(
    vault: Vault, tmp_path: Path, chunk: int
) -> None:
    made = write_backup(vault, tmp_path / "b", "truthvault-20261207T000000Z.tvbak")
    data = made.read_bytes()
    head, parts = _chunks(data)
    key = backup_key(vault)
    bad = tmp_path / "bad.tvbak"
    cases = {"flipped": data[:-5] + bytes([data[-5] ^ 1]) + data[-4:], "cut mid-chunk": data[:-3]}
    if len(parts) > 1:
        cases["last chunk dropped"] = head + b"".join(parts[:-1])
        cases["reordered"] = head + parts[1] + parts[0] + b"".join(parts[2:])
    for name, changed in cases.items():
        bad.write_bytes(changed)
        with pytest.raises(DecryptionFailed):
            open_backup(bad, key, io.BytesIO())
        assert name
    with pytest.raises(DecryptionFailed):
        open_backup(made, b"\x01" * 32, io.BytesIO())
    assert chunk == 1 << 20 or len(parts) > 2  # small chunks: the cases above included reordering


def test_a_chunk_length_changed_to_huge_is_refused_before_it_is_read(vault: Vault, tmp_path: Path) -> None:
    made = write_backup(vault, tmp_path / "b", "truthvault-20261207T000000Z.tvbak")
    head, parts = _chunks(made.read_bytes())
    made.write_bytes(head + (0xFFFFFFF0).to_bytes(4, "big") + parts[0][4:] + b"".join(parts[1:]))
    out = io.BytesIO()
    with pytest.raises(DecryptionFailed, match="more than a chunk holds"):
        open_backup(made, backup_key(vault), out)
    assert out.getvalue() == b""


def test_a_backup_key_others_may_read_is_refused(vault: Vault, tmp_path: Path) -> None:
    write_backup(vault, tmp_path / "b", "truthvault-20261207T000000Z.tvbak")
    (vault.home / "backup.key").chmod(0o644)
    with pytest.raises(InsecureKeyFile):
        backup_key(vault)


@pytest.fixture
def engine(vault: Vault) -> Iterator[WorkflowEngine]:
    with vault_engine(vault) as running:
        yield running


def test_the_schedule_makes_one_backup_a_time_and_keeps_the_newest(
    vault: Vault, engine: WorkflowEngine, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    set_schedule(vault, {"to": str(folder), "every": "1d", "keep": 2})
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)  # no midnight by accident
    assert vault.automations.run_pending(engine, now) == []  # counts from now
    made = []
    for day in (1, 2, 5):
        [wid] = vault.automations.run_pending(engine, now + timedelta(days=day, minutes=1))
        outcome = engine.result(wid)
        assert outcome["status"] == "completed", outcome
        made.append(Path(outcome["results"]["export"]["file"]).name)
        assert vault.automations.run_pending(engine, now + timedelta(days=day, minutes=2)) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(made[-2:])  # the newest two kept
    assert schedule_of(vault)["keep"] == 2  # type: ignore[index]
    set_schedule(vault, None)
    assert vault.automations.run_pending(engine, now + timedelta(days=9)) == []
