"""End to end, through the command line as a person uses it: automation rules added with
flags, a note that a rule matches, its run (a suggestion against the user's note), the rule's
log and the workflow behind it, a schedule, pausing, and bad input answered in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Cli

pytestmark = pytest.mark.e2e


def test_automations_from_the_command_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "me")
    cli.run("init")
    dated = cli.json(
        "automation", "add", "tag dated notes", "--on-write", "note",
        "--matching", r"\d{4}-\d{2}-\d{2}|tomorrow", "--add-tag", "dated",
    )  # fmt: skip
    assert dated["state"] == "active" and dated["level"] == 1
    follow = cli.json(
        "automation", "add", "follow up", "--every", "1d", "--for", "task", "--tagged", "waiting",
        "--older-than", "7", "--create", "task", "--set", "title=Follow up: {payload.title}", "--set", "done=false",
    )  # fmt: skip
    assert follow["rule"]["action"]["payload"] == {"title": "Follow up: {payload.title}", "done": False}
    note = cli.json("note", "add", "call Bob tomorrow")["item"]["entity_id"]
    cli.run("note", "add", "nothing to see")

    runs = cli.json("automation", "run")
    [(wid, outcome)] = runs.items()
    assert wid.startswith(f"auto:{dated['id']}:{note}:")
    assert outcome["status"] == "completed" and outcome["results"]["act"]["outcome"] == "suggestion"
    [suggestion] = cli.json("suggestions")
    assert (
        suggestion["entity_id"] == note and suggestion["item"]["origin_source"] == f"automation:{dated['id']}"
    )
    assert cli.json("automation", "run") == {}  # nothing is due twice

    [run] = cli.json("automation", "log", dated["id"])
    assert (run["id"], run["status"]) == (wid, "completed")
    shown = cli.json("workflow", "show", wid)
    assert shown["saga"] == "automation.run" and [s["step"] for s in shown["steps"]] == ["act"]

    cli.run("automation", "pause", dated["id"])
    assert {r["id"]: r["state"] for r in cli.json("automation", "list")}[dated["id"]] == "paused"
    cli.run("note", "add", "see you 2027-01-01")
    assert cli.json("automation", "run") == {}
    cli.run("automation", "resume", dated["id"])

    for args, message in (
        (("automation", "add", "x", "--on-write", "note"), "give one action"),
        (("automation", "add", "x", "--cron", "every day", "--add-tag", "a"), "cron"),
        (("automation", "add", "x", "--on-write", "note", "--matching", "(", "--add-tag", "a"), "matches"),
        (("automation", "show", "no-such-rule"), "no entity"),
        (("workflow", "show", "no-such-workflow"), "no workflow"),
    ):
        failed = cli.run(*args, check=False)
        assert failed.returncode != 0, args
        assert message in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
        assert len(failed.stderr.strip().splitlines()) <= 2, failed.stderr
