"""The hub store both backends share: a facade that satisfies :class:`~.store.HubStore` by
handing each call to the part that owns it, all composed over one database object.

- :class:`~._tenants.Tenants`: tenants, devices, and reading a tenant's head, events, records;
- :class:`~._auth.Credentials`: enrolment, authentication, nonces, tokens, security events;
- :class:`~._keys.KeyBlobs`: wrapped keyrings and the recovery envelope;
- :class:`~._policy.HubPolicies`: tenant policies, versioned, and a policy engine per tenant;
- :class:`~._contracts.HubContracts`: entity contract versions, their use, the push's screen;
- :class:`~._engine.SyncEngine`: push, pull, conflict resolution and purges, over the storage
  port (:mod:`._port`) that :class:`~._sync_sql.SqlSyncStorage` implements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

from ..kernel import CedarPolicy, PolicyVersion
from ..model import PullResponse, PushRequest, PushResponse, Record, SyncItem
from ._admin import HubAdmin
from ._audit import AuditLog
from ._audit_queue import AuditQueue
from ._auth import Credentials
from ._broker import HubBroker
from ._contracts import HubContracts
from ._dead_letters import hub_dead_letters
from ._engine import SyncEngine
from ._keys import KeyBlobs
from ._notes import PullNotes
from ._policy import HubPolicies
from ._sql import SqlDatabase
from ._sync_sql import SqlSyncStorage
from ._tenants import Tenants
from ._webhooks import HubWebhooks
from .store import (
    Device,
    DeviceAuth,
    DeviceContext,
    Event,
    KeyHolder,
    Limits,
    SecurityEvent,
    Tenant,
    WrappedKey,
)

__all__ = ["SqlHubStore"]


class SqlHubStore:
    """A hub store over a SQL database (see :class:`~.store.HubStore` for every method's
    contract); a backend's subclass makes the database object."""

    def __init__(self, database: SqlDatabase) -> None:
        self.database = database
        self.backend = database.backend
        self.notes = PullNotes(database)
        self.tenants = Tenants(database, self.notes)
        self.credentials = Credentials(database, self.tenants)
        self.key_blobs = KeyBlobs(database)
        self.policies = HubPolicies(database)
        #: the tenants' input brokers: approvals and requests for input, synced between devices
        self.broker = HubBroker(database)
        self.contracts = HubContracts(database)
        self.engine = SyncEngine(SqlSyncStorage(database, self.notes), self.contracts.screen)
        self.audit = AuditLog(database)
        self.audit_queue = AuditQueue(self.audit)
        #: what failed for good (workflow steps, events, automation runs), until someone decides
        self.dead_letters = hub_dead_letters(database)
        #: admin tokens and the record of audit verifications
        self.admin = HubAdmin(database)
        #: webhooks of the tenants' automations, and the deliveries waiting for their devices
        self.webhooks = HubWebhooks(database)

    def close(self) -> None:
        """Write what is noted, then release connections."""
        self.notes.stop()
        self.audit_queue.close()
        self.database.close()

    def transaction(self) -> AbstractContextManager[object]:
        return self.database.write()

    def watch(self, on_change: Callable[[str], None]) -> Callable[[], None]:
        return self.database.watch(on_change)

    # -- tenants, devices and what is read of a tenant (Tenants) -----------------------
    def add_tenant(self, name: str, vault_mode: str) -> Tenant:
        return self.tenants.add_tenant(name, vault_mode)

    def drop_new_tenant(self, tenant_id: str) -> None:
        self.tenants.drop_new_tenant(tenant_id)

    def add_event(
        self, tenant_id: str, type: str, detail: dict[str, object], device_id: str | None = None
    ) -> None:
        self.tenants.add_event(tenant_id, type, detail, device_id)

    def get_tenant(self, name: str) -> Tenant:
        return self.tenants.get_tenant(name)

    def list_tenants(self) -> list[Tenant]:
        return self.tenants.list_tenants()

    def add_device(self, tenant_name: str, device_name: str) -> tuple[Device, str]:
        return self.tenants.add_device(tenant_name, device_name)

    def list_devices(self, tenant_name: str) -> list[Device]:
        return self.tenants.list_devices(tenant_name)

    def head(self, tenant_id: str) -> int:
        return self.tenants.head(tenant_id)

    def events(
        self,
        tenant_id: str,
        since: int = 0,
        limit: int = 100,
        type: str | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        return self.tenants.events(tenant_id, since, limit, type, newest_first)

    def list_records(
        self, ctx: DeviceContext, kind: str | None = None, status: str | None = "open", limit: int = 1000
    ) -> list[Record]:
        return self.tenants.list_records(ctx, kind, status, limit)

    # -- credentials (Credentials) -------------------------------------------------------
    def authenticate(self, token: str) -> DeviceContext:
        return self.credentials.authenticate(token)

    def create_enrol_code(self, tenant_name: str, ttl_s: float = 900) -> str:
        return self.credentials.create_enrol_code(tenant_name, ttl_s)

    def enroll(
        self, code: str, device_name: str, sign_public: str, box_public: str, now: float | None = None
    ) -> tuple[Device, Tenant]:
        return self.credentials.enroll(code, device_name, sign_public, box_public, now)

    def device_keys(self, device_id: str) -> DeviceAuth | None:
        return self.credentials.device_keys(device_id)

    def token_holder(self, token: str) -> DeviceAuth | None:
        return self.credentials.token_holder(token)

    def authenticate_access_token(self, token: str) -> DeviceContext:
        return self.credentials.authenticate_access_token(token)

    def remember_nonce(self, device_id: str, nonce: str, ts: int, keep_s: float = 300) -> bool:
        return self.credentials.remember_nonce(device_id, nonce, ts, keep_s)

    def revoke_device(self, tenant_name: str, device_name: str, by: str | None = None) -> Device:
        return self.credentials.revoke_device(tenant_name, device_name, by)

    def rotate_key(self, ctx: DeviceContext, sign_public: str, box_public: str, grace_s: float) -> str:
        return self.credentials.rotate_key(ctx, sign_public, box_public, grace_s)

    def issue_access_token(self, ctx: DeviceContext, ttl_s: float = 900) -> tuple[str, str]:
        return self.credentials.issue_access_token(ctx, ttl_s)

    def add_security_event(
        self,
        type: str,
        *,
        tenant_id: str | None = None,
        device_id: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        self.credentials.add_security_event(type, tenant_id=tenant_id, device_id=device_id, detail=detail)

    def security_events(self, tenant_name: str | None = None, limit: int = 100) -> list[SecurityEvent]:
        return self.credentials.security_events(tenant_name, limit)

    # -- key blobs (KeyBlobs) ------------------------------------------------------------
    def key_holders(self, ctx: DeviceContext) -> list[KeyHolder]:
        return self.key_blobs.key_holders(ctx)

    def put_wrapped_keys(
        self, ctx: DeviceContext, blobs: Mapping[str, str], kid: str, genesis: bool = False
    ) -> int:
        return self.key_blobs.put_wrapped_keys(ctx, blobs, kid, genesis)

    def get_wrapped_key(self, ctx: DeviceContext) -> WrappedKey:
        return self.key_blobs.get_wrapped_key(ctx)

    def put_recovery_blob(self, ctx: DeviceContext, blob: str, kid: str) -> None:
        self.key_blobs.put_recovery_blob(ctx, blob, kid)

    def recovery_kid(self, ctx: DeviceContext) -> str | None:
        return self.key_blobs.recovery_kid(ctx)

    def get_recovery_blob(self, ctx: DeviceContext) -> str | None:
        return self.key_blobs.get_recovery_blob(ctx)

    def recovery_blob_for_code(self, code: str) -> tuple[Tenant, str | None]:
        return self.key_blobs.recovery_blob_for_code(code)

    # -- sync (SyncEngine) -----------------------------------------------------------------
    def push(self, ctx: DeviceContext, request: PushRequest, limits: Limits, now_ms: int) -> PushResponse:
        # the push and its audit entry commit together (the engine's write joins this one)
        with self.database.write():
            response = self.engine.push(ctx, request, limits, now_ms)
            entry = self.audit.push_entry(ctx.tenant_id, ctx.device_id, request, response, now_ms)
            if entry is not None:
                self.audit_queue.enqueue(ctx.tenant_id, [entry])
        return response

    def pull(
        self, ctx: DeviceContext, since: int, limit: int, tag: str | None = None, tag_seq: int | None = None
    ) -> PullResponse:
        return self.engine.pull(ctx, since, limit, tag, tag_seq)

    def pull_raw(
        self, ctx: DeviceContext, since: int, limit: int, tag: str | None = None, tag_seq: int | None = None
    ) -> bytes:
        return self.engine.pull_raw(ctx, since, limit, tag, tag_seq)

    def resolve_conflict(
        self, ctx: DeviceContext, record_id: str, resolution: str, clock: str
    ) -> tuple[Record, SyncItem | None]:
        return self.engine.resolve_conflict(ctx, record_id, resolution, clock)

    def purge_tombstones(self, older_than_ms: int, now_ms: int | None = None) -> int:
        return self.engine.purge_tombstones(older_than_ms, now_ms)

    # -- policy (HubPolicies) ------------------------------------------------------------
    def policy(self, ctx: DeviceContext) -> PolicyVersion:
        return self.policies.current(ctx.tenant_id)

    def set_policy(self, ctx: DeviceContext, text: str, set_by: str) -> PolicyVersion:
        return self.policies.set(ctx, text, set_by)

    def policy_engine(self, tenant_id: str) -> CedarPolicy:
        return self.policies.engine(tenant_id)
