"""The vault's schema version: Alembic revisions, run only when the file is behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["HEAD_REVISION", "MIGRATIONS_DIR", "alembic_config", "current_revision", "upgrade"]

#: The newest revision in ``migrations/versions``; a test checks it against Alembic's head.
HEAD_REVISION = "0002"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(path: Path) -> Config:
    """An Alembic config for the vault file at ``path`` (no alembic.ini needed)."""
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
    """Bring the file at ``path`` up to ``revision`` with Alembic."""
    command.upgrade(alembic_config(path), revision)
