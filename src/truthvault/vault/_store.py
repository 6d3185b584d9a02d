"""The device vault: one SQLite file (WAL) holding entities, records, events and identity."""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from types import TracebackType

from ..crypto import Keyring
from ..errors import StorageError
from . import _schema
from ._base import VaultBase
from ._transfer import TransferMixin

__all__ = ["DB_NAME", "KEY_FILE", "Vault"]

DB_NAME = "vault.db"
#: An enrolled device's private keys, beside the vault in its home (mode 0600).
KEY_FILE = "device.key"
_DEFAULT_META = {
    "tenant_id": "local",
    "tenant_name": "",
    "vault_mode": "local_first",
    "hub_url": "",
    "hub_token": "",
    "hub_auth": "",
    "key_path": "",
    "hub_cert": "",
    "cursor": "0",
    "tag": "",
    "tag_seq": "0",
    "acked_mutation": "",
    "checksum": "0",
    "clock": "",
    "next_mutation": "1",
    "resyncing": "0",
}


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across application crashes in WAL mode and far faster than FULL.
    conn.execute("PRAGMA synchronous = NORMAL")
    # Without a limit, the WAL file keeps the size of the largest transaction (a bulk import).
    conn.execute("PRAGMA journal_size_limit = 67108864")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


class Vault(TransferMixin, VaultBase):
    """A device's local store; open with :meth:`Vault.open`."""

    @classmethod
    def open(cls, home: Path | str) -> Vault:
        """Open the vault in ``home``, creating the folder (0700) and file (0600) if missing."""
        home = Path(home)
        if not home.exists():
            try:
                home.mkdir(parents=True, mode=0o700)
                home.chmod(0o700)  # mkdir's mode is masked by the umask
            except FileExistsError:
                pass  # another process made it a moment ago
        path = home / DB_NAME
        if not path.exists():
            # Create the file ourselves so it is never readable by others, not even briefly.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            path.chmod(0o600)
        conn: sqlite3.Connection | None = None
        try:
            with _schema.opening(path):
                conn = _connect(path)
                _schema.migrated(path, conn)
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    for key, value in {"device_id": str(uuid.uuid4()), **_DEFAULT_META}.items():
                        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            raise StorageError(
                f"cannot open the vault at {path}: {exc}", hint="is it a truthvault vault file?"
            ) from exc
        return cls(home, path, conn)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Vault({str(self.home)!r})"

    # -- identity ------------------------------------------------------------------
    @property
    def device_id(self) -> str:
        """This device's id (a uuid4 made at creation, or the hub's after join)."""
        return self._meta_str("device_id")

    @property
    def tenant_id(self) -> str:
        """The tenant this vault belongs to ("local" until joined)."""
        return self._meta_str("tenant_id")

    @property
    def tenant_name(self) -> str:
        """The joined tenant's name ("" until joined)."""
        return self._meta_str("tenant_name")

    @property
    def vault_mode(self) -> str:
        """local_first or cloud_first."""
        return self._meta_str("vault_mode")

    @property
    def hub_url(self) -> str | None:
        """The hub this vault syncs with, or None."""
        return self._meta_str("hub_url") or None

    @property
    def hub_token(self) -> str | None:
        """The device's bearer token for the hub, or None (never log it)."""
        return self._meta_str("hub_token") or None

    @property
    def hub_auth(self) -> str | None:
        """How this vault proves itself to its hub: "signed" (enrolled) or "token"; None if not joined."""
        return self._meta_str("hub_auth") or ("token" if self.hub_token else None)

    @property
    def key_path(self) -> str | None:
        """The device's private key file (enrolled devices), or None."""
        stored = self._meta_str("key_path")
        if not stored:
            return None
        path = self.home / stored  # a relative path is the home's; an absolute one stays itself
        if not path.exists():
            # Vaults made before keys were kept by relative path name the key where the folder
            # was then: a moved or renamed folder still holds it.
            for moved in (self.home / path.name, self.home / KEY_FILE):
                if moved.exists():
                    return str(moved)
        return str(path)

    @property
    def hub_cert(self) -> str | None:
        """The hub's TLS certificate (PEM) this device pinned, or None (plain HTTP or not joined)."""
        return self._meta_str("hub_cert") or None

    @property
    def cursor(self) -> int:
        """The last hub sequence number pulled."""
        return int(self._meta_str("cursor") or 0)

    # -- end-to-end encryption ------------------------------------------------------
    def keyring(self) -> Keyring | None:
        """The tenant's data keys (local-first tenants), or None until this device has them."""
        text = self._meta_str("keyring")
        return Keyring.deserialize(text.encode()) if text else None

    def set_keyring(self, keyring: Keyring) -> None:
        """Keep the tenant's data keys here (the file is 0600; they never leave it unwrapped)."""
        with self._tx():
            self._set_meta("keyring", keyring.serialize().decode("ascii"))

    @property
    def resyncing(self) -> bool:
        """True between begin_resync() and finish_resync()."""
        return self._meta_str("resyncing") in ("1", "2")
