"""The hub store's interface (what the app, the CLI and the tests call), its data types, and
:func:`open_store`, which picks the database (SQLite, PostgreSQL) by URL.

The store that :func:`open_store` returns is a facade (:mod:`._base`) over the sync engine
(:mod:`._engine`, whose own narrow storage port is :mod:`._port`) and the repositories of
tenants, credentials and key blobs. Every method is scoped to one tenant through the
:class:`DeviceContext` it is given (or a tenant name for the admin methods); no query ever
reads across tenants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ..clock import MAX_FUTURE_SKEW_MS
from ..errors import InvalidInput
from ..model import PullResponse, PushRequest, PushResponse, Record, SyncItem

if TYPE_CHECKING:
    from ..kernel import CedarPolicy, PolicyVersion
    from ..kernel._dead_letters import SqlDeadLetters
    from ._admin import HubAdmin
    from ._audit import AuditLog
    from ._audit_queue import AuditQueue
    from ._broker import HubBroker
    from ._contracts import HubContracts
    from ._webhooks import HubWebhooks

__all__ = [
    "SYNC_EVENT_TYPES",
    "Device",
    "DeviceAuth",
    "DeviceContext",
    "Event",
    "HubStore",
    "KeyHolder",
    "Limits",
    "SecurityEvent",
    "Tenant",
    "VaultMode",
    "WrappedKey",
    "open_store",
]

VaultMode = Literal["local_first", "cloud_first"]
VAULT_MODES: tuple[str, ...] = ("local_first", "cloud_first")


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str  # a UUID, as it appears in SyncItem.tenant_id
    name: str
    vault_mode: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Device:
    id: str  # a UUID, as it appears in SyncItem.device_id
    tenant_id: str
    name: str
    created_at: str
    last_seen_at: str | None
    last_mutation: int
    revoked: bool = False
    fingerprint: str | None = None  # of the public signing key; None for a token-only device


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """Who is asking: one device of one tenant, as authentication established."""

    tenant_id: str
    tenant_name: str
    vault_mode: str
    device_id: str
    device_name: str
    auth: str = "token"  # how this request proved it: "signature", "access_token" or "token"


@dataclass(frozen=True, slots=True)
class DeviceAuth:
    """What the hub knows to authenticate one device: its keys, its state, its tenant."""

    ctx: DeviceContext
    revoked: bool
    sign_public: str | None  # None for a device that only has a bearer token
    prev_sign_public: str | None = None  # the key before the last rotation ...
    prev_valid_until: str | None = None  # ... accepted until then
    expires_at: str | None = None  # set when found by a short-lived access token


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """A refused request or a change to a device's credentials (never a token or signature)."""

    id: int
    type: str  # AUTH_BAD_SIGNATURE, AUTH_REPLAY, DEVICE_ENROLLED, DEVICE_REVOKED, KEY_ROTATED, ...
    at: str
    tenant_name: str | None
    device_id: str | None
    detail: dict[str, object]


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """A device as key sharing sees it: its box key and which key its wrapped copy has."""

    device_id: str
    name: str
    box_public: str | None  # None for a token-only or revoked device: nothing can be wrapped to it
    kid: str | None  # the current key id of its wrapped keyring; None when it has none
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A device's own wrapped keyring (opaque to the hub) and whether its tenant has a key at all."""

    blob: str | None
    kid: str | None
    tenant_keyed: bool


