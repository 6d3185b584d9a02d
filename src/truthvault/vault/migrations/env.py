"""Alembic environment for the device vault: online only, on the URL the caller set."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

_url = context.config.get_main_option("sqlalchemy.url")
if _url is None:  # pragma: no cover - _schema.upgrade always sets it
    raise RuntimeError("sqlalchemy.url is not set")
_engine = create_engine(_url)
try:
    with _engine.connect() as connection:
        context.configure(connection=connection, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
finally:
    _engine.dispose()
