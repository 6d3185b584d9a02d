"""The audit log's entries, device batches and hub checkpoints, and how each is verified.

An entry is the canonical encoding of an :class:`~._ports.AuditRecord`: msgspec JSON of
:class:`AuditEntry`, its fields in their declared order, compact, UTF-8. It holds the action and
its contract version, the actor (source/channel, device, truth level), the decision, who
approved it, the reason, the targets as entity id and version only (never a payload), the time
and the SHA-256 of the input. The log's leaf for an entry is ``leaf_hash(entry bytes)``.

Entries written on a device travel as a :class:`DeviceBatch`: one Ed25519 signature of the
device over the leaf hashes of the batch, so a device pays a few microseconds per action (the
encoding) and one signature per sync, and the hub, which keeps the signature beside the
entries, cannot forge a device's entry. The hub signs :class:`Checkpoint` s (tenant, tree size,
root hash, time) with a key of its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence

import msgspec

from ..errors import ConflictState, InvalidInput, TruthvaultError
from ._merkle import leaf_hash
from ._ports import AuditRecord

__all__ = [
    "ENTRY_FORMAT",
    "AuditBatchTaken",
    "AuditEntry",
    "AuditInconsistent",
    "AuditTampered",
    "Checkpoint",
    "DeviceBatch",
    "batch_message",
    "checkpoint_message",
    "decode_entry",
    "encode_record",
    "sign_batch",
    "sign_checkpoint",
    "verify_batch",
    "verify_checkpoint",
]

ENTRY_FORMAT = 1
_BATCH_DOMAIN = b"truthvault audit batch v1\n"
_CHECKPOINT_DOMAIN = b"truthvault audit checkpoint v1\n"

#: anything that signs bytes with Ed25519 (a DeviceKeys, the hub's checkpoint key)
Signer = Callable[[bytes], bytes]


class AuditTampered(TruthvaultError):
    """A stored log does not verify: ``index`` is the first entry that is wrong (missing,
    changed or out of place), or None when only the head or a checkpoint disagrees."""

    code = "audit_tampered"
    status = 409

    def __init__(self, message: str, *, index: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.index = index


class AuditInconsistent(TruthvaultError):
    """The hub's new checkpoint does not extend the one this device kept: its history was
    rewritten (or it signs with another key). Nothing was stored."""

    code = "audit_inconsistent"
    status = 409


class AuditBatchTaken(ConflictState):
    """The hub refused a device's batch and stored nothing of it: it holds that batch number
    of the device already, with other entries (a vault restored from a backup numbers its
    batches as it did before), or already holds some of the batch's entries (sent under another
    number). ``next_seq`` is the first number free for the device, ``held`` the positions in
    the batch of the entries the hub holds. Entries the hub stored are never changed."""

    code = "audit_batch_taken"
    status = 409

    def __init__(
        self, message: str, *, next_seq: int = 0, held: Sequence[int] = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.next_seq = next_seq
        self.held = tuple(held)

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "next_seq": self.next_seq, "held": list(self.held)}


class AuditEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One entry of the log, as it is encoded (field order is the canonical order)."""

    v: int
    tenant: str
    action: str
    action_version: str
    source: str
    device: str
    level: int
    decision: str
    at: str
    input_hash: str
    #: (entity id, version) of each target
    targets: list[tuple[str, int]]
    approved_by: str | None = None
    reason: str | None = None


_encoder = msgspec.json.Encoder()
_entry_decoder = msgspec.json.Decoder(AuditEntry)


def encode_record(record: AuditRecord) -> bytes:
    """The canonical bytes of ``record``: deterministic, and free of payloads."""
    actor = record.actor
    return _encoder.encode(
        AuditEntry(
            ENTRY_FORMAT,
            record.tenant_id,
            record.action,
            record.action_version,
            actor.source,
            actor.device_id,
            int(actor.level),
            record.decision,
            record.at,
            record.input_hash,
            [(t.entity_id, t.version) for t in record.targets],
            record.approved_by,
            record.reason,
        )
    )


def decode_entry(data: bytes) -> AuditEntry:
    """The entry in ``data``; InvalidInput unless ``data`` is exactly its canonical encoding."""
    try:
        entry = _entry_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"not an audit entry: {exc}") from None
    if entry.v != ENTRY_FORMAT:
        raise InvalidInput(f"audit entry format {entry.v} is not supported")
    if _encoder.encode(entry) != data:
        raise InvalidInput("audit entry is not in canonical form")
    return entry


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise InvalidInput("not unpadded base64url") from None


