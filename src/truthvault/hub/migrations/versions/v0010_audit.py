"""hub audit log: per tenant, an RFC 6962 Merkle tree over canonical audit entries

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row a tenant: the tree's size and root, and its right edge (the complete subtrees the
    # size decomposes into, concatenated), so an append reads no node. Appends lock this row.
    op.create_table(
        "audit_heads",
        sa.Column("tenant_pk", sa.Integer, sa.ForeignKey("tenants.pk"), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("edge", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        # the newest checkpoint the hub signed for this tenant (JSON), kept to verify against
        sa.Column("checkpoint", sa.Text),
    )
    # The leaves: each entry's canonical bytes and its leaf hash; device entries name their batch.
    op.create_table(
        "audit_entries",
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False, server_default=""),
        sa.Column("batch_seq", sa.BigInteger),
        sa.PrimaryKeyConstraint("tenant_pk", "idx", name="pk_audit_entries"),
    )
    # Every complete subtree above the leaves: (level, idx) covers leaves [idx << level,
    # (idx + 1) << level); span_end is that end, the order a verification streams them in.
    op.create_table(
        "audit_nodes",
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.Column("span_end", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "level", "idx", name="pk_audit_nodes"),
    )
    op.create_index("ix_audit_nodes_span", "audit_nodes", ["tenant_pk", "span_end", "level"])
    # Entries written but not yet in the tree: an action's transaction adds its entry here
    # (taking no lock), and a sequencer moves them into the tree in batches, in id order.
    op.create_table(
        "audit_pending",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_audit_pending_tenant", "audit_pending", ["tenant_pk", "id"])
    # A device's signed batches: the signature over the batch's leaf hashes and the key that
    # made it, so anyone can check later that the hub did not forge the device's entries.
    op.create_table(
        "audit_batches",
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("first_idx", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sign_public", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "device_id", "seq", name="pk_audit_batches"),
    )


def downgrade() -> None:
    op.drop_table("audit_batches")
    op.drop_index("ix_audit_pending_tenant", table_name="audit_pending")
    op.drop_table("audit_pending")
    op.drop_index("ix_audit_nodes_span", table_name="audit_nodes")
    op.drop_table("audit_nodes")
    op.drop_table("audit_entries")
    op.drop_table("audit_heads")
