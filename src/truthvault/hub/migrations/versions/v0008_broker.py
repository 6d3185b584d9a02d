"""hub input broker: the tenants' requests for a person's input (approvals, confirmations,
PINs, forms, secrets), numbered per tenant so that devices fetch what changed; and a
tenant's PIN for what the hub itself asks (never a form's or a secret's value)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_requests",
        sa.Column("tenant_pk", sa.Integer, sa.ForeignKey("tenants.pk"), nullable=False),
        sa.Column("id", sa.Text, nullable=False),
        # the tenant's change number of the request's last change: devices fetch after theirs
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("risk", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("input_hash", sa.Text, nullable=False),
        sa.Column("targets", sa.Text, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("decided_by", sa.Text),
        sa.Column("decided_device", sa.Text),
        sa.Column("decided_at", sa.Float),
        sa.Column("deny_reason", sa.Text),
        sa.Column("provided", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("tenant_pk", "id", name="pk_broker_requests"),
        sa.UniqueConstraint("tenant_pk", "seq", name="uq_broker_requests_seq"),
    )
    op.create_table(
        "broker_pins",
        sa.Column("tenant_pk", sa.Integer, sa.ForeignKey("tenants.pk"), primary_key=True),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("salt", sa.Text, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("r", sa.Integer, nullable=False),
        sa.Column("p", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("set_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("broker_pins")
    op.drop_table("broker_requests")
