"""Automations: the writes they have yet to look at, and each scheduled rule's last run.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the inbox of writes and the state of scheduled rules."""
    op.execute(
        """CREATE TABLE automation_inbox (
            n INTEGER PRIMARY KEY,
            entity_id TEXT NOT NULL,
            version INTEGER NOT NULL
        )"""
    )
    op.execute(
        """CREATE TABLE automation_state (
            rule_id TEXT PRIMARY KEY,
            last_slot TEXT NOT NULL
        ) WITHOUT ROWID"""
    )


def downgrade() -> None:
    """Drop them again."""
    op.execute("DROP TABLE automation_state")
    op.execute("DROP TABLE automation_inbox")
