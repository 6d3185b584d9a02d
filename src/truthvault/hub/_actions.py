"""The hub's actions: the writes a device (or the hub's admin) makes at the hub, as governed
kernel actions over the hub's store, scoped to one tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..errors import BadSignature, ConflictState, Forbidden
from ..kernel import (
    ActionInput,
    ActionOutput,
    Context,
    InvalidPolicy,
    Registry,
    Risk,
    Target,
    ValidationFailed,
)
from ..payload import plain
from .store import DeviceContext, HubStore

__all__ = ["HUB_ACTIONS", "HubScope"]


@dataclass(frozen=True, slots=True)
class HubScope:
    """What a hub action acts on: the store, the tenant, and the device that asked (None when
    the hub's admin acts on the hub's own machine)."""

    store: HubStore
    tenant_name: str
    tenant_id: str
    device: DeviceContext | None = None

    def calling_device(self) -> DeviceContext:
        if self.device is None:
            raise Forbidden("this action is a device's: run it from an enrolled device")
        return self.device

    def setting_up(self, what: str) -> DeviceContext:
        """The calling device; for the hub's admin (no device), a stand-in only while the tenant
        has no device yet (as it is provisioned): after that, the tenant's own devices set its
        ``what``."""
        if self.device is not None:
            return self.device
        if self.store.list_devices(self.tenant_name):
            raise Forbidden(
                f"the hub's admin sets a tenant's {what} only before its first device: set it from a device"
            )
        return DeviceContext(self.tenant_id, self.tenant_name, "", "", "hub-admin")

    def signing_device(self) -> DeviceContext:
        """The calling device, proved by a signed request (not a bearer token): what replacing
        the device's own keys takes, on every route that reaches the action."""
        device = self.calling_device()
        if device.auth != "signature":
            raise BadSignature(
                "this action needs a signed request", hint="only an enrolled device, signing, may do this"
            )
        return device

    def e2e_device(self) -> DeviceContext:
        """The calling device of a local_first tenant: only those keep wrapped keyrings here."""
        device = self.calling_device()
        if device.vault_mode != "local_first":
            raise ConflictState(
                f"tenant {device.tenant_name!r} is {device.vault_mode}: its payloads are not end-to-end encrypted"
            )
        return device


HUB_ACTIONS: Registry[HubScope] = Registry()
Ctx = Context[HubScope]


class _Out(ActionOutput):
    model_config = ConfigDict(extra="allow", defer_build=True)


class DeviceOut(_Out):
    id: str
    name: str
    revoked: bool


class NameIn(ActionInput):
    name: str = Field(min_length=1, max_length=200)


@HUB_ACTIONS.action("device.revoke", version="1.0.0", risk=Risk.SECURITY, input=NameIn, output=DeviceOut)
def device_revoke(ctx: Ctx, params: NameIn) -> DeviceOut:
    """Revoke a device of the tenant: its every later request is refused."""
    scope = ctx.store
    by = scope.device.device_id if scope.device else None
    revoked = scope.store.revoke_device(scope.tenant_name, params.name, by)
    ctx.touched(Target(revoked.id, "device"))
    return DeviceOut(id=revoked.id, name=revoked.name, revoked=True)


class RotateIn(ActionInput):
    sign_public: str = Field(min_length=1, max_length=200)
    box_public: str = Field(min_length=1, max_length=200)
    grace_seconds: float = Field(default=300, ge=0, le=7 * 86400)


class RotateOut(_Out):
    device_id: str
    grace_until: str


@HUB_ACTIONS.action(
    "device.rotate_key", version="1.0.0", risk=Risk.SECURITY, input=RotateIn, output=RotateOut
)
def device_rotate_key(ctx: Ctx, params: RotateIn) -> RotateOut:
    """Replace the calling device's keys; the old signing key works during the grace."""
    device = ctx.store.signing_device()
    until = ctx.store.store.rotate_key(device, params.sign_public, params.box_public, params.grace_seconds)
    ctx.touched(Target(device.device_id, "device"))
    return RotateOut(device_id=device.device_id, grace_until=until)


class WrappedIn(ActionInput):
    blobs: dict[str, str]
    kid: str = Field(min_length=1, max_length=200)
    genesis: bool = False


class StoredOut(_Out):
    stored: int


@HUB_ACTIONS.action("keys.share", version="1.0.0", risk=Risk.SECURITY, input=WrappedIn, output=StoredOut)
def keys_share(ctx: Ctx, params: WrappedIn) -> StoredOut:
    """Store the tenant keyring wrapped to each of its devices (a new data key, or a share).

    Not ``keys.rotate``: rotating is the device's action, decided (and approved, when policy
    asks) there; each sync shares the keyring too, and a hub that governed every share as a
    rotation held them all for an approval it cannot redeem."""
    device = ctx.store.e2e_device()
    stored = ctx.store.store.put_wrapped_keys(device, params.blobs, params.kid, params.genesis)
    for device_id in params.blobs:
        ctx.touched(Target(device_id, "device"))
    return StoredOut(stored=stored)


