"""hub head marks: when the hub reached which sequence number, so tombstones are purged by
the time the hub received them rather than by the clock of the device that wrote them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row a tenant per purge run: (when, the tenant's head then).
    op.create_table(
        "head_marks",
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("head", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_head_marks", "head_marks", ["tenant_pk", "at"])
    # Purges now find tombstones by sequence number, not by clock.
    op.drop_index("ix_entities_tombstones", "entities")
    op.create_index(
        "ix_entities_tombstone_seq",
        "entities",
        ["tenant_pk", "seq"],
        sqlite_where=sa.text("deleted"),
        postgresql_where=sa.text("deleted"),
    )


def downgrade() -> None:
    op.drop_index("ix_entities_tombstone_seq", "entities")
    op.create_index(
        "ix_entities_tombstones",
        "entities",
        ["last_modified_at"],
        sqlite_where=sa.text("deleted"),
        postgresql_where=sa.text("deleted"),
    )
    op.drop_index("ix_head_marks", "head_marks")
    op.drop_table("head_marks")
