"""Requests that need approvals from several devices: how many, and each device's sealed one.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``needed`` (1 for every request asked before) and ``approvals`` (a JSON list)."""
    op.execute("ALTER TABLE broker_requests ADD COLUMN needed INTEGER NOT NULL DEFAULT 1")
    op.execute("ALTER TABLE broker_requests ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]'")


def downgrade() -> None:
    """Drop them again."""
    op.execute("ALTER TABLE broker_requests DROP COLUMN approvals")
    op.execute("ALTER TABLE broker_requests DROP COLUMN needed")
