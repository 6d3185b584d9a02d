"""The automation inbox keeps one row an entity: an index to find it by.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index the inbox by entity (a new write replaces the entity's older row)."""
    op.execute("CREATE INDEX automation_inbox_entity ON automation_inbox (entity_id)")


def downgrade() -> None:
    op.execute("DROP INDEX automation_inbox_entity")
