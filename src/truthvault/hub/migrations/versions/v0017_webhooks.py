"""webhooks: each hook a device registered (its secret's hash only) and the deliveries that wait
for the device that runs the hook's rule

``webhooks``: a hook's public id (in its URL; unique across tenants, so that a hook id can only
ever deliver into the tenant that registered it), its tenant, the SHA-256 of its secret, the
rule it feeds and the device that registered it.
``webhook_deliveries``: a delivery's id, its hook, its tenant, when it arrived and its body (a
JSON object, at most 256 KiB), kept until the device that runs the rule takes it and acks.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# SQLite only makes "INTEGER PRIMARY KEY" an auto-numbered rowid; PostgreSQL wants 64 bits.
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("hook_id", sa.Text, primary_key=True),
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("rule_id", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("rotated_at", sa.Text, nullable=False),
    )
    op.create_index("ix_webhooks_tenant", "webhooks", ["tenant_pk"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("n", _BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("hook_id", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_webhook_deliveries_hook", "webhook_deliveries", ["tenant_pk", "hook_id", "n"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_hook", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhooks_tenant", "webhooks")
    op.drop_table("webhooks")
