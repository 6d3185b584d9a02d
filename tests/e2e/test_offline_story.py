"""Offline governance on the command line, against a real hub process on each backend: the
phone is offline while the laptop adds a breaking contract version; at its sync the phone's
items are parked (one error line saying so), nothing is lost, the user edits and applies them;
one written under an upcastable version is upcast and reaches the laptop; the hub's admin sees
each device's risk with 'hub devices --stale'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Cli, HubProc

pytestmark = pytest.mark.e2e

STR = {"type": "string"}


def test_a_stale_phone_parks_then_applies_and_upcasts(
    hub: HubProc, laptop: Cli, phone: Cli, tmp_path: Path
) -> None:
    laptop.sync()
    phone.sync()
    # the phone, offline, writes under note v1
    kept = phone.json("note", "add", "collected a Rafflesia sample")["item"]["entity_id"]
    # the laptop makes a breaking change: "text" becomes "body", required (no upcaster)
    v2 = tmp_path / "note-v2.json"
    v2.write_text(json.dumps({"type": "object", "properties": {"body": STR}, "required": ["body"]}))
    assert "major 2" in laptop.run("contract", "add", "note", str(v2), "--major").stdout

    done = phone.run("sync", "now", check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and lines[0].startswith("error: 1 item written under a contract version")
    assert kept in lines[0] and "no upcaster from major 1" in lines[0]
    assert lines[1].startswith("hint: everything else synced; 'truthvault parked' lists them")
    # not at the hub, not lost on the phone
    assert phone.json("show", kept)["item"]["payload"] == {"text": "collected a Rafflesia sample"}
    laptop.sync()
    assert kept not in {i["entity_id"] for i in laptop.json("list")}
    [parked] = phone.json("parked")
    assert (parked["entity_id"], parked["contract_version"]) == (kept, 1)
    # the user edits it to fit, and applies it
    phone.run("edit", kept, '{"body": "collected a Rafflesia sample"}', "--replace")
    assert "was edited since" in phone.run("parked", "apply", str(parked["id"])).stdout
    assert phone.run("parked").stdout.strip() == "nothing is parked"
    phone.sync()
    laptop.sync()
    assert laptop.json("show", kept)["item"]["payload"] == {"body": "collected a Rafflesia sample"}

    # v3, a new major version that says how v2 payloads upcast: written offline, applied at sync
    phone.sync()
    later = phone.json("put", "note", '{"body": "day 11"}')["item"]["entity_id"]
    v3 = tmp_path / "note-v3.json"
    upcaster = {"from_major": 2, "rename": {"body": "text"}, "defaults": {"day": 0}}
    v3.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"text": STR, "day": {"type": "integer"}},
                "required": ["text", "day"],
                "x-upcast": upcaster,
            }
        )
    )
    assert "major 3" in laptop.run("contract", "add", "note", str(v3), "--major").stdout
    stats = phone.sync()
    assert stats["upcast"] == [later] and stats["parked"] == []
    laptop.sync()
    shown = laptop.json("show", later)["item"]
    assert (shown["payload"], shown["contract_version"]) == ({"text": "day 11", "day": 0}, 3)

    # the admin's view: every device reported at its sync; both are current, so low risk
    rows = {r["name"]: r for r in hub.admin.json("hub", "devices", "--tenant", "family", "--stale")}
    assert {n: r["risk"] for n, r in rows.items()} == {"laptop": "low", "phone": "low"}
    assert rows["phone"]["contracts"]["note"] == [3] and rows["phone"]["app_version"]
