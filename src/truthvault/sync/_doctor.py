"""``truthvault doctor``: what a device checks of itself and its hub, and what to do about each
problem. Each check runs on its own (one that fails does not hide the others) and says
``ok``, ``warn`` or ``fail``, with a fix for anything that is not ok.

The vault file is checked before it is opened (opening migrates it): integrity, permissions,
schema revision. Then the hub: reached as the device syncs (its pinned certificate, its
credentials), the clock against the hub's ``Date``, the pending queue, the audit checkpoint kept.
"""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from ..errors import CertificateChanged, Forbidden, HubUnavailable, TruthvaultError, Unauthorized
from ..vault import Vault

__all__ = ["CLOCK_FAIL_S", "CLOCK_WARN_S", "DoctorCheck", "diagnose"]

#: a clock this far off the hub's is worth fixing; past the hub's signature window (300 s by
#: default) signed requests are refused
CLOCK_WARN_S = 30.0
CLOCK_FAIL_S = 240.0
#: changes waiting to be pushed that are worth a word
_PENDING_WARN = 10_000


@dataclass(frozen=True, slots=True)
class DoctorCheck:
    """One check: its name, ``ok``/``warn``/``fail``, what was found, and what to do."""

    name: str
    status: str
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def _file_checks(home: Path) -> list[DoctorCheck]:
    from ..vault._db import DB_NAME
    from ..vault._schema import HEAD_REVISION, current_revision

    path = home / DB_NAME
    if not path.is_file():
        return [DoctorCheck("vault.file", "fail", f"no vault at {path}", "create one: 'truthvault init'")]
    checks = []
    if _private(path):
        checks.append(DoctorCheck("vault.permissions", "ok", f"{path} is 0600"))
    else:
        mode = oct(stat.S_IMODE(path.stat().st_mode))[2:]
        checks.append(DoctorCheck("vault.permissions", "fail", f"{path} is {mode}: others can read it",
                            f"chmod 600 {path}"))  # fmt: skip
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        ) as c:
            result = [str(r[0]) for r in c.execute("PRAGMA integrity_check").fetchall()]
            revision = current_revision(c)
    except sqlite3.Error as exc:
        return [*checks, DoctorCheck("vault.file", "fail", f"cannot read {path}: {exc}",
                               "restore the vault from a backup, or 'truthvault init' a new one and sync")]  # fmt: skip
    if result == ["ok"]:
        checks.append(DoctorCheck("vault.file", "ok", "integrity check passed"))
    else:
        checks.append(DoctorCheck("vault.file", "fail", f"integrity check: {'; '.join(result[:3])}",
                            "export what can be read ('truthvault export'), then restore from a backup or re-sync"))  # fmt: skip
    if revision == HEAD_REVISION:
        checks.append(DoctorCheck("vault.schema", "ok", f"schema revision {revision}"))
    elif revision is not None and revision < HEAD_REVISION:
        checks.append(DoctorCheck("vault.schema", "warn", f"schema revision {revision}, this truthvault uses {HEAD_REVISION}",
                            "it is migrated the next time a command opens it (e.g. 'truthvault list')"))  # fmt: skip
    else:
        checks.append(DoctorCheck("vault.schema", "fail", f"schema revision {revision}, this truthvault knows up to {HEAD_REVISION}",
                            "upgrade truthvault: a newer version wrote this vault"))  # fmt: skip
    return checks


def _key_checks(vault: Vault) -> list[DoctorCheck]:
    checks = []
    key_path = vault.replica.key_path
    if key_path is None:
        if vault.replica.hub_url:
            checks.append(
                DoctorCheck("keys.device", "ok", "this device signs with a bearer token (no key file)")
            )
    elif not Path(key_path).is_file():
        checks.append(DoctorCheck("keys.device", "fail", f"the device key {key_path} is missing",
                            "enrol this device again: 'truthvault enroll --hub URL --code CODE'"))  # fmt: skip
    elif not _private(Path(key_path)):
        checks.append(DoctorCheck("keys.device", "fail", f"the device key {key_path} is readable by others",
                            f"chmod 600 {key_path}, then rotate it: 'truthvault keys rotate-device'"))  # fmt: skip
    else:
        checks.append(DoctorCheck("keys.device", "ok", f"{key_path} is 0600"))
    if vault.vault_mode == "local_first" and vault.replica.hub_url:
        if vault.replica.keyring() is None:
            checks.append(DoctorCheck("keys.keyring", "fail", "no tenant keyring: encrypted payloads cannot be read",
                                "'truthvault sync' fetches it when another device shared it; else 'truthvault keys recover'"))  # fmt: skip
        else:
            checks.append(DoctorCheck("keys.keyring", "ok", "the tenant keyring is here"))
    return checks


