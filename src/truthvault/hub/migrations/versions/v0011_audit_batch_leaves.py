"""hub audit log: the leaves of device batches, indexed, so a batch that repeats an entry the
log holds is refused (a restored device's renumbered batch, or a device sending one twice)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_DEVICE_ENTRIES = sa.text("batch_seq IS NOT NULL")


def upgrade() -> None:
    # Only a device's entries (those of a signed batch): the hub's own entries pay nothing.
    op.create_index(
        "ix_audit_entries_batch_leaf",
        "audit_entries",
        ["tenant_pk", "leaf"],
        sqlite_where=_DEVICE_ENTRIES,
        postgresql_where=_DEVICE_ENTRIES,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_entries_batch_leaf", table_name="audit_entries")