class RecoveryIn(ActionInput):
    blob: str = Field(min_length=1)
    kid: str = Field(min_length=1, max_length=200)


@HUB_ACTIONS.action("keys.recovery", version="1.0.0", risk=Risk.SECURITY, input=RecoveryIn, output=StoredOut)
def keys_recovery(ctx: Ctx, params: RecoveryIn) -> StoredOut:
    """Store the tenant keyring wrapped with the recovery passphrase."""
    ctx.store.store.put_recovery_blob(ctx.store.e2e_device(), params.blob, params.kid)
    return StoredOut(stored=1)


class ResolveIn(ActionInput):
    conflict_id: str = Field(min_length=1, max_length=200)
    resolution: Literal["keep", "restore"]


class ResolveOut(_Out):
    record: dict[str, Any]
    item: dict[str, Any] | None = None


@HUB_ACTIONS.action("conflict.resolve", version="1.0.0", risk=Risk.WRITE, input=ResolveIn, output=ResolveOut)
def conflict_resolve(ctx: Ctx, params: ResolveIn) -> ResolveOut:
    """Close a conflict at the hub: keep the current version, or restore the kept loser. Only
    the user (level 1) decides between two of the user's versions, as in the vault."""
    if not ctx.actor.is_user:
        raise Forbidden(f"{ctx.actor.source} may not resolve a conflict: only the user (level 1) decides")
    device = ctx.store.calling_device()
    record, item = ctx.store.store.resolve_conflict(
        device, params.conflict_id, params.resolution, ctx.clock()
    )
    if item is not None:
        ctx.touched(Target(item.entity_id, item.entity_type, item.version, item.truth_level))
    else:
        ctx.touched(Target(record.entity_id))
    return ResolveOut(record=plain(record), item=None if item is None else plain(item))


class CodeIn(ActionInput):
    ttl_s: float = Field(default=900, gt=0, le=7 * 86400)


class CodeOut(_Out):
    code: str
    tenant: str


@HUB_ACTIONS.action("tenant.code", version="1.0.0", risk=Risk.SECURITY, input=CodeIn, output=CodeOut)
def tenant_code(ctx: Ctx, params: CodeIn) -> CodeOut:
    """Issue a one-time enrolment code for a new device of the tenant."""
    code = ctx.store.store.create_enrol_code(ctx.store.tenant_name, params.ttl_s)
    return CodeOut(code=code, tenant=ctx.store.tenant_name)


class PolicySetIn(ActionInput):
    text: str = Field(min_length=1)


class PolicySetOut(_Out):
    version: int
    set_by: str
    set_at: str


@HUB_ACTIONS.action("policy.set", version="1.0.0", risk=Risk.SECURITY, input=PolicySetIn, output=PolicySetOut)
def policy_set(ctx: Ctx, params: PolicySetIn) -> PolicySetOut:
    """Set the tenant's policy (Cedar): a new version, in force for every device at its sync.
    The hub's admin sets one only while the tenant has no device (as it is provisioned)."""
    scope = ctx.store
    device = scope.setting_up("policy")
    try:
        stored = scope.store.set_policy(device, params.text, ctx.actor.source)
    except InvalidPolicy as exc:
        raise ValidationFailed(f"text: {exc.message}", hint=exc.hint, field="text") from None
    ctx.touched(Target(f"policy:{stored.version}", "policy", stored.version))
    return PolicySetOut(version=stored.version, set_by=stored.set_by, set_at=stored.set_at)


class ContractAddIn(ActionInput):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    type: str = Field(min_length=1, max_length=64)
    json_schema: dict[str, Any] = Field(alias="schema")
    major: bool = False


class ContractAddOut(_Out):
    marker: int
    contract: dict[str, Any]


@HUB_ACTIONS.action(
    "contract.add", version="1.0.0", risk=Risk.SECURITY, input=ContractAddIn, output=ContractAddOut
)
def contract_add(ctx: Ctx, params: ContractAddIn) -> ContractAddOut:
    """Add the next version of an entity type's contract, checked against every version in use.
    The hub's admin adds one only while the tenant has no device (as it is provisioned)."""
    device = ctx.store.setting_up("contracts")
    marker, added = ctx.store.store.contracts.add(
        device, params.type, params.json_schema, major=params.major, source=ctx.actor.source
    )
    ctx.touched(Target(f"contract:{added.entity_type}", "contract", added.version))
    return ContractAddOut(marker=marker, contract=added.to_dict())


# the dead-letter queue's actions register themselves on HUB_ACTIONS
from . import _dlq_actions  # noqa: E402, F401
