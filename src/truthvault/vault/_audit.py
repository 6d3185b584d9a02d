"""The device's side of the audit log: an outbox of the entries of actions run here, sealed
into numbered batches for this device to sign, and the hub checkpoint it last accepted.

:class:`DeviceAudit` is the kernel's :class:`~truthvault.kernel.AuditSink` on a device:
``append`` writes one row in the vault's current transaction (the action's own), so an entry
exists exactly when its action committed, and costs the action a few microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..kernel import AuditRecord, Checkpoint, decode_entry, encode_record
from ._db import VaultDB

__all__ = ["BATCH_ENTRIES", "DeviceAudit"]

#: entries one signed batch holds at most
BATCH_ENTRIES = 1000

_encoder = msgspec.json.Encoder()
_APPEND = "INSERT INTO audit_outbox (entry) VALUES (?)"
_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)


class DeviceAudit:
    """The audit outbox and kept checkpoint of one vault."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db

    def append(self, record: AuditRecord) -> None:
        """Keep an action's entry until it reaches the hub (inside the current transaction)."""
        entry = encode_record(record)
        db = self._db
        if db.in_tx():  # the action's transaction, as the dispatcher calls it
            db.conn.execute(_APPEND, (entry,))
            return
        with db.tx() as conn:
            conn.execute(_APPEND, (entry,))

    def pending(self) -> int:
        """Entries not yet at the hub."""
        with self._db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM audit_outbox").fetchone()[0])

    def seal(self, tenant_id: str, device_id: str) -> list[tuple[int, list[bytes]]]:
        """Number the unsealed entries into batches and return every batch not yet sent, as
        (seq, entries). Entries written before this device joined its hub take its ids now."""
        db = self._db
        with db.tx() as conn:
            # batches sealed under other ids (the device enrolled again since) are sealed anew
            sealed_before = conn.execute("SELECT id, entry FROM audit_outbox WHERE batch_seq IS NOT NULL")
            for row_id, data in sealed_before.fetchall():
                entry = decode_entry(bytes(data))
                if (entry.tenant, entry.device) != (tenant_id, device_id):
                    conn.execute("UPDATE audit_outbox SET batch_seq = NULL WHERE id = ?", (row_id,))
            rows = conn.execute(
                "SELECT id, entry FROM audit_outbox WHERE batch_seq IS NULL ORDER BY id"
            ).fetchall()
            seq = int(conn.execute("SELECT next_seq FROM audit_state WHERE id = 1").fetchone()[0])
            for start in range(0, len(rows), BATCH_ENTRIES):
                for row_id, data in rows[start : start + BATCH_ENTRIES]:
                    entry = decode_entry(bytes(data))
                    if (entry.tenant, entry.device) != (tenant_id, device_id):
                        data = _encoder.encode(
                            msgspec.structs.replace(entry, tenant=tenant_id, device=device_id)
                        )
                    conn.execute(
                        "UPDATE audit_outbox SET batch_seq = ?, entry = ? WHERE id = ?", (seq, data, row_id)
                    )
                seq += 1
            conn.execute("UPDATE audit_state SET next_seq = ? WHERE id = 1", (seq,))
            sealed = conn.execute(
                "SELECT batch_seq, entry FROM audit_outbox WHERE batch_seq IS NOT NULL ORDER BY batch_seq, id"
            ).fetchall()
        batches: dict[int, list[bytes]] = {}
        for batch_seq, data in sealed:
            batches.setdefault(int(batch_seq), []).append(bytes(data))
        return sorted(batches.items())

    def renumber(self, seq: int, next_seq: int, held: Sequence[int] = ()) -> int:
        """The hub refused batch ``seq`` (:class:`~truthvault.kernel.AuditBatchTaken`: a vault
        restored from a backup numbers its batches as it did before): the entries at positions
        ``held`` of it are at the hub already and leave the outbox, and every batch not yet sent
        is numbered again from ``next_seq`` at the next :meth:`seal`. How many entries left."""
        with self._db.tx() as conn:
            ids = [int(r[0]) for r in conn.execute(
                "SELECT id FROM audit_outbox WHERE batch_seq = ? ORDER BY id", (seq,)
            )]  # fmt: skip
            gone = sorted({ids[i] for i in held if 0 <= i < len(ids)})
            conn.executemany("DELETE FROM audit_outbox WHERE id = ?", [(i,) for i in gone])
            conn.execute("UPDATE audit_outbox SET batch_seq = NULL WHERE batch_seq IS NOT NULL")
            conn.execute("UPDATE audit_state SET next_seq = ? WHERE id = 1", (next_seq,))
        return len(gone)

    def sent(self, seq: int) -> None:
        """The hub has batch ``seq``: its entries leave the outbox."""
        with self._db.tx() as conn:
            conn.execute("DELETE FROM audit_outbox WHERE batch_seq = ?", (seq,))

    def checkpoint(self) -> Checkpoint | None:
        """The last hub checkpoint this device accepted."""
        with self._db.read() as conn:
            row = conn.execute("SELECT checkpoint FROM audit_state WHERE id = 1").fetchone()
        return None if row is None or row[0] is None else _checkpoint_decoder.decode(row[0])

    def keep(self, checkpoint: Checkpoint) -> None:
        """Accept ``checkpoint`` (after checking it extends the one kept)."""
        with self._db.tx() as conn:
            conn.execute(
                "UPDATE audit_state SET checkpoint = ? WHERE id = 1", (_encoder.encode(checkpoint).decode(),)
            )

    def verified(self) -> tuple[int, list[bytes]]:
        """(size, right edge) of the log as far as this device re-hashed it itself."""
        with self._db.read() as conn:
            size, edge = conn.execute(
                "SELECT verified_size, verified_edge FROM audit_state WHERE id = 1"
            ).fetchone()
        edge = bytes(edge)
        return int(size), [edge[i : i + 32] for i in range(0, len(edge), 32)]

    def note_verified(self, size: int, edge: list[bytes]) -> None:
        with self._db.tx() as conn:
            conn.execute(
                "UPDATE audit_state SET verified_size = ?, verified_edge = ? WHERE id = 1",
                (size, b"".join(edge)),
            )
