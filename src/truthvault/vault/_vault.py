"""The device vault: the user's API over one SQLite file, built from parts it holds."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from .. import intake
from ..errors import InvalidInput, InvalidSource, NotFound
from ..kernel._dead_letters import SqlDeadLetters
from ..model import SyncItem
from ..truth import level_of_source
from ._apply import Applier
from ._audit import DeviceAudit
from ._codec import ENTITY_SELECT, VaultRecord, item_from_row
from ._contracts import VaultContracts
from ._db import Event, VaultDB, WriteResult
from ._offline import OfflineState
from ._records import Records
from ._replica import Replica
from ._search import fts_error, plain_query
from ._transfer import Transfer
from ._writes import Writer

if TYPE_CHECKING:
    from ..kernel import Actor, InputBroker, Kernel
    from ._automations import Automations

__all__ = ["Vault"]


class Vault:
    """A device's local store of entities under the truth hierarchy; open with :meth:`Vault.open`.

    The vault holds its parts: the database (:class:`VaultDB`), the one merge-applier every
    write goes through (:class:`Applier`), and :attr:`replica`, the sync side that only
    :mod:`truthvault.sync` (and the command line's sync commands) use.
    """

    def __init__(self, db: VaultDB, source: str | None = None) -> None:
        self._db = db
        self._source = None if source is None else _checked_source(source)
        applier = Applier(db)
        #: the entity contracts this vault knows (every write is checked against its type's newest)
        self.contracts = VaultContracts(db)
        self._writer = Writer(db, applier, self.contracts)
        self._records = Records(db, self._writer)
        self._transfer = Transfer(db, applier)
        #: the sync side of this vault: push queue, pulls, the hub joined, re-syncs
        self.replica = Replica(db, applier)
        #: offline governance: this device's own risk, and the items it parked at a sync
        self.offline = OfflineState(db, self.contracts, self._writer)
        self._kernel: Kernel[Vault] | None = None
        self._broker: InputBroker | None = None
        #: the audit outbox (the kernel's AuditSink on this device) and the hub checkpoint kept
        self.audit = DeviceAudit(db)
        #: what failed for good on this device, until someone retries, quarantines or discards it
        self.dead_letters = SqlDeadLetters(db.tx, db.read)

    @classmethod
    def open(cls, home: Path | str, *, source: str | None = None) -> Vault:
        """Open the vault in ``home``, creating the folder (0700) and file (0600) if missing.

        ``source`` is who writes through this vault (``user:desktop``, ``ai-local:llama3``,
        ...): every write is made as that source unless it names another. Without it, each
        write must name its source.
        """
        if source is not None:
            _checked_source(source)  # before the file is opened: nothing to close on a bad one
        return cls(VaultDB.open(home), source)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    @property
    def broker(self) -> InputBroker:
        """This vault's input broker: approvals, confirmations, PINs, form and secret input
        (see docs/kernel-approvals.md); loaded on first use."""
        if self._broker is None:
            from ._broker import vault_broker

            self._broker = vault_broker(self._db)
        return self._broker

    def __enter__(self) -> Vault:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Vault({str(self.home)!r})"

    # -- identity ------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """The folder the vault lives in."""
        return self._db.home

    @property
    def path(self) -> Path:
        """The vault's SQLite file."""
        return self._db.path

    @property
    def source(self) -> str | None:
        """The source writes are made as when they name none (None: each must name one)."""
        return self._source

    @property
    def device_id(self) -> str:
        """This device's id (a uuid4 made at creation, or the hub's after join)."""
        return self._db.meta_str("device_id")

    @property
    def tenant_id(self) -> str:
        """The tenant this vault belongs to ("local" until joined)."""
        return self._db.meta_str("tenant_id")

    @property
    def tenant_name(self) -> str:
        """The joined tenant's name ("" until joined)."""
        return self._db.meta_str("tenant_name")

    @property
    def vault_mode(self) -> str:
        """local_first or cloud_first."""
        return self._db.meta_str("vault_mode")

    # -- the governed path ---------------------------------------------------------
    @property
    def automations(self) -> Automations:
        """This vault's automation rules and their runner (see docs/automations.md)."""
        from ._automations import Automations

        return Automations(self)

    @property
    def kernel(self) -> Kernel[Vault]:
        """The kernel over this vault: ``vault.kernel.run("notes.create", {...}, actor=...)``
        runs a device action under policy, approvals and the audit log."""
        if self._kernel is None:
            from ._governance import device_kernel

            self._kernel = device_kernel(self, self._db)
        return self._kernel

    def actor(self, source: str | None = None) -> Actor:
        """Who acts through this vault: ``source`` (or the vault's) on this device and tenant."""
        from ..kernel import Actor

        return Actor(self._writer_source(source), self.device_id, self.tenant_id)

    def transaction(self) -> AbstractContextManager[object]:
        """One transaction around several writes (nestable): all of them happen, or none."""
        return self._db.tx()

    # -- writes --------------------------------------------------------------------
    def _writer_source(self, source: str | None) -> str:
        if source is not None:
            return _checked_source(source)
        if self._source is None:
            raise InvalidSource(
                "no source for this write: open the vault with source=... or pass source=...",
                hint="a source names who writes: user:desktop, automation:<rule>, ai-local:<model>, ...",
            )
        return self._source

    def put(
        self,
        entity_type: str,
        payload: dict[str, Any],
        *,
        entity_id: str | None = None,
        source: str | None = None,
    ) -> WriteResult:
        """Write an entity (new, or a new version of ``entity_id``) under the truth rule.

        Acceptance is the user's act and never a flag a writer sets: :meth:`accept` a
        suggestion, :meth:`edit` as a user source, or :meth:`upgrade_truth`.
        """
        return self._writer.put(entity_type, payload, entity_id=entity_id, source=self._writer_source(source))

    def edit(
        self, entity_id: str, changes: dict[str, Any], *, source: str | None = None, replace: bool = False
    ) -> WriteResult:
        """Merge ``changes`` into an entity's payload (or replace it) and write it."""
        return self._writer.edit(entity_id, changes, source=self._writer_source(source), replace=replace)

    def delete(self, entity_id: str, *, source: str | None = None) -> WriteResult:
        """Write a tombstone; below the entity's level it becomes a suggestion instead."""
        return self._writer.delete(entity_id, source=self._writer_source(source))

    def upgrade_truth(self, entity_id: str, *, source: str | None = None) -> SyncItem:
        """The user confirms lower-level content: it becomes level 1, accepted by the user."""
        return self._writer.upgrade_truth(entity_id, source=self._writer_source(source))

    # -- reads ---------------------------------------------------------------------
    def get(self, entity_id: str, include_deleted: bool = False) -> SyncItem:
        """The current version of an entity; NotFound if there is none (or it was deleted)."""
        with self._db.read():
            cur = self._db.current(entity_id)
        if cur is None:
            raise NotFound(f"no entity {entity_id!r}")
        if cur.item.deleted and not include_deleted:
            raise NotFound(
                f"entity {entity_id!r} was deleted", hint="pass include_deleted to see the tombstone"
            )
        return cur.item

    def search(self, query: str, limit: int = 50, *, fts: bool = False) -> builtins.list[SyncItem]:
        """Live entities whose type or payload text holds every word of ``query``, best first;
        with ``fts`` the query is FTS5 syntax (phrases, AND / OR / NOT, NEAR, prefix*)."""
        return [item for item, _ in self.search_scored(query, limit, fts=fts)]

    def search_scored(
        self, query: str, limit: int = 50, *, fts: bool = False
    ) -> builtins.list[tuple[SyncItem, float]]:
        """:meth:`search` with each entity's BM25 score (FTS5's ``bm25()``, negated so that
        higher is better): what a ranking built on the search, such as related notes, weighs."""
        if not query or not query.strip():
            raise InvalidInput("search query must not be empty")
        sql = (
            f"{ENTITY_SELECT.removesuffix(' FROM entities')}, -bm25(entities_fts) FROM entities "
            "JOIN entities_fts ON entities_fts.rowid = entities.rowid "
            "WHERE entities_fts MATCH ? AND entities.deleted = 0 ORDER BY entities_fts.rank LIMIT ?"
        )
        if self._db.meta_str("fts_from"):
            with self._db.tx():
                self._db.catch_up_index()  # what a pull left out of the index (see put_rows)
        with self._db.read() as conn:
            try:
                rows = conn.execute(sql, (query if fts else plain_query(query), limit)).fetchall()
            except sqlite3.OperationalError as exc:
                raise fts_error(query, exc) from None
        return [(item_from_row(tuple(r)[:-1]), float(r[-1])) for r in rows]

    def count(
        self,
        entity_type: str | None = None,
        level: int | None = None,
        accepted: bool | None = None,
        include_deleted: bool = False,
    ) -> int:
        """How many entities match the filters of :meth:`list`."""
        where, args = _filters(entity_type, level, accepted, include_deleted)
        with self._db.read() as conn:
            return int(conn.execute(f"SELECT count(*) FROM entities{where}", args).fetchone()[0])

    def list(
        self,
        entity_type: str | None = None,
        level: int | None = None,
        accepted: bool | None = None,
        include_deleted: bool = False,
        limit: int | None = 100,
        offset: int = 0,
    ) -> builtins.list[SyncItem]:
        """Current versions, newest first, filtered by type (any case), level and acceptance;
        ``limit=None`` lists them all."""
        where, args = _filters(entity_type, level, accepted, include_deleted)
        sql = f"{ENTITY_SELECT}{where} ORDER BY last_modified_at DESC, entity_id DESC LIMIT ? OFFSET ?"
        with self._db.read() as conn:
            # SQLite reads a negative LIMIT as none
            rows = conn.execute(sql, [*args, -1 if limit is None else limit, offset]).fetchall()
        return [item_from_row(r) for r in rows]

    # -- kept records and the user's decisions ---------------------------------------
    def records(
        self, kind: str | None = None, status: str | None = "open", entity_id: str | None = None
    ) -> builtins.list[VaultRecord]:
        """Kept records (suggestions and conflicts), newest first; ``status=None`` means any."""
        return self._records.find(kind, status, entity_id)

    def suggestions(
        self, status: str | None = "open", entity_id: str | None = None
    ) -> builtins.list[VaultRecord]:
        """Suggestions (lower-level versions kept beside the current one)."""
        return self._records.find("suggestion", status, entity_id)

    def conflicts(
        self, status: str | None = "open", entity_id: str | None = None
    ) -> builtins.list[VaultRecord]:
        """Conflict records (U1 versions that lost a race)."""
        return self._records.find("conflict", status, entity_id)

    def get_record(self, record_id: str) -> VaultRecord:
        """One record by id; NotFound if there is none."""
        return self._records.get(record_id)

    def accept(self, record_id: str, *, source: str | None = None, force: bool = False) -> SyncItem:
        """Merge an open suggestion into its entity as user truth; returns the new version.

        A suggestion made on the current version is taken whole. When the entity changed
        since, only what the suggestion changed is applied on top of the changes, if the
        vault knows what it was made on; if it does not, nothing is accepted (ConflictState)
        unless ``force``, which lays the suggestion's fields over the current ones.
        """
        return self._records.accept(record_id, source=self._writer_source(source), force=force)

    def reject(self, record_id: str, *, source: str | None = None) -> VaultRecord:
        """Reject an open suggestion as ``source`` (the user, level 1); it stays retrievable
        with status ``rejected``."""
        return self._records.reject(record_id, source=self._writer_source(source))

    def resolve_conflict(self, record_id: str, resolution: str, *, source: str | None = None) -> VaultRecord:
        """Close a conflict record: ``keep`` the current version or ``restore`` the kept one."""
        return self._records.resolve_conflict(record_id, resolution, source=self._writer_source(source))

    # -- events --------------------------------------------------------------------
    def events(self, limit: int = 50, type: str | None = None) -> builtins.list[Event]:
        """The newest events first, optionally of one type (any case; InvalidInput if unknown)."""
        return self._db.events(limit, type)

    def event_types(self) -> builtins.list[str]:
        """The types :meth:`events` knows: those the vault records, then any others it holds."""
        return self._db.event_types()

    def add_event(self, type: str, entity_id: str | None = None, **detail: Any) -> Event:
        """Append an event to the log."""
        return self._db.add_event(type, entity_id, **detail)

    # -- export and import -------------------------------------------------------------
    def export_jsonl(self, fp: IO[Any], include_deleted: bool = True) -> int:
        """Stream every entity (tombstones too, by default) to ``fp``; return how many."""
        return self._transfer.export(fp, include_deleted)

    def import_jsonl(
        self,
        fp: IO[Any],
        *,
        queue_for_push: bool = True,
        progress: Callable[[int], None] | None = None,
        source: str | None = None,
        approval: str | None = None,
    ) -> int:
        """Restore entities from JSON Lines; return how many lines were imported.

        Runs the governed action ``entity.import`` (risk destructive) as ``source`` (the
        vault's own by default; ``approval`` redeems an approved request): policy decides, and
        one audit entry names what was imported (see docs/kernel.md). No line may claim more
        authority than ``source`` (FORBIDDEN naming the line): an automation or an AI cannot
        import user truth.

        All or nothing: the whole file is one transaction, so a bad line (VALIDATION_ERROR
        "line N: field: message") leaves the vault as it was. Items keep their truth
        fields but take this vault's tenant. An id already present is resolved by the
        truth rule like a pulled version, and any loser is kept as a record. A clock more
        than :data:`~truthvault.clock.MAX_FUTURE_SKEW_MS` ahead of this machine's is refused:
        it would win every edit made here until then.
        """
        from ._actions import Imported, ImportIn

        params = ImportIn.of_stream(fp, queue_for_push=queue_for_push, progress=progress)
        try:
            result = self.kernel.run("entity.import", params, actor=self.actor(source), approval=approval)
        finally:
            if params._stream is not fp:  # the lines of an iterable, spooled to be hashed first
                getattr(params._stream, "close", lambda: None)()
        assert isinstance(result, Imported), result
        self._transfer.compact(result.imported)
        return result.imported


def _checked_source(source: str) -> str:
    level_of_source(source)  # InvalidSource unless it is one
    return source


def _filters(
    entity_type: str | None, level: int | None, accepted: bool | None, include_deleted: bool
) -> tuple[str, builtins.list[Any]]:
    where: builtins.list[str] = []
    args: builtins.list[Any] = []
    if entity_type is not None:
        # Entity types are lowercase by rule: "Note" can only mean note.
        where.append("entity_type = ?")
        args.append(intake.check_entity_type(entity_type.lower()))
    if level is not None:
        where.append("truth_level = ?")
        args.append(int(level))
    if accepted is not None:
        where.append("accepted_by_user = ?")
        args.append(int(accepted))
    if not include_deleted:
        where.append("deleted = 0")
    return (" WHERE " + " AND ".join(where) if where else ""), args
