"""The full-text index: every live entity's type and payload strings, in FTS5.

The indexed text is computed in SQL (``json_tree``) from the stored payload, so single
writes, bulk imports and the migration that created the index all agree on it.

A pull leaves the rows it adds out of the index, behind a mark in ``meta`` that commits with
them; the next search or other write indexes them all in one pass (see ``VaultDB.put_rows``
and ``VaultDB.catch_up_index``), so a pull does not wait for it and a crash leaves none out.
"""

from __future__ import annotations

import json
import sqlite3

from ..errors import InvalidInput

__all__ = [
    "SEARCH_TEXT_SQL",
    "fts_error",
    "index",
    "index_entities",
    "plain_query",
    "reindex_range",
    "unindex",
    "unindex_rows",
]

#: The text of one ``entities`` row: its type, then every string value of its payload.
SEARCH_TEXT_SQL = (
    "entity_type || ' ' || coalesce((SELECT group_concat(value, ' ') "
    "FROM json_tree(CAST(payload AS TEXT)) WHERE type = 'text'), '')"
)


def _write(conn: sqlite3.Connection, *, delete: bool, where: str, params: tuple[object, ...]) -> None:
    """Add the live ``entities`` rows matching ``where`` to the index, or (``delete``) take
    them out of it, with their text computed as it is now."""
    into = "(entities_fts, rowid, body) SELECT 'delete', rowid," if delete else "(rowid, body) SELECT rowid,"
    conn.execute(
        f"INSERT INTO entities_fts {into} {SEARCH_TEXT_SQL} FROM entities WHERE {where} AND deleted = 0",
        params,
    )


_IN_LIST = " IN (SELECT value FROM json_each(?))"


def unindex(conn: sqlite3.Connection, rowid: int) -> None:
    """Drop one entity row from the index; call it while the row still holds what was indexed.

    The index is contentless, so FTS5 deletes by being told the text it indexed; that text
    is computed from the row exactly as it was when the row was indexed.
    """
    _write(conn, delete=True, where="rowid = ?", params=(rowid,))


def index(conn: sqlite3.Connection, rowid: int) -> None:
    """Index one entity row as it is now (nothing for a tombstone); unindex it first."""
    _write(conn, delete=False, where="rowid = ?", params=(rowid,))


def unindex_rows(conn: sqlite3.Connection, rowids: list[int]) -> None:
    """:func:`unindex` for many rows in one statement."""
    if rowids:
        _write(conn, delete=True, where="rowid" + _IN_LIST, params=(json.dumps(rowids),))


def index_entities(conn: sqlite3.Connection, entity_ids: list[str]) -> None:
    """:func:`index` for many entities (by id) in one statement."""
    if entity_ids:
        _write(conn, delete=False, where="entity_id" + _IN_LIST, params=(json.dumps(entity_ids),))


def reindex_range(conn: sqlite3.Connection, first: int, last: int) -> None:
    """Index freshly inserted rows ``first..last`` (bulk import; they have no entries yet)."""
    _write(conn, delete=False, where="rowid BETWEEN ? AND ?", params=(first, last))


def plain_query(text: str) -> str:
    """The FTS5 query that finds every whitespace-separated word of ``text`` as typed.

    Each word becomes an FTS5 string, so ``e-mail``, ``ada@example.com`` or ``C++`` are text,
    never a column filter or a syntax error; a word ending in ``*`` still matches as a prefix.
    """
    terms = []
    for word in text.split():
        prefix = word.endswith("*") and word.rstrip("*") != ""
        word = word.rstrip("*") if prefix else word
        terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms)


def fts_error(query: str, exc: sqlite3.Error) -> InvalidInput:
    """The InvalidInput to raise for a query FTS5 could not parse."""
    detail = str(exc).removeprefix("fts5: ")
    return InvalidInput(
        f"search query {query!r} is not valid: {detail}",
        hint='FTS5 syntax takes words, "quoted phrases", AND / OR / NOT, or prefix*; '
        "without fts, words are searched as typed",
    )
