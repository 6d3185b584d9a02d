"""Alembic revisions of the hub database, oldest first."""
