"""workflow steps: each completed step of a saga, kept in the transaction of its effects

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_steps",
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("phase", sa.Text, primary_key=True),
        sa.Column("output", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workflow_steps")
