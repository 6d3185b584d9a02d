"""Encrypted backups of a vault to a folder: ``truthvault backup now|schedule|open``.

A backup is the vault's export (every entity with its truth fields, as JSON Lines, tombstones
too) compressed and sealed under the vault's **backup key**, a random 256-bit key kept in
``backup.key`` in the vault's folder (0600), made at the first backup: keep a copy of it
elsewhere, since without it no backup can be read. The file::

    TVBACKUP1\\n                          (magic)
    <16-byte random file id>
    chunks: <4-byte big-endian length><AES-256-GCM ciphertext and tag of up to 1 MiB>

Each chunk's nonce is the file id's first 8 bytes and the chunk's number; its associated data
is the file id, the chunk's number and whether it is the last (the STREAM construction), so a
chunk dropped, reordered, cut short or taken from another backup fails to open. A backup is
written to a temporary name, flushed to disk and renamed, so a backup that exists is whole.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..crypto import read_private
from ..errors import DecryptionFailed, InvalidInput, NotFound

if TYPE_CHECKING:
    from ._vault import Vault

__all__ = [
    "BACKUP_KEY_FILE",
    "backup_key",
    "backup_name",
    "open_backup",
    "open_backup_to",
    "prune",
    "read_key",
    "schedule_of",
    "set_schedule",
    "write_backup",
]

BACKUP_KEY_FILE = "backup.key"
_MAGIC = b"TVBACKUP1\n"
_CHUNK = 1 << 20
_NAME = re.compile(r"^truthvault-(\d{8}T\d{6}Z)\.tvbak$")


def backup_key(vault: Vault, *, create: bool = False) -> bytes:
    """The vault's backup key (made, 0600, with ``create``); NotFound without one."""
    path = vault.home / BACKUP_KEY_FILE
    if not path.exists():
        if not create:
            raise NotFound(f"no backup key at {path}", hint="'truthvault backup now --to DIR' makes one")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32).hex().encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
    return read_key(path)


def read_key(path: Path) -> bytes:
    """The backup key in ``path`` (64 hex digits); refused if others may read the file."""
    raw = read_private(path, "backup key", hint=f"chmod 600 {path}")
    if raw is None:
        raise NotFound(f"no backup key at {path}")
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) != 32:
        raise InvalidInput(f"{path} does not hold a backup key (64 hex digits)")
    return key


def backup_name(slot: str) -> str:
    """The file name of the backup made for ``slot`` (an ISO time): one backup per slot."""
    digits = re.sub(r"[^0-9]", "", slot)[:14].ljust(14, "0")
    return f"truthvault-{digits[:8]}T{digits[8:14]}Z.tvbak"


