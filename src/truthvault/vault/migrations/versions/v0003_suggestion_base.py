"""Suggestions remember the content they were proposed against, so that accepting one after
the entity changed applies only what the suggestion changed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add records.base: the payload the suggestion was made on (NULL when not known)."""
    op.execute("ALTER TABLE records ADD COLUMN base BLOB")


def downgrade() -> None:
    """Drop records.base."""
    op.execute("ALTER TABLE records DROP COLUMN base")
