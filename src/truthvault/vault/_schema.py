"""The vault's schema version: Alembic revisions, run only when the file is behind."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .._alembic import run_upgrade
from ..errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "migrated",
    "opening",
    "upgrade",
]

#: The newest revision in ``migrations/versions``; a test checks it against Alembic's head.
HEAD_REVISION = "0016"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(path: Path) -> Config:
    """An Alembic config for the vault file at ``path`` (no alembic.ini needed)."""
    # Alembic (and SQLAlchemy under it) is imported only when a file needs migrating: every
    # command opens the vault, and the import alone took a third of a second.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    return cfg


def current_revision(conn: sqlite3.Connection) -> str | None:
    """The revision the file is at, or None for a new file."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else str(row[0])


def upgrade(path: Path, revision: str = "head") -> None:
    """Bring the file at ``path`` up to ``revision`` with Alembic (StorageError if it cannot)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        run_upgrade(alembic_config(path), revision, f"the vault {str(path)!r}")
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot migrate the vault at {path}: {exc}") from exc


@contextmanager
def opening(path: Path) -> Iterator[None]:
    """Hold the vault file's opening lock (a 0600 file beside it) until the block ends.

    Processes opening one vault take turns at it, so of several opening a new vault at the
    same moment one switches it to WAL and migrates it while the others wait, then find it
    done (SQLite's own busy wait does not cover the switch to WAL). Only opening is
    serialised; the lock is released before the vault is used.
    """
    fd = os.open(path.with_name(path.name + ".open-lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, as before
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def migrated(path: Path, conn: sqlite3.Connection) -> None:
    """Bring the file up to the head unless it is there already (call it under ``opening``)."""
    if current_revision(conn) != HEAD_REVISION:
        upgrade(path)
