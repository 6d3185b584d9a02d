"""hub device reports: each device's app version, its last sync as it says, and its unsynced
changes, as it reports them at the end of every sync (offline governance)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per device, replaced by each report; the contract versions it writes under stay
    # in contract_use. A device that never reported (an older client) has no row.
    op.create_table(
        "device_reports",
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("app_version", sa.Text),
        sa.Column("previous_sync_at", sa.Text),
        sa.Column("pending", sa.Integer, nullable=False, server_default="0"),
        sa.Column("parked", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reported_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "device_id", name="pk_device_reports"),
    )


def downgrade() -> None:
    op.drop_table("device_reports")
