"""Enrolling a vault with a hub: the device's keys, the one-time code, and the recovered data key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..crypto import DeviceKeys, Keyring
from ..errors import ConflictState, TruthvaultError
from ..vault import KEY_FILE, Vault
from ._keys import KeyExchange, open_recovery
from ._transport import HubClient

__all__ = ["Enrolment", "enrol_vault", "recovery_keyring"]


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
) -> Enrolment:
    """Enrol this vault's device with the hub at ``hub_url`` with a one-time ``code`` and join it.

    The private keys go to ``device.key`` in the vault's home (0600); only the public halves
    reach the hub. ``recovered`` (from :func:`recovery_keyring`) is kept as the tenant's data
    key and wrapped to this device.
    """
    hub_url = hub_url.rstrip("/")
    if vault.hub_url and (vault.hub_url.rstrip("/") != hub_url or vault.hub_auth == "signed"):
        raise ConflictState(
            f"this vault is already joined to {vault.hub_url} (tenant {vault.tenant_name!r})",
            hint="if its device was revoked, get a new code ('truthvault hub tenant code' on the hub) "
            "and run 'truthvault enroll --rejoin --code -' (unsynced changes are kept); "
            "use another TRUTHVAULT_HOME to enrol with another hub or tenant",
        )
    key_file = vault.home / KEY_FILE
    # A key left by an enrolment that failed half way is used again, never replaced.
    if key_file.exists():
        keys = DeviceKeys.load(key_file)
    else:
        keys = DeviceKeys.generate()
        keys.save(key_file)
    with HubClient(hub_url, cert_pem=cert_pem) as client:
        joined = client.enroll(code, device_name, keys)
    vault.join(
        hub_url=hub_url,
        token=None,
        tenant_id=joined["tenant_id"],
        tenant_name=joined["tenant_name"],
        device_id=joined["device_id"],
        vault_mode=joined["vault_mode"],
        key_path=str(key_file),
        hub_cert=cert_pem,
    )
    enrolment = Enrolment(
        joined["tenant_id"],
        joined["tenant_name"],
        joined["vault_mode"],
        joined["device_id"],
        joined["device_name"],
        keys.fingerprint(),
    )
    if recovered is None:
        return enrolment
    return _adopt(vault, keys, enrolment, recovered)


def _adopt(vault: Vault, keys: DeviceKeys, enrolment: Enrolment, recovered: Keyring) -> Enrolment:
    """Keep the recovered keyring here and wrap it to the device just enrolled."""
    try:
        with HubClient(
            vault.hub_url or "", keys=keys, device_id=vault.device_id, cert_pem=vault.hub_cert
        ) as c:
            keyring = KeyExchange(vault, c, keys).adopt(recovered)
    except TruthvaultError as exc:
        exc.message = f"this device IS enrolled (as {enrolment.device_name!r}), but {exc.message}"
        exc.hint = "finish with 'truthvault keys recover' (the code is spent: do not enrol again)"
        exc.args = (exc.message,)
        raise
    return dataclasses.replace(enrolment, recovered_key=keyring.current)
