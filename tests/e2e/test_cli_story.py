"""End to end: a real hub process and two vaults in separate folders, driven through the CLI.

The story walks the contract's cases A, B and C and the delete rule, on each backend.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Cli, HubProc

pytestmark = pytest.mark.e2e


def entity_id(result: dict[str, Any]) -> str:
    return str(result["item"]["entity_id"])


def text_of(cli: Cli, eid: str) -> str:
    return str(cli.json("show", eid)["item"]["payload"].get("text"))


@pytest.mark.both_backends
def test_two_devices_through_a_real_hub(hub: HubProc, laptop: Cli, phone: Cli) -> None:
    # -- case A: U1 beats every lower level; the AI's version waits as a suggestion ----------
    note = laptop.json("note", "add", "the user's words")
    nid = entity_id(note)
    assert note["item"]["truth_level"] == 1
    laptop.sync()
    phone.sync()
    assert text_of(phone, nid) == "the user's words"

    ai = phone.json("put", "note", '{"text": "an AI rewrite"}', "--id", nid, "--source", "ai-cloud:acme/big")
    assert ai["outcome"] == "suggestion"
    phone.sync()
    laptop.sync()
    assert text_of(laptop, nid) == "the user's words"
    pending = laptop.json("suggestions")
    assert [s["item"]["origin_source"] for s in pending] == ["ai-cloud:acme/big"]

    accepted = laptop.json("accept", pending[0]["id"])
    assert accepted["truth_level"] == 1 and accepted["accepted_by_user"] is True
    assert accepted["origin_chain"][-1]["source"] == "ai-cloud:acme/big"
    laptop.sync()
    phone.sync()
    shown = phone.json("show", nid)["item"]
    assert shown["payload"]["text"] == "an AI rewrite" and shown["truth_level"] == 1
    assert laptop.json("suggestions") == []

    # -- case B: U1 vs U1 made apart: last write wins, the loser is a conflict record -------
    laptop.run("edit", nid, "--set", "text=laptop's edit")
    phone.run("edit", nid, "--set", "text=phone's later edit")
    laptop.sync()
    phone.sync()
    laptop.sync()
    assert text_of(laptop, nid) == text_of(phone, nid) == "phone's later edit"
    conflicts = laptop.json("conflicts")
    assert [c["item"]["payload"]["text"] for c in conflicts] == ["laptop's edit"]
    hub_events = laptop.json("events", "--hub", "--type", "CONFLICT_DETECTED")
    assert any(e["entity_id"] == nid for e in hub_events)

    laptop.run("conflicts", "resolve", conflicts[0]["id"], "--restore")
    phone.sync()
    assert text_of(phone, nid) == text_of(laptop, nid) == "laptop's edit"
    assert laptop.json("conflicts") == []

    # -- case C: among lower levels the higher authority wins, then the later write ---------
    task = laptop.json("task", "add", "water the plants", "--source", "automation:garden")
    tid = entity_id(task)
    assert task["item"]["truth_level"] == 2
    laptop.sync()
    phone.sync()
    lower = phone.json(
        "put", "task", '{"title": "water the plants twice"}', "--id", tid, "--source", "ai-local:m"
    )
    assert lower["outcome"] == "suggestion"
    same = phone.json(
        "put", "task", '{"title": "water at dawn"}', "--id", tid, "--source", "automation:garden-v2"
    )
    assert same["outcome"] == "applied"
    phone.sync()
    laptop.sync()
    assert laptop.json("show", tid)["item"]["payload"]["title"] == "water at dawn"
    assert laptop.json("show", tid)["item"]["truth_level"] == 2

    # -- the delete rule: an automation cannot delete user truth; the user can -------------
    keep = entity_id(laptop.json("note", "add", "keep me"))
    laptop.sync()
    phone.sync()
    auto_delete = phone.json("delete", keep, "--source", "automation:cleanup")
    assert auto_delete["outcome"] == "suggestion"
    phone.sync()
    laptop.sync()
    assert laptop.json("show", keep)["item"]["deleted"] is False
    laptop.run("delete", keep)
    laptop.sync()
    phone.sync()
    assert phone.json("show", keep)["item"]["deleted"] is True
    assert keep not in [i["entity_id"] for i in phone.json("list")]

    # -- both replicas hold the same state as the hub ----------------------------------------
    left, right = laptop.json("sync", "check"), phone.json("sync", "check")
    assert left["in_sync"] and right["in_sync"]
    assert left["local"] == right["local"] == left["hub"]
    assert hub.alive()


def test_bad_input_is_one_line_and_nothing_changes(laptop: Cli) -> None:
    before = laptop.json("list")
    for args, needle in [
        (["put", "note", "{not json"], "not valid JSON"),
        (["put", "note", "{}", "--source", "robot:x"], "origin_source"),
        (["show", "no-such-id"], "no-such-id"),
        (["accept", "no-such-suggestion"], "no-such-suggestion"),
    ]:
        result = laptop.run(*args, check=False)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert lines and lines[0].startswith("error:") and needle in result.stderr
        assert "Traceback" not in result.stderr
    assert laptop.json("list") == before
