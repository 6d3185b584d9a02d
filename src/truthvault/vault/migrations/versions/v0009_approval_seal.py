"""An approval decision's seal (``<key id>:<hex HMAC>``, see truthvault.kernel._approval_seal).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the seal column (decisions taken before it have none: they are not redeemed)."""
    op.execute("ALTER TABLE broker_requests ADD COLUMN seal TEXT")


def downgrade() -> None:
    """Drop it again."""
    op.execute("ALTER TABLE broker_requests DROP COLUMN seal")
