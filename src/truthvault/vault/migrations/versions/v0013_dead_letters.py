"""Dead letters: what failed for good on this device (a workflow step, an event, an automation
run), with its error and its input (secrets masked), until someone retries, quarantines or
discards it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the dead-letter table."""
    op.execute(
        """CREATE TABLE dead_letters (
            id TEXT PRIMARY KEY,
            tenant_id TEXT,
            kind TEXT NOT NULL,
            ref TEXT NOT NULL,
            source TEXT NOT NULL,
            error TEXT NOT NULL,
            input TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            first_failed_at TEXT NOT NULL,
            last_failed_at TEXT NOT NULL,
            status TEXT NOT NULL,
            changed_at TEXT NOT NULL,
            changed_by TEXT,
            retried_as TEXT,
            note TEXT
        ) WITHOUT ROWID"""
    )
    op.execute("CREATE UNIQUE INDEX ix_dead_letters_ref ON dead_letters (kind, ref)")
    op.execute("CREATE INDEX ix_dead_letters_status ON dead_letters (status, last_failed_at)")


def downgrade() -> None:
    """Drop it again."""
    op.execute("DROP TABLE dead_letters")