#: Every type of sync event a hub records (security events are kept apart).
SYNC_EVENT_TYPES: tuple[str, ...] = (
    "SYNC_PUSH",
    "SYNC_PULL",
    "TRUTH_UPGRADE",
    "CONFLICT_DETECTED",
    "AI_SUGGESTION_GENERATED",
    "WORKFLOW_STEP",
    "WEBHOOK_DELIVERY",
)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str  # one of SYNC_EVENT_TYPES
    at: str
    device_id: str | None
    entity_id: str | None
    detail: dict[str, object]
    device_name: str | None = None  # of device_id, when the tenant still has it


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits the hub enforces on pushes."""

    max_payload_bytes: int = 1 << 20
    max_batch_items: int = 5000
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS


class HubStore(Protocol):
    """What the hub needs of its database. Implementations must be safe to call from
    several threads at once and, for PostgreSQL, from several hub processes at once."""

    backend: str  # "sqlite" or "postgresql"
    #: the tenants' input brokers (approvals and requests for input)
    broker: HubBroker
    #: each tenant's entity contract versions and which its devices use
    contracts: HubContracts
    #: the tenants' audit logs (RFC 6962 Merkle trees), in the same database
    audit: AuditLog
    #: queued audit appends (an action's or a push's entry), sequenced into the logs
    audit_queue: AuditQueue
    #: what failed for good, kept until someone retries, quarantines or discards it
    dead_letters: SqlDeadLetters
    #: admin tokens (for /diagz) and the record of audit verifications
    admin: HubAdmin
    #: the hooks devices registered for their automations, and the deliveries each holds
    webhooks: HubWebhooks

    def close(self) -> None:
        """Release connections."""

    # -- admin ---------------------------------------------------------------
    def add_tenant(self, name: str, vault_mode: str) -> Tenant:
        """Create a tenant; ConflictState if the name is taken, InvalidInput for a bad mode."""

    def get_tenant(self, name: str) -> Tenant:
        """A tenant by name; NotFound if there is none."""

    def list_tenants(self) -> list[Tenant]:
        """All tenants, by name."""

    def add_device(self, tenant_name: str, device_name: str) -> tuple[Device, str]:
        """Register a device and return it with its bearer token (shown once, stored hashed).

        NotFound for an unknown tenant; ConflictState if the tenant has a device of that name.
        """

    def list_devices(self, tenant_name: str) -> list[Device]:
        """A tenant's devices, by name."""

    def authenticate(self, token: str) -> DeviceContext:
        """The device a bearer token (legacy device token or access token) belongs to.

        UnknownDevice if none, DeviceRevoked for a revoked device, TokenExpired for an
        expired access token. Nothing is cached: a revocation holds from the next call.
        """

    # -- enrolment and device credentials -------------------------------------
    def create_enrol_code(self, tenant_name: str, ttl_s: float = 900) -> str:
        """A one-time enrolment code for the tenant (e.g. ``7KQ2-M9XD-...``, 80 bits), valid
        ``ttl_s``; stored hashed, shown once. NotFound for an unknown tenant."""

    def enroll(
        self, code: str, device_name: str, sign_public: str, box_public: str, now: float | None = None
    ) -> tuple[Device, Tenant]:
        """Spend an enrolment code on a new device with these public keys, atomically.

        InvalidEnrolCode for an unknown, expired or used code; ConflictState (code not
        spent) if the tenant has a device of that name; InvalidInput for a malformed key.
        Records DEVICE_ENROLLED.
        """

    def device_keys(self, device_id: str) -> DeviceAuth | None:
        """What verifying a request of this device needs; None for an unknown device."""

    def token_holder(self, token: str) -> DeviceAuth | None:
        """The device a bearer token (device token or access token) belongs to, or None."""

    def remember_nonce(self, device_id: str, nonce: str, ts: int, keep_s: float = 300) -> bool:
        """Remember a signed request's nonce; False if this device already used it (a replay).

        Kept in the database, so a replay is refused across hub processes; nonces whose
        timestamp is more than ``keep_s`` old are pruned (the window refuses them anyway).
        """

    def transaction(self) -> AbstractContextManager[object]:
        """One write transaction that every store call made inside it joins (a kernel action
        and its audit entry commit together)."""

    def add_event(
        self, tenant_id: str, type: str, detail: dict[str, object], device_id: str | None = None
    ) -> None:
        """Record a sync event of ``type`` (one of :data:`SYNC_EVENT_TYPES`) in the tenant's
        feed, in the caller's write transaction when there is one."""

    def drop_new_tenant(self, tenant_id: str) -> None:
        """Remove a tenant that holds nothing yet (no device, nothing synced): what undoes a
        provisioning that failed half-way. Gone already is done; ConflictState otherwise."""

    def revoke_device(self, tenant_name: str, device_name: str, by: str | None = None) -> Device:
        """Revoke a device: its every later request is refused (by signature, device token or
        access token alike). NotFound if the tenant has no such device. Records DEVICE_REVOKED."""

    def rotate_key(self, ctx: DeviceContext, sign_public: str, box_public: str, grace_s: float) -> str:
        """Make these the device's keys; its previous signing key stays valid for ``grace_s``.
        Returns when the grace ends. Records KEY_ROTATED."""

    def issue_access_token(self, ctx: DeviceContext, ttl_s: float = 900) -> tuple[str, str]:
        """A short-lived bearer token for this device and when it expires (stored hashed)."""

    def authenticate_access_token(self, token: str) -> DeviceContext:
        """The device an access token belongs to; UnknownDevice, TokenExpired or DeviceRevoked."""

    def add_security_event(
        self,
        type: str,
        *,
        tenant_id: str | None = None,
        device_id: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        """Record a security event (a refusal, an enrolment, a revocation, a rotation)."""

    def security_events(self, tenant_name: str | None = None, limit: int = 100) -> list[SecurityEvent]:
        """Security events, newest first; of one tenant, or of all (those of no tenant too)."""

    # -- end-to-end encryption keys (opaque envelopes) --------------------------
    def key_holders(self, ctx: DeviceContext) -> list[KeyHolder]:
        """The devices of the caller's tenant, by name, with their box keys and the current key
        id of the keyring wrapped to each (None when none is). A revoked device is listed with
        ``revoked`` and no box key: what its copy holds, a key it may still have, is what a user
        needs to know to decide on a rotation."""

    def put_wrapped_keys(
        self, ctx: DeviceContext, blobs: Mapping[str, str], kid: str, genesis: bool = False
    ) -> int:
        """Store keyrings wrapped to devices of the caller's tenant ({device id: envelope}),
        replacing earlier copies, atomically; ``kid`` is the wrapped keyring's current key id.
        NotFound for a target that is not an active device of the tenant with a box key.
        With ``genesis`` the caller claims to have created the tenant's keyring: ConflictState
        if the tenant already has one. Records KEYS_SHARED. Returns how many were stored."""

    def get_wrapped_key(self, ctx: DeviceContext) -> WrappedKey:
        """The caller's own wrapped keyring (never another device's), and whether the tenant
        has a data key at all."""

    def put_recovery_blob(self, ctx: DeviceContext, blob: str, kid: str) -> None:
        """Store the tenant's passphrase-wrapped keyring. Records KEY_RECOVERY_SET."""

    def recovery_kid(self, ctx: DeviceContext) -> str | None:
        """The current key id of the tenant's passphrase-wrapped keyring, or None when it has
        none. Records nothing: it tells whether a copy exists, not what it holds."""

    def get_recovery_blob(self, ctx: DeviceContext) -> str | None:
        """The tenant's passphrase-wrapped keyring, or None. Records KEY_RECOVERY_FETCHED."""

    def recovery_blob_for_code(self, code: str) -> tuple[Tenant, str | None]:
        """The tenant of an unspent enrolment code and its passphrase-wrapped keyring (or None),
        so a device can check a recovery passphrase before it spends the code. The code stays
        unspent. InvalidEnrolCode for an unknown, expired or used code; ConflictState for a
        tenant that is not local-first. Records KEY_RECOVERY_FETCHED (no device)."""

    # -- sync ----------------------------------------------------------------
    def push(self, ctx: DeviceContext, request: PushRequest, limits: Limits, now_ms: int) -> PushResponse:
        """Apply a batch atomically and idempotently.

        Every item is checked first (:func:`truthvault.intake.prepare_item`, mutations
        strictly increasing and present); one bad item refuses the whole batch with an
        error naming it and nothing is written. Items whose mutation is not above the
        device's last applied mutation are answered ``duplicate`` and write nothing.
        The rest go through :func:`truthvault.merge.plan_merge`; entity changes, kept
        losers (records), decisions, events (SYNC_PUSH once, CONFLICT_DETECTED,
        AI_SUGGESTION_GENERATED, TRUTH_UPGRADE), the tenant's checksum and head and the
        device's last mutation are written in one transaction. Each entity change and
        each new or changed record takes the next number of the tenant's sequence, and
        numbers become visible to pulls in order (no pull may see n+1 before n).
        ResyncRequired if ``request.cursor`` is behind the tenant's purge horizon.
        """

    def pull(
        self, ctx: DeviceContext, since: int, limit: int, tag: str | None = None, tag_seq: int | None = None
    ) -> PullResponse:
        """Changes after ``since``, in sequence order, at most ``limit`` (items and records
        together), read from one consistent snapshot. ``cursor`` is the last sequence
        number returned, or the head when the page reaches it; ``checksum`` and
        ``records_checksum`` are given only then; ``tag`` names the commit ``cursor`` points
        into. ResyncRequired when ``0 < since < purge horizon``; HubReset when ``since`` is
        past the head or ``tag`` (the one a device got for sequence number ``tag_seq``, by
        default ``since``) is not the tag of the commit that number belongs to now. Records a
        SYNC_PULL event when it returns anything.
        """

    def pull_raw(
        self, ctx: DeviceContext, since: int, limit: int, tag: str | None = None, tag_seq: int | None = None
    ) -> bytes:
        """What :meth:`pull` answers, as the exact JSON bytes of a PullResponse."""

    def watch(self, on_change: Callable[[str], None]) -> Callable[[], None]:
        """Call ``on_change(tenant_id)`` (from another thread) when another hub process
        commits a change to a tenant; return a function that stops watching."""

    def head(self, tenant_id: str) -> int:
        """The tenant's latest sequence number (0 when empty)."""

    def list_records(
        self, ctx: DeviceContext, kind: str | None = None, status: str | None = "open", limit: int = 1000
    ) -> list[Record]:
        """The tenant's suggestions and conflict records, newest first."""

    def resolve_conflict(
        self, ctx: DeviceContext, record_id: str, resolution: str, clock: str
    ) -> tuple[Record, SyncItem | None]:
        """Close a conflict record. ``keep`` leaves the current version; ``restore``
        writes the kept loser's content back as a new level-1 version by this device,
        stamped ``clock``. NotFound / ConflictState (already closed) otherwise."""

    def events(
        self,
        tenant_id: str,
        since: int = 0,
        limit: int = 100,
        type: str | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """The tenant's events after id ``since``: the oldest ``limit`` of them oldest first, or
        with ``newest_first`` the newest ``limit`` newest first. ``type`` is one of
        :data:`SYNC_EVENT_TYPES`, in any case; InvalidInput naming the known ones otherwise."""

    def purge_tombstones(self, older_than_ms: int, now_ms: int | None = None) -> int:
        """Delete the tombstones the hub received before the given time, in every tenant;
        move each tenant's purge horizon past the purged sequence numbers. Returns how
        many were purged.

        When a change was received is known from the marks each call leaves (the tenant's
        head and the time), so a tombstone is purged once a mark taken after it is older
        than the given time: the hub's clock decides, never the writing device's. ``now_ms``
        is the time the mark of this call gives (default: now).
        """

    # -- policy ----------------------------------------------------------------
    def policy(self, ctx: DeviceContext) -> PolicyVersion:
        """The caller's tenant's policy in force (the default, version 0, until one is set)."""

    def set_policy(self, ctx: DeviceContext, text: str, set_by: str) -> PolicyVersion:
        """Store a new version of the caller's tenant's policy, set by source ``set_by``.

        Forbidden unless ``set_by`` is a level-1 source; InvalidPolicy (naming the line) for
        text Cedar cannot use. Either way nothing is stored."""

    def policy_engine(self, tenant_id: str) -> CedarPolicy:
        """A tenant's policy engine with its current version in force."""


def open_store(url: str, *, create: bool = True) -> HubStore:
    """Open (migrating as needed) the hub store a URL or path names.

    ``postgresql://...`` opens PostgreSQL; anything else is a SQLite file path
    (``sqlite:///path`` or a plain path). A database that holds no hub yet (a missing
    SQLite file, an empty one, a PostgreSQL database without the hub's tables) is made
    into one only with ``create``; otherwise NotFound, so that a mistyped path or URL
    does not quietly become a new, empty hub.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresHubStore

        return PostgresHubStore(url, create=create)
    scheme, sep, _ = url.partition("://")
    if sep and scheme != "sqlite":
        # Not a path: a typo'd or unsupported URL must not quietly become a SQLite file.
        raise InvalidInput(
            f"the hub database {scheme + '://...'!r} is not a supported URL",
            hint="give a file path (SQLite), sqlite:///path or postgresql://user@host/db",
        )
    from .sqlite import SqliteHubStore

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return SqliteHubStore(path, create=create)