def _verify(public_b64: str, signature_b64: str, message: bytes) -> bool:
    # cryptography loads only when a signature is checked: opening a vault needs none
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(_b64d(public_b64))
        key.verify(_b64d(signature_b64), message)
    except (InvalidSignature, InvalidInput, ValueError):
        return False
    return True


# -- device batches ------------------------------------------------------------------------
class DeviceBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Entries written on one device, signed together by its Ed25519 key. ``seq`` numbers a
    device's batches from 1, so the hub appends a batch once however often it is sent."""

    tenant: str
    device: str
    seq: int
    #: each entry's canonical bytes, as text (they are UTF-8 JSON)
    entries: list[str]
    signature: str = ""

    def leaves(self) -> list[bytes]:
        return [leaf_hash(e.encode()) for e in self.entries]


def batch_message(tenant: str, device: str, seq: int, leaves: Sequence[bytes]) -> bytes:
    """What a device signs: the batch's identity and the hash of its entries' leaf hashes."""
    digest = hashlib.sha256(b"".join(leaves)).digest()
    return _BATCH_DOMAIN + f"{tenant}\n{device}\n{seq}\n{len(leaves)}\n".encode() + digest


def sign_batch(sign: Signer, tenant: str, device: str, seq: int, entries: Sequence[bytes]) -> DeviceBatch:
    """Sign ``entries`` (canonical entry bytes) as batch ``seq`` of ``device``."""
    leaves = [leaf_hash(e) for e in entries]
    signature = sign(batch_message(tenant, device, seq, leaves))
    return DeviceBatch(tenant, device, seq, [e.decode() for e in entries], _b64e(signature))


def verify_batch(batch: DeviceBatch, public_sign_b64: str) -> None:
    """Check a device batch: every entry canonical, of the batch's tenant and device, and the
    signature the device's. Raises InvalidInput naming what is wrong."""
    if batch.seq < 1 or not batch.entries:
        raise InvalidInput("an audit batch needs seq >= 1 and at least one entry")
    first: dict[str, int] = {}
    for i, text in enumerate(batch.entries):
        entry = decode_entry(text.encode())
        if entry.tenant != batch.tenant or entry.device != batch.device:
            raise InvalidInput(f"entries[{i}]: written by {entry.device!r}, not by the batch's device")
        if first.setdefault(text, i) != i:
            raise InvalidInput(f"entries[{i}]: the same entry as entries[{first[text]}]")
    message = batch_message(batch.tenant, batch.device, batch.seq, batch.leaves())
    if not _verify(public_sign_b64, batch.signature, message):
        raise InvalidInput(f"audit batch {batch.seq} of device {batch.device}: bad signature")


# -- checkpoints ---------------------------------------------------------------------------
class Checkpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A signed tree head: the log of ``tenant`` had ``size`` entries with root ``root`` (hex)
    at ``at``; ``key`` is the hub's public checkpoint key (base64url)."""

    tenant: str
    size: int
    root: str
    at: str
    key: str = ""
    signature: str = ""

    @property
    def root_hash(self) -> bytes:
        return bytes.fromhex(self.root)


def checkpoint_message(tenant: str, size: int, root_hex: str, at: str) -> bytes:
    return _CHECKPOINT_DOMAIN + f"{tenant}\n{size}\n{root_hex}\n{at}".encode()


def sign_checkpoint(
    sign: Signer, public_b64: str, tenant: str, size: int, root: bytes, at: str
) -> Checkpoint:
    """A checkpoint of ``tenant``'s log signed by the hub's key."""
    signature = sign(checkpoint_message(tenant, size, root.hex(), at))
    return Checkpoint(tenant, size, root.hex(), at, public_b64, _b64e(signature))


def verify_checkpoint(checkpoint: Checkpoint, public_b64: str | None = None) -> bool:
    """Is ``checkpoint`` signed by ``public_b64`` (by default the key it names)?"""
    key = public_b64 or checkpoint.key
    message = checkpoint_message(checkpoint.tenant, checkpoint.size, checkpoint.root, checkpoint.at)
    return bool(key) and _verify(key, checkpoint.signature, message)
