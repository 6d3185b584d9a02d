"""Entity contracts: the versions of each entity type's JSON Schema this vault knows.

- ``contracts``: one row per (entity type, version), never changed once written; the built-in
  versions (note and task v1) are not stored, they come with the code. ``hub_marker`` is the
  hub's number for a version fetched from it (or sent to it), NULL for one made here only.
- ``meta.contracts_marker``: the highest hub marker fetched, what the next sync asks after.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the contracts table."""
    op.execute(
        """CREATE TABLE contracts (
            entity_type TEXT NOT NULL,
            version INTEGER NOT NULL,
            major INTEGER NOT NULL,
            schema TEXT NOT NULL,
            added_at TEXT NOT NULL,
            hub_marker INTEGER,
            PRIMARY KEY (entity_type, version)
        )"""
    )


def downgrade() -> None:
    """Drop it again."""
    op.execute("DELETE FROM meta WHERE key = 'contracts_marker'")
    op.execute("DROP TABLE contracts")
