"""hub entity contracts: each tenant's versions of its entity types' JSON Schemas, and which
versions its devices use

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per version, never changed once written; ``id`` orders them across tenants and
    # is the marker a device fetches after. The built-in versions (note, task v1) are not stored.
    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_pk", sa.Integer, sa.ForeignKey("tenants.pk"), nullable=False),
        sa.Column("entity_type", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("major", sa.Integer, nullable=False),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("added_at", sa.Text, nullable=False),
        sa.Column("added_by", sa.Text, nullable=False),
        sa.UniqueConstraint("tenant_pk", "entity_type", "version", name="uq_contracts_version"),
    )
    # The versions each device writes under: from what it reports at sync and from the
    # contract_version of the items it pushes. A new version is checked against all of them.
    op.create_table(
        "contract_use",
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("entity_type", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("seen_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "device_id", "entity_type", "version", name="pk_contract_use"),
    )


def downgrade() -> None:
    op.drop_table("contract_use")
    op.drop_table("contracts")
