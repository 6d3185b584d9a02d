"""A vault's way to its hub, wired as the vault was joined: the client, the syncer, the key exchange.

A program holding an open vault needs nothing else::

    with Vault.open(home) as vault, connect(vault) as client:
        stats = syncer_for(vault, client).sync()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..crypto import DeviceKeys
from ..errors import ConflictState
from ..vault import Vault
from ._keys import KeyExchange
from ._syncer import Syncer
from ._transport import HubClient

if TYPE_CHECKING:
    import httpx

__all__ = ["Joined", "connect", "device_keys", "join_with_token", "key_exchange", "syncer_for"]


def device_keys(vault: Vault) -> DeviceKeys | None:
    """This device's key pair when the vault was enrolled (it has a key file), else None."""
    return DeviceKeys.load(vault.replica.key_path) if vault.replica.key_path else None


def connect(
    vault: Vault, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
) -> HubClient:
    """A client of the hub ``vault`` is joined to, trusting only the certificate it pinned: signing
    as the device when the vault was enrolled, else with its token. ConflictState if not joined.

    Close it when done (it is a context manager). ``transport`` lets tests pass an ASGI transport.
    """
    if vault.replica.hub_url and vault.replica.key_path:
        return HubClient(
            vault.replica.hub_url,
            keys=device_keys(vault),
            device_id=vault.device_id,
            cert_pem=vault.replica.hub_cert,
            timeout=timeout,
            transport=transport,
        )
    if not vault.replica.hub_url or not vault.replica.hub_token:
        raise ConflictState(
            "this vault is not joined to a hub",
            hint="enrol it with 'truthvault enroll --hub URL --code CODE' "
            "(or, for a script: 'truthvault init --hub URL --tenant NAME --token -')",
        )
    return HubClient(
        vault.replica.hub_url,
        vault.replica.hub_token,
        cert_pem=vault.replica.hub_cert,
        timeout=timeout,
        transport=transport,
    )


def syncer_for(vault: Vault, client: HubClient, *, batch: int = 1000) -> Syncer:
    """A Syncer of ``vault`` through ``client`` (from ``connect``), holding the device's keys so
    that it can open the tenant keyring wrapped for this device (local-first tenants)."""
    return Syncer(vault, client, batch=batch, device_keys=device_keys(vault))


def key_exchange(vault: Vault, client: HubClient) -> KeyExchange:
    """The exchange of the tenant's data keys for ``vault`` through ``client``; ConflictState for a
    tenant whose payloads are not end-to-end encrypted (it has no data keys)."""
    syncer = syncer_for(vault, client)
    if not syncer.e2e:
        raise ConflictState(
            f"tenant {vault.tenant_name!r} is {vault.vault_mode}: its payloads are not end-to-end encrypted"
        )
    return syncer.keys


@dataclass(frozen=True, slots=True)
class Joined:
    """What joining a hub with a device token gave the vault."""

    tenant_id: str
    tenant_name: str
    vault_mode: str
    device_id: str
    device_name: str


def join_with_token(
    vault: Vault,
    hub_url: str,
    token: str,
    *,
    tenant: str | None = None,
    cert_pem: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Joined:
    """Join ``vault`` to the hub at ``hub_url`` as the device a token from ``hub device add`` names.

    ``tenant``, when given, must be the token's tenant (ConflictState otherwise, and nothing is
    joined); ``cert_pem`` is an https hub's certificate, pinned from now on. Enrolling with a
    one-time code instead (the device makes its own keys) is :func:`enrol_vault`.
    """
    with HubClient(hub_url, token, cert_pem=cert_pem, transport=transport) as client:
        me = client.whoami()
    if tenant and tenant != me["tenant_name"]:
        raise ConflictState(f"this token belongs to tenant {me['tenant_name']!r}, not {tenant!r}")
    joined = Joined(
        tenant_id=str(me["tenant_id"]),
        tenant_name=str(me["tenant_name"]),
        vault_mode=str(me["vault_mode"]),
        device_id=str(me["device_id"]),
        device_name=str(me["device_name"]),
    )
    vault.replica.join(
        hub_url=hub_url,
        token=token,
        tenant_id=joined.tenant_id,
        tenant_name=joined.tenant_name,
        device_id=joined.device_id,
        vault_mode=joined.vault_mode,
        hub_cert=cert_pem,
    )
    return joined
