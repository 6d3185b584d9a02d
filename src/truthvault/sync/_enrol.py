"""Enrolling a vault with a hub: the device's keys, the one-time code, and the recovered data key."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypto import DeviceKeys, Keyring
from ..errors import ConflictState, HubUnavailable, TruthvaultError
from ..vault import KEY_FILE, Vault
from ._keys import KeyExchange, open_recovery
from ._transport import HubClient

__all__ = ["Enrolment", "enrol_vault", "recovery_keyring", "rejoin_hub"]


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What enrolling gave this vault."""

    tenant_id: str
    tenant_name: str
    vault_mode: str
    device_id: str
    device_name: str
    fingerprint: str  # of the device's signing key
    recovered_key: str | None = None  # the current data key id, when recovered with the passphrase
    previous_active: str | None = None  # after a rejoin: the device this vault was, if not revoked


def recovery_keyring(hub_url: str, code: str, passphrase: str, cert_pem: str | None = None) -> Keyring:
    """Open the recovery copy of the tenant keyring of an unspent ``code`` with ``passphrase``.

    Nothing is enrolled and the code stays unspent, so a wrong passphrase (DecryptionFailed)
    costs nothing: the same code works again with the right one.
    """
    with HubClient(hub_url, cert_pem=cert_pem) as client:
        return open_recovery(client.recovery_for_code(code)["blob"], passphrase)


def enrol_vault(
    vault: Vault,
    hub_url: str,
    code: str,
    device_name: str,
    *,
    cert_pem: str | None = None,
    recovered: Keyring | None = None,
    rejoin: bool = False,
) -> Enrolment:
    """Enrol this vault's device with the hub at ``hub_url`` with a one-time ``code`` and join it.

    The private keys go to ``device.key`` in the vault's home (0600); only the public halves
    reach the hub. ``recovered`` (from :func:`recovery_keyring`) is kept as the tenant's data
    key and wrapped to this device. ``rejoin`` enrols a vault already joined to this hub again
    (its device was revoked): a new device id and keys in the same tenant, everything synced
    stays, and what is queued is pushed by the new device.
    """
    hub_url = hub_url.rstrip("/")
    key_file = vault.home / KEY_FILE
    if rejoin:
        joined, keys, previous = _rejoin(vault, hub_url, code, device_name, key_file, cert_pem)
    else:
        if vault.replica.hub_url and (
            vault.replica.hub_url.rstrip("/") != hub_url or vault.replica.hub_auth == "signed"
        ):
            raise ConflictState(
                f"this vault is already joined to {vault.replica.hub_url} (tenant {vault.tenant_name!r})",
                hint=f"if its device was revoked, get a new code ('truthvault hub tenant code {vault.tenant_name}' on the hub) "
                "and run 'truthvault enroll --rejoin --code -' (unsynced changes are kept); "
                "use another TRUTHVAULT_HOME to enrol with another hub or tenant",
            )
        # A key left by an enrolment that failed half way is used again, never replaced.
        if key_file.exists():
            keys = DeviceKeys.load(key_file)
        else:
            keys = DeviceKeys.generate()
            keys.save(key_file)
        with HubClient(hub_url, cert_pem=cert_pem) as client:
            joined = client.enroll(code, device_name, keys)
        _join(vault, hub_url, joined, key_file, cert_pem)
        previous = None
    enrolment = Enrolment(
        joined["tenant_id"],
        joined["tenant_name"],
        joined["vault_mode"],
        joined["device_id"],
        joined["device_name"],
        keys.fingerprint(),
        previous_active=previous,
    )
    if recovered is None:
        return enrolment
    return _adopt(vault, keys, enrolment, recovered)


def _join(vault: Vault, hub_url: str, joined: dict[str, Any], key_file: Path, cert_pem: str | None) -> None:
    """Join the vault to the tenant and device the hub's answer to an enrolment names."""
    vault.replica.join(
        hub_url=hub_url,
        token=None,
        tenant_id=joined["tenant_id"],
        tenant_name=joined["tenant_name"],
        device_id=joined["device_id"],
        vault_mode=joined["vault_mode"],
        key_path=str(key_file),
        hub_cert=cert_pem,
    )


def rejoin_hub(vault: Vault, hub_url: str | None = None) -> str:
    """The hub a rejoin enrols this vault with again: its own (``hub_url``, if given, must be it)."""
    if not vault.replica.hub_url:
        raise ConflictState(
            "this vault is not joined to a hub: there is nothing to rejoin",
            hint="enrol it with 'truthvault enroll --hub URL --code CODE'",
        )
    own = vault.replica.hub_url.rstrip("/")
    if hub_url is not None and hub_url.rstrip("/") != own:
        raise ConflictState(
            f"this vault syncs with {own}, not {hub_url}: a rejoin enrols it again with its own hub",
            hint="use another TRUTHVAULT_HOME to enrol with another hub",
        )
    return own


def _rejoin(
    vault: Vault, hub_url: str, code: str, device_name: str, key_file: Path, cert_pem: str | None
) -> tuple[dict[str, Any], DeviceKeys, str | None]:
    """Enrol a joined vault as a new device of its tenant; the hub's answer, the keys, and the
    name of the device it was when that one is still active."""
    hub_url = rejoin_hub(vault, hub_url)
    previous = vault.device_id
    # The new key waits beside the old one until the vault switches to the new device (one
    # transaction): whenever this stops, the vault names a key that belongs to its device id.
    pending = key_file.with_name(key_file.name + ".rejoin")
    keys = DeviceKeys.generate()
    keys.save(pending, overwrite=True)
    with HubClient(hub_url, cert_pem=cert_pem) as client:
        joined: dict[str, Any] = client.enroll(code, device_name, keys)
    if joined["tenant_id"] != vault.tenant_id:
        pending.unlink(missing_ok=True)
        raise ConflictState(
            f"that code was for tenant {joined['tenant_name']!r}, and this vault belongs to "
            f"{vault.tenant_name!r}: the vault was left as it was",
            hint=f"the code enrolled a device {joined['device_name']!r} in {joined['tenant_name']!r}: "
            "revoke it there, and ask for a code of this vault's tenant",
        )
    _join(vault, hub_url, joined, pending, cert_pem)
    os.replace(pending, key_file)
    vault.replica.set_key_path(str(key_file))
    try:
        with HubClient(hub_url, keys=keys, device_id=joined["device_id"], cert_pem=cert_pem) as client:
            old = next((d for d in client.devices() if d["id"] == previous), None)
    except HubUnavailable:
        old = None  # only to tell the user; the rejoin is done
    # Not revoked here: another copy of this vault (a backup restored elsewhere) may still be it.
    return joined, keys, old["name"] if old is not None and not old["revoked"] else None


def _adopt(vault: Vault, keys: DeviceKeys, enrolment: Enrolment, recovered: Keyring) -> Enrolment:
    """Keep the recovered keyring here and wrap it to the device just enrolled."""
    try:
        with HubClient(
            vault.replica.hub_url or "", keys=keys, device_id=vault.device_id, cert_pem=vault.replica.hub_cert
        ) as c:
            keyring = KeyExchange(vault, c, keys).adopt(recovered)
    except TruthvaultError as exc:
        exc.message = f"this device IS enrolled (as {enrolment.device_name!r}), but {exc.message}"
        exc.hint = "finish with 'truthvault keys recover' (the code is spent: do not enrol again)"
        exc.args = (exc.message,)
        raise
    return dataclasses.replace(enrolment, recovered_key=keyring.current)
