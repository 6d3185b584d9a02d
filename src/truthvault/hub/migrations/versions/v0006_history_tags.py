"""hub history tags and records checksum: a device's cursor names the commit it points into,
so a hub restored from a backup (whose sequence numbers were then reused) is recognised; and
each tenant keeps a checksum of its records, so that `sync check` covers them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_U64 = 1 << 64


def _record_digest(record_id: str, status: str, resolution: str | None) -> int:
    # model.record_digest as of this revision (a migration must not change with the code)
    text = f"{record_id}\x1f{status}\x1f{resolution or ''}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest())


def _signed(total: int) -> int:
    total %= _U64
    return total - _U64 if total >= 1 << 63 else total


def upgrade() -> None:
    # One row per commit (a push or a conflict resolution): the last sequence number it wrote
    # and a random tag. A cursor c points into the commit with the least last_seq >= c.
    op.create_table(
        "commits",
        sa.Column("tenant_pk", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tenant_pk", "last_seq", name="pk_commits"),
    )
    op.add_column("tenants", sa.Column("head_tag", sa.Text))
    op.add_column("tenants", sa.Column("records_checksum", sa.BigInteger, nullable=False, server_default="0"))
    if op.get_context().as_sql:
        return  # rendering SQL for a new database: there are no tenants to carry over
    conn = op.get_bind()
    tenants = conn.execute(sa.text("SELECT pk, head_seq FROM tenants")).fetchall()
    for pk, head in tenants:
        total = sum(
            _record_digest(rid, status, resolution)
            for rid, status, resolution in conn.execute(
                sa.text("SELECT id, status, resolution FROM records WHERE tenant_pk = :pk"), {"pk": pk}
            )
        )
        tag = None
        if head:
            # The history so far becomes one commit: every cursor into it is as good as any other.
            tag = secrets.token_hex(8)
            conn.execute(
                sa.text("INSERT INTO commits (tenant_pk, last_seq, tag) VALUES (:pk, :head, :tag)"),
                {"pk": pk, "head": head, "tag": tag},
            )
        conn.execute(
            sa.text("UPDATE tenants SET head_tag = :tag, records_checksum = :sum WHERE pk = :pk"),
            {"tag": tag, "sum": _signed(total), "pk": pk},
        )


def downgrade() -> None:
    op.drop_column("tenants", "records_checksum")
    op.drop_column("tenants", "head_tag")
    op.drop_table("commits")
