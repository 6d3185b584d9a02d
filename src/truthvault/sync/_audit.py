"""The audit step of a sync: send this device's entries as signed batches, then take the hub's
new checkpoint only if it is signed by the hub's key and extends the one this device kept.

A hub whose history was rewritten (or that signs with another key, or shrank its log) is
refused: :class:`~truthvault.kernel.AuditInconsistent` shows both roots, and nothing this
device keeps changes. ``proof`` and ``verify`` check an entry's inclusion and the whole log
(or what was appended since the last check) against a checkpoint accepted that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..crypto import DeviceKeys
from ..errors import NotFound
from ..kernel import (
    AuditBatchTaken,
    AuditInconsistent,
    AuditTampered,
    Checkpoint,
    DeviceBatch,
    Frontier,
    decode_entry,
    leaf_hash,
    sign_batch,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from ..model import MAX_INT64
from ..vault import Vault
from ._transport import HubClient

__all__ = ["AuditStep", "InclusionResult", "audit_step"]

_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)
#: entries a verification fetches a page
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class InclusionResult:
    """An entry, its inclusion proof and the checkpoint it was verified against."""

    index: int
    entry: dict[str, Any]
    proof: list[str]
    checkpoint: Checkpoint


class AuditStep:
    """This device's audit exchange with its hub (one vault, one client)."""

    def __init__(self, vault: Vault, client: HubClient, device_keys: DeviceKeys | None) -> None:
        self.vault = vault
        self.client = client
        self.device_keys = device_keys

    def _get(self, path: str, **params: int) -> Any:
        return self.client._request("GET", path, params=params).json()

    def upload(self) -> int:
        """Send the outbox as batches signed by this device; the entries sent.

        A batch the hub refuses as taken (a vault restored from a backup reuses numbers the hub
        holds, and may send again entries it had sent after the backup) is numbered again from
        the hub's next free number, without the entries the hub says it holds, and sent once
        more; refused again without dropping an entry, the error stands (and the outbox is kept
        for the next sync)."""
        if self.device_keys is None:
            return 0  # a device added by token has no key to sign with: its entries wait
        sent = 0
        tenant, device = self.vault.tenant_id, self.vault.device_id
        retried = False
        while True:
            seq = 0
            try:
                for seq, entries in self.vault.audit.seal(tenant, device):
                    self._send(sign_batch(self.device_keys.sign, tenant, device, seq, entries))
                    self.vault.audit.sent(seq)
                    sent += len(entries)
                    retried = False
                return sent
            except AuditBatchTaken as taken:
                if retried or not 0 < taken.next_seq < MAX_INT64:
                    raise
                # a refusal that drops entries the hub holds is progress (the outbox shrinks, so
                # this ends): the next batch may be refused too (packed otherwise than the hub's)
                retried = not self.vault.audit.renumber(seq, taken.next_seq, taken.held)

    def _send(self, batch: DeviceBatch) -> None:
        self.client._request(
            "POST", "/v1/audit/entries", content=msgspec.json.encode(batch),
            headers={"content-type": "application/json"},
        )  # fmt: skip

    def fetch_checkpoint(self) -> Checkpoint:
        """The hub's current checkpoint, checked against the one kept (not yet kept itself)."""
        kept = self.vault.audit.checkpoint()
        try:
            new = _checkpoint_decoder.decode(self.client._request("GET", "/v1/audit/checkpoint").content)
        except NotFound:
            if kept is None:
                raise
            raise AuditInconsistent(
                f"the hub no longer offers its audit log; this device kept root {kept.root} at size {kept.size}"
            ) from None
        self.check(kept, new)
        return new

    def check(self, kept: Checkpoint | None, new: Checkpoint) -> None:
        """Refuse ``new`` unless it is the hub's signed head of this tenant and extends ``kept``."""
        if new.tenant != self.vault.tenant_id or not verify_checkpoint(new):
            raise AuditInconsistent("the hub's audit checkpoint is not validly signed for this tenant")
        if kept is None:
            return
        both = f"kept root {kept.root} at size {kept.size}; the hub's root {new.root} at size {new.size}"
        if new.key != kept.key:
            raise AuditInconsistent(f"the hub signs its audit log with another key than before ({both})")
        if new.size < kept.size:
            raise AuditInconsistent(f"the hub's audit log shrank: {both}")
        proof = self._get("/v1/audit/consistency", first=kept.size, second=new.size)["proof"]
        path = [bytes.fromhex(h) for h in proof]
        if not verify_consistency(kept.size, new.size, kept.root_hash, new.root_hash, path):
            raise AuditInconsistent(f"the hub's audit log was rewritten: {both}")

    def sync(self) -> Checkpoint:
        """Upload, then accept the hub's new checkpoint (refusing one that is inconsistent)."""
        self.upload()
        new = self.fetch_checkpoint()
        self.vault.audit.keep(new)
        return new

    def proof(self, index: int) -> InclusionResult:
        """Entry ``index`` with its inclusion proof, verified here against an accepted checkpoint."""
        checkpoint = self.fetch_checkpoint()
        self.vault.audit.keep(checkpoint)
        if not 0 <= index < checkpoint.size:
            raise NotFound(f"no audit entry {index}: the log has {checkpoint.size}")
        got = self._get("/v1/audit/proof", index=index, size=checkpoint.size)
        entry = got["entry"].encode()
        path = [bytes.fromhex(h) for h in got["proof"]]
        if not verify_inclusion(leaf_hash(entry), index, checkpoint.size, path, checkpoint.root_hash):
            raise AuditTampered(f"the hub's proof for entry {index} does not verify", index=index)
        return InclusionResult(index, msgspec.to_builtins(decode_entry(entry)), got["proof"], checkpoint)

    def verify(self, full: bool = False) -> tuple[int, int, Checkpoint]:
        """Re-hash the log's entries from the hub up to an accepted checkpoint, from where this
        device last got to (or from 0 with ``full``): (entries checked, from, checkpoint)."""
        checkpoint = self.fetch_checkpoint()
        size, edge = (0, []) if full else self.vault.audit.verified()
        if size > checkpoint.size:
            size, edge = 0, []
        frontier = Frontier(size, edge)
        start = size
        while frontier.size < checkpoint.size:
            limit = min(_PAGE, checkpoint.size - frontier.size)
            page = self._get("/v1/audit/entries", **{"from": frontier.size, "limit": limit})["entries"]
            if not page:
                raise AuditTampered(f"the hub does not send entry {frontier.size}", index=frontier.size)
            for row in page:
                if row["index"] != frontier.size:
                    raise AuditTampered(
                        f"the hub sent entry {row['index']} for {frontier.size}", index=frontier.size
                    )
                frontier.append(leaf_hash(row["entry"].encode()))
        if frontier.root() != checkpoint.root_hash:
            raise AuditTampered(
                f"entries {start}..{checkpoint.size - 1} do not hash to the checkpoint's root {checkpoint.root}",
                index=start,
            )
        self.vault.audit.keep(checkpoint)
        self.vault.audit.note_verified(frontier.size, frontier.edge())
        return checkpoint.size - start, start, checkpoint


def audit_step(vault: Vault, client: HubClient, device_keys: DeviceKeys | None) -> Checkpoint | None:
    """The audit part of a sync (see :class:`AuditStep`): for an enrolled device, which signs;
    a device added by token keeps its entries until it is enrolled."""
    if device_keys is None:
        return None
    return AuditStep(vault, client, device_keys).sync()
