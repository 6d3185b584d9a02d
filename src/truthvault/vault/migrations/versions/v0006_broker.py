"""the input broker: requests for a person's input (approvals, confirmations, PINs, forms,
secrets) and the user's PIN, kept as a scrypt hash

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add broker_requests and broker_pin."""
    # never a payload or a secret's value: the input's hash, the targets' ids, and for a form
    # (only where it was answered) its values; dirty: changed here since the last sync
    op.execute(
        """CREATE TABLE broker_requests (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            action TEXT NOT NULL,
            risk TEXT NOT NULL,
            source TEXT NOT NULL,
            device_id TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            input_hash TEXT NOT NULL,
            targets TEXT NOT NULL,
            fields TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            status TEXT NOT NULL,
            decided_by TEXT,
            decided_device TEXT,
            decided_at REAL,
            deny_reason TEXT,
            provided INTEGER NOT NULL DEFAULT 0,
            form_values TEXT,
            dirty INTEGER NOT NULL DEFAULT 1
        )"""
    )
    op.execute("CREATE INDEX broker_requests_created ON broker_requests (created_at)")
    op.execute("CREATE INDEX broker_requests_dirty ON broker_requests (dirty) WHERE dirty = 1")
    op.execute(
        """CREATE TABLE broker_pin (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            hash TEXT NOT NULL,
            salt TEXT NOT NULL,
            n INTEGER NOT NULL,
            r INTEGER NOT NULL,
            p INTEGER NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            locked_until REAL NOT NULL DEFAULT 0,
            set_at REAL NOT NULL
        )"""
    )


def downgrade() -> None:
    """Drop them again."""
    op.execute("DROP TABLE broker_pin")
    op.execute("DROP TABLE broker_requests")
