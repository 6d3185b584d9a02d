"""hub policy versions: each version of a tenant's Cedar policy (text, who set it, when)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Append-only: a new version is a new row; the one in force is the tenant's highest.
    op.create_table(
        "policy_versions",
        sa.Column("tenant_pk", sa.Integer, sa.ForeignKey("tenants.pk"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("set_by", sa.Text, nullable=False),
        sa.Column("set_device", sa.Text, nullable=False, server_default=""),
        sa.Column("set_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "version", name="pk_policy_versions"),
    )


def downgrade() -> None:
    op.drop_table("policy_versions")
