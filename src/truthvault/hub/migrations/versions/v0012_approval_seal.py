"""broker requests: the deciding device's seal of a decision, which the hub relays

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("broker_requests", sa.Column("seal", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("broker_requests") as batch:
        batch.drop_column("seal")
