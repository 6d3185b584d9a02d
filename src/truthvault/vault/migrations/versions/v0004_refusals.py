"""Refusals, shipped suggestion bases and a running checksum.

- ``refused``: items the hub refused when this device pushed them (kept here, out of the
  push queue, so one bad item never jams it) and items of pulled pages this device would not
  take in (kept aside, so one bad item never stops a pull); ``truthvault sync rejected``.
- ``records.base_item``: the whole version a suggestion was made on (its truth fields too),
  which travels with the suggestion so that a device that never held it can still accept only
  what the suggestion changed.
- ``meta.checksum``: the state checksum over live entities, kept up to date by every write, so
  a sync can compare it with the hub's without reading every entity.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _digest(entity_id: str, clock: str, device_id: str, level: int) -> int:
    # model.item_digest as of this revision (a migration must not change with the code)
    text = f"{entity_id}\x1f{clock}\x1f{device_id}\x1f{level}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest())


def upgrade() -> None:
    """Add the refused table, records.base_item and meta.checksum."""
    op.execute(
        """CREATE TABLE refused (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            direction TEXT NOT NULL,
            kind TEXT NOT NULL,
            entity_id TEXT,
            record_id TEXT,
            reason TEXT NOT NULL,
            at TEXT NOT NULL,
            item BLOB NOT NULL,
            mutation INTEGER
        )"""
    )
    op.execute("ALTER TABLE records ADD COLUMN base_item BLOB")
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT entity_id, last_modified_at, device_id, truth_level FROM entities WHERE deleted = 0")
    )
    total = sum(_digest(*row) for row in rows) % (1 << 64)
    conn.execute(
        sa.text("INSERT OR REPLACE INTO meta (key, value) VALUES ('checksum', :total)"), {"total": str(total)}
    )


def downgrade() -> None:
    """Drop them again."""
    op.execute("DELETE FROM meta WHERE key = 'checksum'")
    op.execute("ALTER TABLE records DROP COLUMN base_item")
    op.execute("DROP TABLE refused")
