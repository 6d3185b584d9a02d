"""Running Alembic migrations for the vault and the hub, with one error for what goes wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["run_upgrade"]


def run_upgrade(cfg: Config, revision: str, what: str) -> None:
    """Migrate the database ``cfg`` names to ``revision``; StorageError naming ``what`` if
    Alembic cannot (most likely a revision it does not know: a newer truthvault made it)."""
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(cfg, revision)
    except CommandError as exc:
        raise StorageError(
            f"cannot bring {what} up to date: {exc}",
            hint="it was probably made by a newer truthvault; upgrade truthvault to open it",
        ) from None
