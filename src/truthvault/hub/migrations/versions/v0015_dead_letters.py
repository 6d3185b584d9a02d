"""dead letters, admin tokens and audit verifications

``dead_letters``: what failed for good (a workflow step, an event, an automation run), with its
error and its input (secrets masked), kept until someone retries, quarantines or discards it.
``admin_tokens``: the hub admin's bearer tokens (for ``/diagz``), stored hashed.
``audit_verifications``: a record of each ``hub audit verify`` run.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# SQLite only makes "INTEGER PRIMARY KEY" an auto-numbered rowid; PostgreSQL wants 64 bits.
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Text, primary_key=True),
        # the tenant's id as text, no key: a dead letter outlives a tenant its saga removed
        sa.Column("tenant_id", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),  # workflow, event, automation
        sa.Column("ref", sa.Text, nullable=False),  # the workflow's id, the event's, the run's
        sa.Column("source", sa.Text, nullable=False),  # e.g. tenant.provision/policy (run)
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("input", sa.Text, nullable=False),  # JSON, secrets masked
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_failed_at", sa.Text, nullable=False),
        sa.Column("last_failed_at", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("changed_at", sa.Text, nullable=False),
        sa.Column("changed_by", sa.Text),
        sa.Column("retried_as", sa.Text),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_dead_letters_ref", "dead_letters", ["kind", "ref"], unique=True)
    op.create_index("ix_dead_letters_status", "dead_letters", ["status", "last_failed_at"])
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("last_used_at", sa.Text),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "audit_verifications",
        sa.Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("tenants", sa.Integer, nullable=False),
        sa.Column("entries", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_verifications")
    op.drop_table("admin_tokens")
    op.drop_index("ix_dead_letters_status", "dead_letters")
    op.drop_index("ix_dead_letters_ref", "dead_letters")
    op.drop_table("dead_letters")
