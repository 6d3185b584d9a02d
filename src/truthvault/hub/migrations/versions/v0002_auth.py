"""hub auth: device keys, enrolment codes, nonces, access tokens, security events

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # SQLite cannot alter a column in place; batch mode copies the table (PostgreSQL alters it).
    with op.batch_alter_table("devices") as batch:
        # Enrolled devices sign their requests and have no bearer token.
        batch.alter_column("token_hash", existing_type=sa.Text, nullable=True)
        batch.add_column(sa.Column("sign_public", sa.Text))
        batch.add_column(sa.Column("box_public", sa.Text))
        # The signing key before the last rotation, accepted until prev_valid_until.
        batch.add_column(sa.Column("prev_sign_public", sa.Text))
        batch.add_column(sa.Column("prev_valid_until", sa.Text))
        batch.add_column(sa.Column("revoked_at", sa.Text))
    op.create_table(
        "enrol_codes",
        sa.Column("code_hash", sa.Text, primary_key=True),
        sa.Column("tenant_pk", sa.Integer, sa.ForeignKey("tenants.pk"), nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.Column("used_at", sa.Text),
        sa.Column("used_by", sa.Text),
    )
    op.create_table(
        "nonces",
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("nonce", sa.Text, nullable=False),
        # The request's own timestamp (seconds): the nonce is kept until it is outside the window.
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "nonce", name="pk_nonces"),
    )
    op.create_index("ix_nonces_ts", "nonces", ["ts"])
    op.create_table(
        "access_tokens",
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column("device_id", sa.Text, sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
    )
    op.create_index("ix_access_tokens_device", "access_tokens", ["device_id"])
    op.create_table(
        "security_events",
        sa.Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
        # NULL when the request named no known tenant or device (an unknown device, a bad code).
        sa.Column("tenant_pk", sa.Integer),
        sa.Column("device_id", sa.Text),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_security_events_tenant", "security_events", ["tenant_pk", "id"])


def downgrade() -> None:
    op.drop_table("security_events")
    op.drop_table("access_tokens")
    op.drop_table("nonces")
    op.drop_table("enrol_codes")
    with op.batch_alter_table("devices") as batch:
        for column in ("revoked_at", "prev_valid_until", "prev_sign_public", "box_public", "sign_public"):
            batch.drop_column(column)
        batch.alter_column("token_hash", existing_type=sa.Text, nullable=False)
