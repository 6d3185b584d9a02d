"""Alembic revisions of the device vault, oldest first."""
