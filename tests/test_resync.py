"""A device offline longer than the tombstone retention cannot bring deleted entities back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from truthvault.hub._contract_routes import ContractUseBody
from truthvault.hub.store import HubStore, Limits, open_store
from truthvault.model import PullResponse, PushRequest, PushResponse
from truthvault.sync import Syncer
from truthvault.vault import Vault


class StoreClient:
    """The sync client's view of a hub, straight onto a store."""

    def __init__(self, store: HubStore, token: str) -> None:
        self.store, self.ctx = store, store.authenticate(token)

    def push(self, batch: PushRequest) -> PushResponse:
        return self.store.push(self.ctx, batch, Limits(), time.time_ns() // 1_000_000)

    def pull(
        self,
        since: int,
        limit: int = 1000,
        wait: float = 0,
        tag: str | None = None,
        refused: object = None,
        tag_seq: int | None = None,
    ) -> PullResponse:
        return self.store.pull(self.ctx, since, limit, tag, tag_seq)

    def contracts(self, since: int = 0) -> dict[str, Any]:
        found = self.store.contracts.list(self.ctx.tenant_id, since)
        return {
            "contracts": [{"marker": m, **c.to_dict()} for m, c in found],
            "marker": max([m for m, _ in found], default=since),
        }

    def add_contract(self, entity_type: str, schema: Any, *, major: bool, source: str) -> dict[str, Any]:
        marker, contract = self.store.contracts.add(self.ctx, entity_type, schema, major=major, source=source)
        return {"marker": marker, **contract.to_dict()}

    def report_contract_use(
        self, held: dict[str, list[int]], status: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # as the hub's route takes it (ContractUseBody.status)
        body = ContractUseBody.model_validate({"held": held, **(status or {})})
        return {"noted": self.store.contracts.report(self.ctx, held, body.status())}


def join_store(vault: Vault, store: HubStore, token: str) -> Syncer:
    """Join ``vault`` to the store's tenant "t" as the device ``token`` names; its Syncer."""
    client = StoreClient(store, token)
    tenant = store.get_tenant("t")
    vault.replica.join(
        hub_url="store://",
        token=token,
        tenant_id=tenant.id,
        tenant_name="t",
        device_id=client.ctx.device_id,
        vault_mode=tenant.vault_mode,
    )
    return Syncer(vault, client)  # type: ignore[arg-type]


def _device(store: HubStore, tmp_path: Path, name: str) -> tuple[Vault, Syncer]:
    _, token = store.add_device("t", name)
    vault = Vault.open(tmp_path / name, source="user:cli")
    return vault, join_store(vault, store, token)


def test_offline_device_resyncs_and_deleted_stays_deleted(hub_url: str, tmp_path: Path) -> None:
    store = open_store(hub_url)
    store.add_tenant("t", "cloud_first")
    laptop, laptop_sync = _device(store, tmp_path, "laptop")
    phone, phone_sync = _device(store, tmp_path, "phone")
    try:
        doomed = laptop.put("note", {"text": "delete me"}).item.entity_id
        kept = laptop.put("note", {"text": "keep me"}).item.entity_id
        laptop_sync.sync()
        phone_sync.sync()
        assert phone.get(doomed).entity_id == doomed

        # the phone goes offline; the laptop deletes, and the hub purges the tombstone
        laptop.delete(doomed)
        laptop_sync.sync()
        assert store.purge_tombstones(int(time.time() * 1000) + 60_000) == 1

        # offline, the user edits the deleted note on the phone, and writes something new
        phone.edit(doomed, {"text": "edited while offline"})
        fresh = phone.put("note", {"text": "written offline"}).item.entity_id
        stats = phone_sync.sync()

        assert stats.resynced
        hub_ids = {i.entity_id for i in store.pull(laptop_sync.client.ctx, 0, 100).items}  # type: ignore[attr-defined]
        assert doomed not in hub_ids and {kept, fresh} <= hub_ids
        assert [i.entity_id for i in phone.list(include_deleted=True) if i.entity_id == doomed] == []
        # nothing is lost: the offline edit waits as a conflict record on the phone
        (record,) = phone.conflicts(entity_id=doomed)
        assert "edited while offline" in bytes(record.item.payload).decode()
        laptop_sync.sync()
        assert phone_sync.check().in_sync and laptop_sync.check().in_sync
        assert phone.replica.checksum() == laptop.replica.checksum()
    finally:
        laptop.close()
        phone.close()
        store.close()
