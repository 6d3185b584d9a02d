"""hub key blobs: tenant keyrings wrapped to devices, and the recovery envelope

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Opaque to the hub: each blob is a wrapped-key envelope only a device (or the passphrase) opens.
    op.create_table(
        "key_blobs",
        sa.Column("tenant_pk", sa.Integer, sa.ForeignKey("tenants.pk"), nullable=False),
        # 'device' (wrapped to device_id's box key), 'recovery' (scrypt envelope), or 'genesis'
        # (the marker of the device that created the tenant's keyring, so no other device does).
        sa.Column("kind", sa.Text, nullable=False),
        # '' for the tenant-wide kinds: a NULL would not take part in the primary key.
        sa.Column("device_id", sa.Text, nullable=False, server_default=""),
        sa.Column("blob", sa.Text, nullable=False),
        # The wrapped keyring's current key id, as the uploading device declared it.
        sa.Column("kid", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "kind", "device_id", name="pk_key_blobs"),
    )


def downgrade() -> None:
    op.drop_table("key_blobs")
