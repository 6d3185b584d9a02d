"""The audit outbox numbers its rows as SQLite's rowid does, without AUTOINCREMENT.

AUTOINCREMENT kept a counter in ``sqlite_sequence``, one more page written by every action's
commit, so that an id is never used twice. The outbox needs no such promise: its ids only order
the entries it holds (a new row's id is above every row there), and no id is kept elsewhere.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _rebuild(id_column: str) -> None:
    op.execute(f"CREATE TABLE audit_outbox_new ({id_column}, entry BLOB NOT NULL, batch_seq INTEGER)")
    op.execute(
        "INSERT INTO audit_outbox_new (id, entry, batch_seq) SELECT id, entry, batch_seq FROM audit_outbox"
    )
    op.execute("DROP TABLE audit_outbox")
    op.execute("ALTER TABLE audit_outbox_new RENAME TO audit_outbox")


def upgrade() -> None:
    """Copy the outbox into a table keyed by a plain rowid (its entries and order kept)."""
    _rebuild("id INTEGER PRIMARY KEY")
    op.execute("DELETE FROM sqlite_sequence WHERE name = 'audit_outbox'")


def downgrade() -> None:
    """Back to AUTOINCREMENT."""
    _rebuild("id INTEGER PRIMARY KEY AUTOINCREMENT")
