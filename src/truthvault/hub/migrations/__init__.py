"""The hub database's Alembic migrations, and the helpers that run them on open."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["HEAD_REVISION", "SCRIPT_LOCATION", "alembic_config", "sqlalchemy_url", "upgrade"]

#: The newest revision in ``versions/``; a store whose ``alembic_version`` says this is
#: up to date and opens without importing Alembic (a test checks it against Alembic's head).
HEAD_REVISION = "0017"

SCRIPT_LOCATION = Path(__file__).resolve().parent

# Alembic keeps the running migration in module globals (alembic.context, alembic.op), so
# one process runs one at a time; several processes are serialised by env.py's database lock.
_upgrade_lock = threading.Lock()


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL Alembic needs for a hub URL (PostgreSQL) or SQLite file path."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return "sqlite:///" + str(Path(url).resolve())


def alembic_config(url: str) -> Config:
    """An Alembic config for the hub database at ``url`` (a hub URL or a SQLite path)."""
    from alembic.config import Config

    cfg = Config()
    # The ini layer interpolates '%', so paths are escaped and the URL (which may hold
    # percent-encoded options) travels in attributes instead.
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    cfg.attributes["url"] = sqlalchemy_url(url)
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the hub database at ``url`` to ``revision``."""
    from ..._alembic import run_upgrade

    with _upgrade_lock:
        run_upgrade(alembic_config(url), revision, "the hub database")
