"""Bad input on the command line: one line on stderr, a non-zero exit, nothing changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from .conftest import Cli

pytestmark = pytest.mark.e2e

_DEEP = '{"a":' * 80 + "1" + "}" * 80


def _one_line_error(result: object, needle: str) -> None:
    assert result.returncode != 0  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("error:") and needle in lines[0], err
    assert len(lines) <= 2 and "Traceback" not in err  # the error, and at most a hint


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "home")
    cli.run("init")
    return cli


def test_bad_input_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    task = cli.json("task", "add", "renew passport", "--due", "2027-01-10")["item"]["entity_id"]
    before = cli.json("list")
    for args, needle in [
        (["edit", task, "--replace"], "nothing to change"),  # would have emptied the task
        (["put", "thing", _DEEP], "nested 80 deep"),
        (["edit", task, _DEEP], "nested"),
        (["hub", "tenant", "list", "--db", "mysql://db-host/hub"], "not a supported URL"),
        (["hub", "tenant", "add", "t", "--db", "garbage://x"], "not a supported URL"),
    ]:
        _one_line_error(cli.run(*args, check=False), needle)
    assert cli.json("list") == before
    assert not list(tmp_path.glob("**/mysql:*")) and not list(Path.cwd().glob("garbage:*"))
    # Emptying a payload takes an explicit '{}'.
    assert cli.json("edit", task, "{}", "--replace")["item"]["payload"] == {}


def test_a_vault_made_by_a_newer_version_is_refused_in_one_line(cli: Cli) -> None:
    cli.run("note", "add", "from the future")
    db = cli.home / "vault.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    _one_line_error(cli.run("list", check=False), "cannot bring the vault")
    assert "newer truthvault" in cli.run("list", check=False).stderr
    with sqlite3.connect(db) as conn:  # and the file was left as it was
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0099",)
        assert conn.execute("SELECT count(*) FROM entities").fetchone() == (1,)


def test_a_hub_database_made_by_a_newer_version_is_refused_in_one_line(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    cli.run("hub", "init", "--db", db)
    cli.run("hub", "tenant", "add", "family", "--db", db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    _one_line_error(cli.run("hub", "tenant", "list", "--db", db, check=False), "cannot bring the hub")


def test_a_port_in_use_is_refused_before_the_hub_announces_itself(cli: Cli, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = cli.run(
            "hub", "serve", "--db", str(tmp_path / "hub.db"), "--create", "--port", port, check=False
        )
    _one_line_error(result, f"cannot listen on 127.0.0.1:{port}")
    assert "truthvault hub on" not in result.stdout


def test_an_unexpected_failure_is_one_line_naming_it(cli: Cli) -> None:
    # A payload nested deeper than Python's recursion could read, put straight into the file
    # (as an older version allowed): reading it fails inside a library, not on bad input.
    with sqlite3.connect(cli.home / "vault.db") as conn:
        deep = "[" * 5000 + "]" * 5000
        conn.execute(
            "INSERT INTO entities (entity_id, entity_type, tenant_id, payload, truth_level, origin_source, "
            "origin_chain, accepted_by_user, last_modified_by_level, version, base_version, base_clock, "
            "last_modified_at, device_id, contract_version, deleted, mutation, hub_known) VALUES "
            "('e1', 'note', 'local', CAST(? AS BLOB), 1, 'user:cli', '[]', 0, 1, 1, 0, NULL, "
            "'2026-01-01T00:00:00.000Z-0000', 'd', 1, 0, NULL, 0)",
            ('{"a":' + deep + "}",),
        )
    result = cli.run("show", "e1", check=False)
    _one_line_error(result, "error:")
    debug = Cli(cli.home)
    debug.env["TRUTHVAULT_DEBUG"] = "1"
    assert "Traceback" in debug.run("show", "e1", check=False).stderr


def test_tables_fit_an_80_column_terminal_and_keep_every_column(cli: Cli) -> None:
    long = "a note long enough to need more room than any terminal has " * 3
    eid = cli.json("note", "add", long + "🎉")["item"]["entity_id"]
    cli.run("task", "add", "short")
    rid = cli.json("edit", eid, "--set", "text=an AI's idea", "--source", "ai-local:m")["record_id"]
    cli.run("reject", rid)
    cli.env["COLUMNS"] = "80"
    listing = cli.run("list").stdout.splitlines()
    assert all(len(line) <= 80 for line in listing), listing
    row = next(line for line in listing if eid in line)  # the id in full
    assert " note " in row and " U1 " in row and "…" in row
    assert any(" task " in line and "short" in line for line in listing)
    records = cli.run("suggestions", "--status", "all").stdout
    assert rid in records and "(rejected)" in records
