"""broker requests that need approvals from several devices: how many, and each device's
approval with its own seal (a JSON list), which the hub relays

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("broker_requests", sa.Column("needed", sa.Integer, nullable=False, server_default="1"))
    op.add_column("broker_requests", sa.Column("approvals", sa.Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("broker_requests") as batch:
        batch.drop_column("approvals")
        batch.drop_column("needed")
