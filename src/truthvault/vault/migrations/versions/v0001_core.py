"""Core tables: meta, entities, records, events, the re-sync scratch table.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_UP = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    # Integer rowid (implicit) is kept on purpose: the FTS index is keyed by it.
    """CREATE TABLE entities (
        entity_id TEXT NOT NULL PRIMARY KEY,
        entity_type TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        payload BLOB NOT NULL,
        truth_level INTEGER NOT NULL,
        origin_source TEXT NOT NULL,
        origin_chain BLOB NOT NULL,
        accepted_by_user INTEGER NOT NULL,
        last_modified_by_level INTEGER,
        version INTEGER NOT NULL,
        base_version INTEGER NOT NULL,
        base_clock TEXT,
        last_modified_at TEXT NOT NULL,
        device_id TEXT NOT NULL,
        contract_version INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        mutation INTEGER,
        hub_known INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX entities_recent ON entities (last_modified_at)",
    "CREATE INDEX entities_type_recent ON entities (entity_type, last_modified_at)",
    "CREATE INDEX entities_queued ON entities (mutation) WHERE mutation IS NOT NULL",
    """CREATE TABLE records (
        id TEXT NOT NULL PRIMARY KEY,
        kind TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        status TEXT NOT NULL,
        item BLOB NOT NULL,
        created_at TEXT NOT NULL,
        decided_at TEXT,
        resolution TEXT,
        reason TEXT,
        mutation INTEGER,
        push_item INTEGER NOT NULL DEFAULT 0,
        push_decision INTEGER NOT NULL DEFAULT 0,
        hub_known INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX records_entity ON records (entity_id)",
    "CREATE INDEX records_status ON records (status, kind, created_at)",
    "CREATE INDEX records_queued ON records (mutation) WHERE mutation IS NOT NULL",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        at TEXT NOT NULL,
        entity_id TEXT,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX events_type ON events (type, id)",
    "CREATE TABLE resync_seen (entity_id TEXT PRIMARY KEY) WITHOUT ROWID",
]


def upgrade() -> None:
    """Create the core tables."""
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    """Drop the core tables."""
    for table in ("resync_seen", "events", "records", "entities", "meta"):
        op.execute(f"DROP TABLE {table}")
