"""Alembic migrations of the device vault (run by :mod:`truthvault.vault._schema`)."""
