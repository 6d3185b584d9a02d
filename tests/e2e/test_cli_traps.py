"""Traps found by trying the command line: input taken silently, or answered with a wrong message."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from .conftest import Cli
from .test_cli_errors import _one_line_error

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "home")
    cli.run("init")
    return cli


def test_search_takes_words_as_typed_and_fts5_syntax_only_with_fts(cli: Cli) -> None:
    eid = cli.json("note", "add", "e-mail ada@example.com by 2026-12-24, don't forget C++")["item"][
        "entity_id"
    ]
    for query in ("e-mail", "2026-12-24", "ada@example.com", "don't", "C++", "forg*"):
        assert [i["entity_id"] for i in cli.json("search", query)] == [eid], query
    assert cli.json("search", "--fts", "forget NOT mail") == []
    _one_line_error(cli.run("search", "--fts", "e-mail", check=False), "search query 'e-mail' is not valid")


def _fill(cli: Cli, tmp_path: Path, count: int) -> None:
    lines = [
        json.dumps(
            {
                "entity_type": "note",
                "entity_id": f"n-{n:04d}",
                "tenant_id": "local",
                "truth_level": 1,
                "origin_source": "user:import",
                "last_modified_at": f"2026-01-01T00:00:{n // 1000:02d}.{n % 1000:03d}Z-0000",
                "device_id": "importer",
                "payload": {"text": f"note {n}"},
            }
        )
        for n in range(count)
    ]
    (tmp_path / "fill.jsonl").write_text("\n".join(lines) + "\n")
    cli.run("import", str(tmp_path / "fill.jsonl"))


def test_list_says_when_it_shows_part_and_pages(cli: Cli, tmp_path: Path) -> None:
    _fill(cli, tmp_path, 1203)
    shown = cli.run("list", "--json")
    assert len(json.loads(shown.stdout)) == 50  # stdout stays clean JSON ...
    assert "50 of 1,203 shown" in shown.stderr  # ... and the note goes to stderr
    assert "--offset 50" in shown.stderr and "--all" in shown.stderr
    table = cli.run("list")
    assert "50 of 1,203 shown" in table.stderr and "n-1202" in table.stdout
    page = cli.json("list", "--limit", "10", "--offset", "1200")
    assert [i["entity_id"] for i in page] == ["n-0002", "n-0001", "n-0000"]
    everything = cli.run("list", "--all", "--json")
    assert len(json.loads(everything.stdout)) == 1203 and everything.stderr == ""
    last = cli.run("list", "--offset", "1150", "--json")
    assert "1,151-1,200 of 1,203 shown" in last.stderr and "--offset 1200" in last.stderr
    end = cli.run("list", "--offset", "1200", "--json")
    assert len(json.loads(end.stdout)) == 3 and end.stderr.strip() == "1,201-1,203 of 1,203 shown"
    _one_line_error(cli.run("list", "--all", "--limit", "5", check=False), "--all")


def test_types_are_case_insensitive_and_unknown_event_types_are_refused(cli: Cli) -> None:
    eid = cli.json("put", "note", '{"text": "an AI draft"}', "--source", "ai-local:m")["item"]["entity_id"]
    cli.run("entity", "upgrade-truth", eid)
    assert [i["entity_id"] for i in cli.json("list", "--type", "Note")] == [eid]
    assert [e["entity_id"] for e in cli.json("events", "--type", "truth_upgrade")] == [eid]
    refused = cli.run("events", "--type", "BOGUS", check=False)
    _one_line_error(refused, "unknown event type 'BOGUS'")
    assert "TRUTH_UPGRADE" in refused.stderr and "AI_SUGGESTION_GENERATED" in refused.stderr
    _one_line_error(cli.run("list", "--type", "no such type", check=False), "not an entity type")


def test_conflicts_resolve_refuses_keep_and_restore_together(cli: Cli) -> None:
    refused = cli.run("conflicts", "resolve", "some-id", "--keep", "--restore", check=False)
    _one_line_error(refused, "--keep and --restore")
    missing = cli.run("conflicts", "resolve", "some-id", "--restore", check=False)
    _one_line_error(missing, "some-id")  # each alone is taken


def test_counts_are_pluralised(cli: Cli, tmp_path: Path) -> None:
    _fill(cli, tmp_path, 1)
    imported = cli.run("import", str(tmp_path / "fill.jsonl")).stdout
    assert imported.startswith("imported 1 entity into"), imported
    assert cli.run("export", str(tmp_path / "out.jsonl")).stderr.strip() == "exported 1 entity"


def test_a_hub_url_without_a_scheme_is_refused(cli: Cli, tmp_path: Path) -> None:
    phone = Cli(tmp_path / "phone")
    refused = phone.run("enroll", "--hub", "127.0.0.1:8790", "--code", "AAAA-BBBB-CCCC-DDDD", check=False)
    _one_line_error(refused, "needs http:// or https://")
    assert "hub serve" not in refused.stderr
    assert not (tmp_path / "phone" / "device.key").exists()  # nothing was left behind
    refused = cli.run("init", "--hub", "hub.lan:8787", "--token", "t", check=False)
    _one_line_error(refused, "needs http:// or https://")


def test_hub_databases_are_created_only_on_request(cli: Cli, tmp_path: Path) -> None:
    typo = tmp_path / "nonexistent" / "dir" / "hub.db"
    for args in (
        ["hub", "serve", "--db", str(typo)],
        ["hub", "tenant", "add", "family", "--db", str(typo)],
        ["hub", "tenant", "list", "--db", str(typo)],
        ["hub", "security-events", "--db", str(typo)],
    ):
        refused = cli.run(*args, check=False)
        _one_line_error(refused, f"no hub database at {typo}")
        assert "truthvault hub init" in refused.stderr
    assert not (tmp_path / "nonexistent").exists()
    # the default database too
    _one_line_error(cli.run("hub", "tenant", "list", check=False), "no hub database at")
    assert not (cli.home / "hub.db").exists()

    db = str(tmp_path / "hubs" / "hub.db")
    assert f"created a hub database at {db}" in cli.run("hub", "init", "--db", db).stdout
    assert "already" in cli.run("hub", "init", "--db", db).stdout
    with sqlite3.connect(db) as conn:  # what init made is a hub, migrated to the head
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (0,)
    created = cli.run("hub", "tenant", "add", "family", "--db", db).stdout
    assert "--hub http://127.0.0.1:8787 " in created and "hub serve's default address" in created


def test_enrol_commands_print_the_hub_url_given(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    cli.run("hub", "init", "--db", db)
    added = cli.run("hub", "tenant", "add", "family", "--db", db, "--url", "https://hub.lan:9443").stdout
    assert "truthvault enroll --hub https://hub.lan:9443 --code " in added
    assert "127.0.0.1" not in added
    code = cli.run("hub", "tenant", "code", "family", "--db", db, "--url", "http://10.0.0.2:8790/").stdout
    assert "truthvault enroll --hub http://10.0.0.2:8790 --code " in code
    token = cli.run(
        "hub", "device", "add", "--tenant", "family", "--name", "ci", "--db", db, "--url", "http://x:1"
    )
    assert "truthvault init --hub http://x:1 --tenant family" in token.stdout
    _one_line_error(
        cli.run("hub", "tenant", "code", "family", "--db", db, "--url", "10.0.0.2:8790", check=False),
        "needs http:// or https://",
    )


def test_an_opened_backup_is_the_users_alone_and_never_left_half_written(cli: Cli, tmp_path: Path) -> None:
    cli.run("note", "add", "a secret of mine")
    made = Path(cli.json("backup", "now", "--to", str(tmp_path / "b"))["file"])
    whole = tmp_path / "whole.jsonl"
    cli.run("backup", "open", str(made), "--out", str(whole))
    assert b"a secret of mine" in whole.read_bytes()
    assert whole.stat().st_mode & 0o077 == 0  # the vault in plain text: not for other users
    cut = tmp_path / "cut.tvbak"
    cut.write_bytes(made.read_bytes()[:-1])
    half = tmp_path / "half.jsonl"
    _one_line_error(cli.run("backup", "open", str(cut), "--out", str(half), check=False), "cut short")
    assert not half.exists() and list(tmp_path.glob("half.jsonl*")) == []
