"""Webhook deliveries a sync took from the hub, for the runner to start as runs.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the inbox of webhook deliveries (one row a delivery, until its run is started)."""
    op.execute(
        """CREATE TABLE webhook_inbox (
            delivery_id TEXT PRIMARY KEY,
            rule_id TEXT NOT NULL,
            received_at TEXT NOT NULL,
            body TEXT NOT NULL
        ) WITHOUT ROWID"""
    )


def downgrade() -> None:
    """Drop it again."""
    op.execute("DROP TABLE webhook_inbox")
