"""Workflow steps: each completed step of a saga, kept in the transaction of its effects.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the ledger of completed steps."""
    op.execute(
        """CREATE TABLE workflow_steps (
            workflow_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            phase TEXT NOT NULL,
            output TEXT NOT NULL,
            PRIMARY KEY (workflow_id, step, phase)
        ) WITHOUT ROWID"""
    )


def downgrade() -> None:
    """Drop it again."""
    op.execute("DROP TABLE workflow_steps")
