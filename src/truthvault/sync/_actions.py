"""The device's actions that reach its hub: the tenant's policy, revoking a device, rotating
the tenant's data key. With the vault's own actions they make :func:`device_kernel`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, SecretStr

from ..kernel import ActionInput, ActionOutput, Context, Kernel, Registry, Risk, Target
from ..vault import DEVICE_ACTIONS

if TYPE_CHECKING:
    from ..vault import Vault

__all__ = ["SYNC_ACTIONS", "device_kernel"]

SYNC_ACTIONS: Registry[Vault] = Registry()
Ctx = Context["Vault"]


def device_kernel(vault: Vault) -> Kernel[Vault]:
    """The kernel of every action this device runs: the vault's own (``vault.kernel``) and
    those that reach its hub."""
    return vault.kernel.derive(DEVICE_ACTIONS + SYNC_ACTIONS)


class PolicyIn(ActionInput):
    text: str = Field(min_length=1)


class PolicyOut(ActionOutput):
    version: int
    set_by: str
    set_at: str


@SYNC_ACTIONS.action("policy.set", version="1.0.0", risk=Risk.SECURITY, input=PolicyIn, output=PolicyOut)
def policy_set(ctx: Ctx, params: PolicyIn) -> PolicyOut:
    """Set the tenant's policy (Cedar): at the hub first when joined, then here."""
    from ._policy import set_tenant_policy

    stored = set_tenant_policy(ctx.store, params.text, ctx.actor.source)
    ctx.touched(Target(f"policy:{stored.version}", "policy", stored.version))
    return PolicyOut(version=stored.version, set_by=stored.set_by, set_at=stored.set_at)


class DeviceIn(ActionInput):
    name: str = Field(min_length=1, max_length=200)


class RevokedOut(ActionOutput):
    name: str
    id: str
    revoked: bool


@SYNC_ACTIONS.action("device.revoke", version="1.0.0", risk=Risk.SECURITY, input=DeviceIn, output=RevokedOut)
def device_revoke(ctx: Ctx, params: DeviceIn) -> RevokedOut:
    """Revoke a device of this tenant at the hub: its every later request is refused."""
    from ._connect import connect

    with connect(ctx.store) as client:
        done = client.revoke_device(params.name)
    ctx.touched(Target(str(done["id"]), "device"))
    return RevokedOut(name=str(done["name"]), id=str(done["id"]), revoked=True)


class RotateIn(ActionInput):
    #: the recovery passphrase, when the tenant has a recovery copy to re-wrap (never logged,
    #: audited or hashed: the audit log's input hash sees only that one was given)
    passphrase: SecretStr | None = None


class RotationOut(ActionOutput):
    #: the ``keys.rotate`` workflow now running (``truthvault workflow show ID``)
    workflow_id: str
    recovery: bool


@SYNC_ACTIONS.action("keys.rotate", version="2.0.0", risk=Risk.SECURITY, input=RotateIn, output=RotationOut)
def keys_rotate(ctx: Ctx, params: RotateIn) -> RotationOut:
    """Rotate the tenant's data key: start the ``keys.rotate`` workflow (shared with every
    device and the recovery copy, compensated when it fails half-way; see
    :func:`truthvault.sync.rotate_data_key`, which also waits for it)."""
    from ._rotation import start_rotation

    passphrase = params.passphrase.get_secret_value() if params.passphrase else None
    workflow_id = start_rotation(ctx.store, passphrase, ctx.actor)
    ctx.touched(Target(workflow_id, "workflow"))
    return RotationOut(workflow_id=workflow_id, recovery=passphrase is not None)


class ContractIn(ActionInput):
    type: str = Field(min_length=1, max_length=64)
    json_schema: dict[str, Any] = Field(alias="schema")
    major: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class ContractOut(ActionOutput):
    type: str
    version: int
    major: int


@SYNC_ACTIONS.action(
    "contract.add", version="1.0.0", risk=Risk.SECURITY, input=ContractIn, output=ContractOut
)
def contract_add(ctx: Ctx, params: ContractIn) -> ContractOut:
    """Add the next version of an entity type's contract (checked for breaking changes)."""
    from ._contracts import add_contract

    added = add_contract(
        ctx.store, params.type, params.json_schema, major=params.major, source=ctx.actor.source
    )
    ctx.touched(Target(f"contract:{added.entity_type}", "contract", added.version))
    return ContractOut(type=added.entity_type, version=added.version, major=added.major)
