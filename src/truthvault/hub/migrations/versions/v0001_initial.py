"""hub schema: tenants, devices, entities, records, sync_events

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only makes "INTEGER PRIMARY KEY" an auto-numbered rowid; PostgreSQL wants 64 bits.
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tenant_key() -> sa.Column[int]:
    # No foreign key on the big tables: their rows are written under the tenant's row lock
    # by code that has just read the tenant, tenants are never deleted, and PostgreSQL
    # would check the key row by row, which is half the cost of a bulk insert.
    return sa.Column("tenant_pk", sa.Integer, nullable=False)


def upgrade() -> None:
    op.create_table(
        "tenants",
        # The integer key the big tables use; the UUID is what devices see.
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("vault_mode", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("head_seq", sa.BigInteger, nullable=False, server_default="0"),
        # The sum of item digests modulo 2**64, stored as a signed 64-bit integer.
        sa.Column("checksum", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("purge_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.UniqueConstraint("id", name="uq_tenants_id"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_pk", sa.Integer, sa.ForeignKey("tenants.pk"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("last_seen_at", sa.Text),
        sa.Column("last_mutation", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("tenant_pk", "name", name="uq_devices_tenant_name"),
        sa.UniqueConstraint("token_hash", name="uq_devices_token_hash"),
    )
    op.create_table(
        "entities",
        _tenant_key(),
        sa.Column("entity_id", sa.Text, nullable=False),
        sa.Column("entity_type", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("truth_level", sa.SmallInteger, nullable=False),
        sa.Column("last_modified_at", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("base_version", sa.BigInteger, nullable=False),
        sa.Column("base_clock", sa.Text),
        sa.Column("deleted", sa.Boolean, nullable=False),
        # The SyncItem as pulled (msgspec JSON with its seq): a pull joins these blobs.
        sa.Column("wire", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "entity_id", name="pk_entities"),
    )
    op.create_index("ix_entities_seq", "entities", ["tenant_pk", "seq"], unique=True)
    op.create_index(
        "ix_entities_tombstones",
        "entities",
        ["last_modified_at"],
        sqlite_where=sa.text("deleted"),
        postgresql_where=sa.text("deleted"),
    )
    op.create_table(
        "records",
        _tenant_key(),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("entity_id", sa.Text, nullable=False),
        sa.Column("entity_type", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("decided_at", sa.Text),
        sa.Column("resolution", sa.Text),
        sa.Column("seq", sa.BigInteger, nullable=False),
        # The Record as pulled, re-encoded whenever its status changes.
        sa.Column("wire", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "id", name="pk_records"),
    )
    op.create_index("ix_records_seq", "records", ["tenant_pk", "seq"], unique=True)
    op.create_table(
        "sync_events",
        sa.Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
        _tenant_key(),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text),
        sa.Column("entity_id", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_sync_events_tenant", "sync_events", ["tenant_pk", "id"])


def downgrade() -> None:
    op.drop_table("sync_events")
    op.drop_table("records")
    op.drop_table("entities")
    op.drop_table("devices")
    op.drop_table("tenants")
