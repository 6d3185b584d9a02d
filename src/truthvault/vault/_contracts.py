"""The entity contracts one vault knows (see :mod:`truthvault.kernel`): stored, looked up by
every write, fetched from the hub by a sync."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from typing import Any

from ..errors import NotFound
from ..kernel import Contract, ContractBook
from ._db import VaultDB

__all__ = ["VaultContracts"]


class VaultContracts:
    """A vault's contracts: the built-in versions and those stored in its ``contracts`` table."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db
        self._book: ContractBook | None = None
        self._rows = -1

    def book(self) -> ContractBook:
        """Every version this vault knows. Rows are only ever added, so their count tells
        whether another process (or a sync) stored one since this was read."""
        with self._db.read() as conn:
            rows = int(conn.execute("SELECT count(*) FROM contracts").fetchone()[0])
            if self._book is None or rows != self._rows:
                stored = [
                    Contract(t, v, m, json.loads(s))
                    for t, v, m, s in conn.execute(
                        "SELECT entity_type, version, major, schema FROM contracts"
                    )
                ]
                self._book, self._rows = ContractBook(stored), rows
        return self._book

    def list(self, entity_type: str | None = None) -> list[Contract]:
        """Every version (of one type), oldest first."""
        book = self.book()
        return book.all() if entity_type is None else book.versions(entity_type)

    def get(self, entity_type: str, version: int | None = None) -> Contract:
        """One version of a type's contract (the newest by default); NotFound if there is none."""
        book = self.book()
        found = book.current(entity_type) if version is None else book.get(entity_type, version)
        if found is None:
            known = [c.version for c in book.versions(entity_type)]
            raise NotFound(
                f"no contract for {entity_type!r}"
                + ("" if version is None else f" version {version}")
                + (f" (versions: {', '.join(map(str, known))})" if known else " (the type is free-form)"),
                hint="'truthvault contract list' shows them",
            )
        return found

    def propose(self, entity_type: str, schema: Any, *, major: bool = False) -> Contract:
        """The next version of a type with ``schema``, checked against what this vault knows
        (BreakingChange unless compatible or ``major``); nothing is stored."""
        return self.book().propose(entity_type, schema, major=major)

    def store(self, contracts: Iterable[tuple[int | None, Contract]]) -> int:
        """Keep versions, each with its hub marker (None: made here only); those already held
        are left as they are. How many were new."""
        with self._db.tx() as conn:
            at, added, top = self._db.stamp(), 0, self.marker
            for marker, c in contracts:
                cur = conn.execute(
                    "INSERT INTO contracts (entity_type, version, major, schema, added_at, hub_marker) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (entity_type, version) DO NOTHING",
                    (c.entity_type, c.version, c.major, c.canonical, at, marker),
                )
                added += cur.rowcount
                top = max(top, marker or 0)
            if top > self.marker:
                self._db.set_meta("contracts_marker", top)
        return added

    @property
    def marker(self) -> int:
        """The highest hub marker of the versions fetched from the hub (0: none yet)."""
        return int(self._db.meta_str("contracts_marker") or 0)

    def held(self) -> dict[str, builtins.list[int]]:
        """What this device writes under: the newest version of each type it knows."""
        book = self.book()
        return {t: [c.version] for t in book.types() if (c := book.current(t)) is not None}
