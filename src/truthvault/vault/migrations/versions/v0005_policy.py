"""Policy versions: each tenant policy this vault has held (set here, or synced from the hub),
newest last; the one in force is the tenant's newest.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the policy_versions table."""
    op.execute(
        """CREATE TABLE policy_versions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            text TEXT NOT NULL,
            set_by TEXT NOT NULL,
            set_at TEXT NOT NULL,
            origin TEXT NOT NULL
        )"""
    )
    op.execute("CREATE INDEX policy_versions_tenant ON policy_versions (tenant_id, seq)")


def downgrade() -> None:
    """Drop it again."""
    op.execute("DROP TABLE policy_versions")
