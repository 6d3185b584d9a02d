"""hub entities: drop the truth columns that only repeated the wire form

Every entity row carries its SyncItem as ``wire``; the hub reads entities only by id, by
sequence number and (for tombstone purges) by clock and the deleted flag. The other copies
cost about a fifth of the time of writing a row and were never read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_DROPPED = (
    ("entity_type", sa.Text, "''"),
    ("truth_level", sa.SmallInteger, "1"),
    ("device_id", sa.Text, "''"),
    ("version", sa.BigInteger, "1"),
    ("base_version", sa.BigInteger, "0"),
)


def upgrade() -> None:
    # Neither column is indexed, so both SQLite (3.35+) and PostgreSQL drop them in place.
    for name, _, _ in _DROPPED:
        op.drop_column("entities", name)
    op.drop_column("entities", "base_clock")


def downgrade() -> None:
    # The values live on in ``wire``; the columns come back with placeholders, which the
    # older code overwrites on the next write of each entity and never reads.
    for name, type_, default in _DROPPED:
        op.add_column("entities", sa.Column(name, type_, nullable=False, server_default=sa.text(default)))
    op.add_column("entities", sa.Column("base_clock", sa.Text))