def write_backup(vault: Vault, folder: Path, name: str) -> Path:
    """Write the vault's sealed backup into ``folder`` as ``name`` (kept if it is there
    already: a step run again does not write it twice). The export streams through: a backup
    of a large vault holds at most one chunk in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.exists():
        return target
    key = backup_key(vault, create=True)
    tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            sealed = _SealedWriter(f, key)
            with gzip.GzipFile(fileobj=sealed, mode="wb", mtime=0) as packed:
                vault.export_jsonl(packed)  # type: ignore[arg-type]
            sealed.finish()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


class _SealedWriter(io.RawIOBase):
    """Bytes written become sealed chunks; the last one, marked so, at :meth:`finish`."""

    def __init__(self, f: IO[bytes], key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._f, self._cipher = f, AESGCM(key)
        self._id = secrets.token_bytes(16)
        self._buf = bytearray()
        self._held: bytes | None = None  # a full chunk, written once the next one shows it is not last
        self._n = 0
        f.write(_MAGIC + self._id)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._buf += data
        while len(self._buf) >= _CHUNK:
            chunk = bytes(self._buf[:_CHUNK])
            del self._buf[:_CHUNK]
            if self._held is not None:
                self._seal(self._held, last=False)
            self._held = chunk
        return len(data)

    def finish(self) -> None:
        if self._held is not None:
            if self._buf:
                self._seal(self._held, last=False)
                self._held = bytes(self._buf)
            self._seal(self._held, last=True)
        else:
            self._seal(bytes(self._buf), last=True)

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        sealed = self._cipher.encrypt(_nonce(self._id, self._n), chunk, _ad(self._id, self._n, last))
        self._f.write(struct.pack(">I", len(sealed)) + sealed)
        self._n += 1


def open_backup(path: Path, key: bytes, out: IO[bytes]) -> int:
    """Write the JSON Lines a backup holds to ``out``, a chunk at a time; how many bytes.
    DecryptionFailed if it was changed, cut short or sealed under another key."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cipher = AESGCM(key)
    unpack = zlib.decompressobj(wbits=31)  # gzip
    written = 0
    with path.open("rb") as f:
        head = f.read(len(_MAGIC) + 16)
        if not head.startswith(_MAGIC) or len(head) != len(_MAGIC) + 16:
            raise InvalidInput(f"{path} is not a truthvault backup")
        file_id = head[len(_MAGIC) :]
        chunks = _chunks(f, path)
        current = next(chunks, None)
        n = 0
        while current is not None:
            following = next(chunks, None)
            try:
                plain = cipher.decrypt(_nonce(file_id, n), current, _ad(file_id, n, following is None))
            except InvalidTag:
                raise DecryptionFailed(
                    f"{path}: chunk {n} does not open: the file was changed or cut, or another key sealed it"
                ) from None
            data = unpack.decompress(plain)
            out.write(data)
            written += len(data)
            current, n = following, n + 1
    if n == 0:
        raise DecryptionFailed(f"{path} is cut short")
    rest = unpack.flush()
    out.write(rest)
    return written + len(rest)


def open_backup_to(path: Path, key: bytes, target: Path) -> int:
    """:func:`open_backup` into the file ``target``: made 0600 (it is the vault in plain text)
    under a temporary name and renamed once the whole backup opened, so a backup that does not
    open leaves nothing a person could import thinking it whole."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            size = open_backup(path, key, f)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def _chunks(f: IO[bytes], path: Path) -> Iterator[bytes]:
    while header := f.read(4):
        if len(header) != 4:
            raise DecryptionFailed(f"{path} is cut short")
        (size,) = struct.unpack(">I", header)
        if size > _CHUNK + 16:  # a changed length must not make us read (allocate) 4 GiB
            raise DecryptionFailed(f"{path}: a chunk claims {size} bytes, more than a chunk holds")
        chunk = f.read(size)
        if len(chunk) != size:
            raise DecryptionFailed(f"{path} is cut short")
        yield chunk


def _nonce(file_id: bytes, n: int) -> bytes:
    return file_id[:8] + struct.pack(">I", n)


def _ad(file_id: bytes, n: int, last: bool) -> bytes:
    return file_id + struct.pack(">I?", n, last)


def prune(folder: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` backups in ``folder``; the names deleted."""
    found = sorted(p.name for p in folder.glob("truthvault-*.tvbak") if _NAME.match(p.name))
    gone = found[:-keep] if keep > 0 else []
    for name in gone:
        (folder / name).unlink(missing_ok=True)
    return gone


# -- the schedule ---------------------------------------------------------------------------
_SCHEDULE = "backup_schedule"


def schedule_of(vault: Vault) -> dict[str, object] | None:
    """The vault's backup schedule (``to``, ``every`` or ``cron``, ``keep``, ``last``), or None."""
    import json

    text = vault._db.meta_str(_SCHEDULE)
    return json.loads(text) if text else None


def set_schedule(vault: Vault, schedule: dict[str, object] | None) -> None:
    """Keep (or, with None, end) the vault's backup schedule: ``to`` (a folder), ``every`` or
    ``cron``, ``keep``; InvalidInput naming what is wrong. It is this device's: it does not sync."""
    import json

    if schedule is not None:
        from pydantic import ValidationError

        from ..kernel._automation import ScheduleTrigger

        if not schedule.get("to"):
            raise InvalidInput("to: the folder to back up into")
        try:
            ScheduleTrigger(on="schedule", every=schedule.get("every"), cron=schedule.get("cron"))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise InvalidInput(f"schedule: {exc.errors()[0]['msg']}") from None
    with vault._db.tx():
        vault._db.set_meta(_SCHEDULE, json.dumps(schedule) if schedule else "")
