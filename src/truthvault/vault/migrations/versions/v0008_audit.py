"""The device's audit outbox and the hub checkpoint it kept.

- ``audit_outbox``: entries of actions run on this device (their canonical bytes), until the
  hub has them; ``batch_seq`` is the signed batch an entry was sealed into.
- ``audit_state``: one row: the next batch number, the last hub checkpoint this device
  accepted (JSON), and the right edge of the log up to the size it verified itself.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the audit outbox and state."""
    op.execute(
        """CREATE TABLE audit_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            entry BLOB NOT NULL,
            batch_seq INTEGER
        )"""
    )
    op.execute(
        """CREATE TABLE audit_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            next_seq INTEGER NOT NULL DEFAULT 1,
            checkpoint TEXT,
            verified_size INTEGER NOT NULL DEFAULT 0,
            verified_edge BLOB NOT NULL DEFAULT x''
        )"""
    )
    op.execute("INSERT INTO audit_state (id) VALUES (1)")


def downgrade() -> None:
    """Drop them again."""
    op.execute("DROP TABLE audit_state")
    op.execute("DROP TABLE audit_outbox")
