"""What the hub's audit log checks of a device batch before it appends it, under the tenant's
head lock: its number is unused, and none of its entries is in the log already (a restored
vault's batch, or a device sending entries twice). See :meth:`~._audit.AuditLog.append_batch`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kernel import AuditBatchTaken
from ._sql import Db

__all__ = ["Grouped", "batch_taken"]

#: leaves one IN (...) query asks for at most
_IN_CHUNK = 200


@dataclass(slots=True)
class Grouped:
    """What the requests of one group before this one append: batch numbers and leaves."""

    seqs: dict[str, set[int]] = field(default_factory=dict)
    leaves: set[bytes] = field(default_factory=set)


def batch_taken(
    db: Db, pk: int, device: str, seq: int, leaves: list[bytes], grouped: Grouped
) -> AuditBatchTaken | None:
    """Why the log cannot take this device batch (its number is used, or it repeats an entry
    the log holds from a device batch), or None. Reads the batch's number (a key lookup) and
    its leaves in the index of device entries: a few queries a batch of up to 1,000, whatever
    the size of the log."""
    in_group = grouped.seqs.setdefault(device, set())
    taken = seq in in_group or (
        db.execute(
            "SELECT 1 FROM audit_batches WHERE tenant_pk = ? AND device_id = ? AND seq = ?",
            (pk, device, seq),
        ).fetchone()
        is not None
    )
    held_leaves = {leaf for leaf in leaves if leaf in grouped.leaves}
    for start in range(0, len(leaves), _IN_CHUNK):
        part = leaves[start : start + _IN_CHUNK]
        sql = (
            f"SELECT leaf FROM audit_entries WHERE tenant_pk = ? AND batch_seq IS NOT NULL "
            f"AND leaf IN ({','.join('?' * len(part))})"
        )
        held_leaves.update(bytes(r[0]) for r in db.execute(sql, (pk, *part)).fetchall())
    if not taken and not held_leaves:
        in_group.add(seq)
        grouped.leaves.update(leaves)
        return None
    held = [i for i, leaf in enumerate(leaves) if leaf in held_leaves]
    # the device's last number: read only for a refusal (min/max over the key is a seek)
    found = db.execute(
        "SELECT max(seq) FROM audit_batches WHERE tenant_pk = ? AND device_id = ?", (pk, device)
    ).fetchone()
    last = max(int(found[0] or 0), *in_group, 0)
    why = (
        f"audit batch {seq} of device {device} was already received with other entries"
        if taken
        else f"audit batch {seq} of device {device} repeats {len(held)} entries the log holds"
    )
    return AuditBatchTaken(
        why,
        next_seq=last + 1,
        held=held,
        hint="number the unsent batches from next_seq, leaving out the entries held, and send them again",
    )