def _hub_checks(vault: Vault, connect: Callable[[Vault], Any]) -> list[DoctorCheck]:
    url = vault.replica.hub_url
    if not url:
        return [DoctorCheck("hub.reachable", "warn", "this vault is not joined to a hub (nothing syncs)",
                      "enrol it: 'truthvault enroll --hub URL --code CODE'")]  # fmt: skip
    checks = []
    if url.startswith("https://"):
        from ._tls import cert_fingerprint, presented_fingerprint

        pinned = vault.replica.hub_cert
        if pinned is None:
            checks.append(DoctorCheck("hub.tls", "warn", "no certificate is pinned for this https hub",
                                "pin it: 'truthvault hub repin FINGERPRINT'"))  # fmt: skip
        else:
            now = presented_fingerprint(url)
            if now is not None and now != cert_fingerprint(pinned):
                checks.append(DoctorCheck("hub.tls", "fail", f"the hub presents certificate {now[:23]}..., not the pinned one",
                                    "if its admin replaced it, check the fingerprint with them and run 'truthvault hub repin FINGERPRINT'"))  # fmt: skip
            else:
                checks.append(
                    DoctorCheck("hub.tls", "ok", f"pinned certificate {cert_fingerprint(pinned)[:23]}...")
                )
    elif not any(h in url for h in ("//127.0.0.1", "//localhost", "//[::1]")):
        checks.append(DoctorCheck("hub.tls", "warn", f"{url} is plain HTTP off this machine: traffic can be read",
                            "serve the hub with --tls-cert/--tls-key and enrol over https"))  # fmt: skip
    try:
        with connect(vault) as client:
            before = time.time()
            response = client._request("GET", "/v1/whoami")
            after = time.time()
            checks.append(
                DoctorCheck(
                    "hub.reachable", "ok", f"{url} answers as device {response.json().get('device_name')!r}"
                )
            )
            checks.append(_clock_check(response.headers.get("date"), (before + after) / 2))
            checks.append(_audit_check(vault, client))
    except CertificateChanged as exc:
        checks.append(
            DoctorCheck(
                "hub.reachable", "fail", exc.message, exc.hint or "'truthvault hub repin FINGERPRINT'"
            )
        )
    except HubUnavailable as exc:
        checks.append(
            DoctorCheck(
                "hub.reachable", "fail", exc.message, "is the hub running? check the URL and the network"
            )
        )
    except (Unauthorized, Forbidden) as exc:
        checks.append(DoctorCheck("hub.reachable", "fail", f"the hub refuses this device: {exc.message}",
                            exc.hint or "ask the hub's admin; enrol this device again if it was revoked"))  # fmt: skip
    except TruthvaultError as exc:
        checks.append(DoctorCheck("hub.reachable", "fail", exc.message, exc.hint))
    return checks


def _clock_check(date: str | None, local: float) -> DoctorCheck:
    if not date:
        return DoctorCheck("clock.skew", "warn", "the hub sent no Date header", None)
    skew = local - parsedate_to_datetime(date).timestamp()
    shown = f"this clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the hub's"
    fix = "set the system clock from the network (e.g. 'timedatectl set-ntp true')"
    if abs(skew) >= CLOCK_FAIL_S:
        return DoctorCheck(
            "clock.skew", "fail", shown + ": signed requests are refused past the hub's window", fix
        )
    if abs(skew) >= CLOCK_WARN_S:
        return DoctorCheck("clock.skew", "warn", shown, fix)
    return DoctorCheck(
        "clock.skew", "ok", f"within {max(1.0, abs(skew)):.0f} s of the hub's (its Date header)"
    )


def _audit_check(vault: Vault, client: Any) -> DoctorCheck:
    from ..kernel import AuditInconsistent
    from ._audit import AuditStep
    from ._connect import device_keys

    kept = vault.audit.checkpoint()
    if kept is None:
        return DoctorCheck("audit.checkpoint", "warn", "no audit checkpoint kept yet",
                     "'truthvault sync' keeps the hub's signed checkpoint; 'truthvault audit verify' checks it")  # fmt: skip
    try:
        new = AuditStep(vault, client, device_keys(vault)).fetch_checkpoint()
    except AuditInconsistent as exc:
        return DoctorCheck("audit.checkpoint", "fail", exc.message,
                     "do not trust this hub's log: tell its admin; keep this vault as evidence")  # fmt: skip
    except TruthvaultError as exc:
        return DoctorCheck(
            "audit.checkpoint", "warn", f"cannot fetch the hub's checkpoint: {exc.message}", exc.hint
        )
    return DoctorCheck(
        "audit.checkpoint", "ok", f"the hub's log (size {new.size}) extends the kept one (size {kept.size})"
    )


def _queue_check(vault: Vault, reachable: bool) -> DoctorCheck:
    pending = vault.replica.pending_count()
    outbox = vault.audit.pending()
    shown = f"{pending} change(s) and {outbox} audit entr(y/ies) waiting to be pushed"
    if pending == 0 and outbox == 0:
        return DoctorCheck("sync.pending", "ok", "nothing waiting to be pushed")
    if pending >= _PENDING_WARN or (not reachable and vault.replica.hub_url):
        return DoctorCheck("sync.pending", "warn", shown, "'truthvault sync' sends them once the hub answers")
    return DoctorCheck("sync.pending", "ok", shown + "; the next sync sends them")


def diagnose(home: Path | str, connect: Callable[[Vault], Any] | None = None) -> list[DoctorCheck]:
    """Every check of the vault in ``home`` and its hub (reached with ``connect``, by default
    as the device syncs)."""
    from ._connect import connect as default_connect

    home = Path(home).expanduser()
    checks = _file_checks(home)
    if any(c.status == "fail" and c.name in ("vault.file", "vault.schema") for c in checks):
        return checks  # opening it would fail, or migrate what a newer version wrote
    with Vault.open(home) as vault:
        checks += _key_checks(vault)
        hub = _hub_checks(vault, connect or default_connect)
        checks += hub
        reachable = any(c.name == "hub.reachable" and c.status == "ok" for c in hub)
        checks.append(_queue_check(vault, reachable))
    order = ["vault.", "keys.", "hub.", "clock.", "sync.", "audit."]
    return sorted(checks, key=lambda c: next(i for i, p in enumerate(order) if c.name.startswith(p)))
