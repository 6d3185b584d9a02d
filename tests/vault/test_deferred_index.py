"""A pull leaves its new rows out of the search index, marked; the next search or other write
indexes them in one pass, and the index always ends up exactly as one rebuilt from scratch."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable

from truthvault.model import PullResponse
from truthvault.vault import Vault
from truthvault.vault._search import SEARCH_TEXT_SQL

from .conftest import as_pull, deliver


def _terms(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """Every term of the index with its document and occurrence counts (a row indexed twice,
    or taken out with the wrong text, shows here)."""
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_terms USING fts5vocab(main, entities_fts, row)")
    return [tuple(r) for r in conn.execute("SELECT term, doc, cnt FROM temp.fts_terms ORDER BY term")]


def assert_index_exact(vault: Vault) -> None:
    """After a search (which catches the index up), it equals one rebuilt from the entities."""
    vault.search("anything")
    assert vault._db.index_behind() is None
    conn = vault._db.conn
    before = _terms(conn)
    conn.execute("INSERT INTO entities_fts (entities_fts) VALUES ('delete-all')")
    conn.execute(
        f"INSERT INTO entities_fts (rowid, body) SELECT rowid, {SEARCH_TEXT_SQL} FROM entities WHERE deleted = 0"
    )
    assert before == _terms(conn)


def test_pulled_rows_wait_for_one_pass_and_every_write_keeps_the_index_exact(
    make_vault: Callable[[str], Vault],
) -> None:
    a, b = make_vault("a"), make_vault("b")
    ids = {w: a.put("note", {"t": f"{w} apple"}).item.entity_id for w in ("one", "two", "three")}
    deliver(a, b)
    assert b._db.index_behind() is not None  # left out, marked
    b.put("note", {"t": "local pear"})  # a local write indexes them first
    assert b._db.index_behind() is None
    assert_index_exact(b)
    a.edit(ids["one"], {"t": "one banana"})
    a.delete(ids["two"])
    four = a.put("note", {"t": "four cherry"}).item.entity_id
    deliver(a, b)  # indexed rows changed, a new one left out
    a.edit(four, {"t": "four damson"})  # the left-out row changes, and an indexed one
    a.edit(ids["three"], {"t": "three elder"})
    deliver(a, b)
    assert [i.entity_id for i in b.search("damson")] == [four] and b.search("cherry") == []
    assert [i.entity_id for i in b.search("banana")] == [ids["one"]]
    assert b.search("apple") == [] and [i.entity_id for i in b.search("elder")] == [ids["three"]]
    assert len(b.search("pear")) == 1
    assert_index_exact(b)


def test_a_vault_closed_after_a_pull_indexes_what_it_left_out_when_next_searched(
    make_vault: Callable[[str], Vault], tmp_path: object
) -> None:
    a, b = make_vault("a"), make_vault("b")
    eid = a.put("note", {"t": "walnut"}).item.entity_id
    deliver(a, b)
    home = b._db.home
    b.close()  # as if the process ended (or died) right after the pull committed
    again = Vault.open(home)
    try:
        assert again._db.index_behind() is not None
        assert [i.entity_id for i in again.search("walnut")] == [eid]
        assert_index_exact(again)
    finally:
        again.close()


def test_import_and_resync_after_a_pull_keep_the_index_exact(make_vault: Callable[[str], Vault]) -> None:
    a, b = make_vault("a"), make_vault("b")
    kept = a.put("note", {"t": "kept fig"}).item.entity_id
    a.put("note", {"t": "purged grape"})
    snapshot = a.replica.pending_batch()
    assert snapshot is not None
    b.replica.apply_pull(as_pull(snapshot, 2))
    line = {
        "entity_type": "note",
        "entity_id": "imported-1",
        "tenant_id": "local",
        "truth_level": 1,
        "origin_source": "user:cli",
        "last_modified_at": "2026-01-01T00:00:00.000Z-0000",
        "device_id": "elsewhere",
        "payload": {"t": "imported kiwi"},
    }
    b.import_jsonl(io.StringIO(json.dumps(line) + "\n"))
    assert_index_exact(b)
    c = make_vault("c")
    c.replica.apply_pull(as_pull(snapshot, 2))  # left out of the index ...
    c.replica.begin_resync()
    full = [i for i in snapshot.items if i.entity_id == kept]
    c.replica.apply_pull(PullResponse(items=full, records=[], cursor=9, has_more=False, head=9))
    assert c.replica.finish_resync() == 1  # ... when the re-sync drops one of them
    assert c.search("grape") == [] and [i.entity_id for i in c.search("fig")] == [kept]
    assert_index_exact(c)
