"""Alembic environment for the hub database; the URL comes from ``config.attributes``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

# Any constant works; it only has to be the same in every hub process.
_MIGRATION_LOCK = 0x7476_6875_6200


def _run_offline(url: str) -> None:
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_online(url: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection)
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # Several hub processes may start at once on one database: the first
                    # migrates, the others wait here and then find nothing left to do.
                    connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
                context.run_migrations()
    finally:
        engine.dispose()


_url = str(context.config.attributes["url"])
if context.is_offline_mode():
    _run_offline(_url)
else:
    _run_online(_url)
