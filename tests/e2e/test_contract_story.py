"""Entity contracts on the command line, against a real hub process on each backend: a
compatible version added on the laptop reaches the phone by sync; a breaking one is refused
with one line that lists what breaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Cli

pytestmark = pytest.mark.e2e

STR = {"type": "string"}
NOTE_V2 = {
    "type": "object",
    "properties": {
        "text": STR,
        "title": STR,
        "tags": {"type": "array", "items": STR},
        "pinned": {"type": "boolean"},
    },
}


def _error_line(result: object) -> str:
    assert result.returncode != 0  # type: ignore[attr-defined]
    err: str = result.stderr  # type: ignore[attr-defined]
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("error:") and len(lines) <= 2 and "Traceback" not in err, err
    return lines[0]


def test_a_contract_added_on_one_device_reaches_the_other(laptop: Cli, phone: Cli, tmp_path: Path) -> None:
    assert [(c["entity_type"], c["version"]) for c in laptop.json("contract", "list")] == [
        ("note", 1),
        ("task", 1),
    ]
    v2 = tmp_path / "note-v2.json"
    v2.write_text(json.dumps(NOTE_V2))
    assert "added note contract v2 (major 1)" in laptop.run("contract", "add", "note", str(v2)).stdout

    breaking = tmp_path / "breaking.json"
    breaking.write_text(json.dumps({"type": "object", "properties": {"text": {"type": "integer"}}}))
    line = _error_line(laptop.run("contract", "add", "note", str(breaking), check=False))
    for said in ("breaking change", "tags: field removed", "text: type changed from string to integer"):
        assert said in line
    line = _error_line(laptop.run("contract", "add", "note", str(v2), "--source", "ai-local:m", check=False))
    # the kernel refuses it before anything is sent: AI never runs a security action
    assert "may not run contract.add" in line and "builtin.ai-no-security" in line
    line = _error_line(laptop.run("contract", "add", "note", str(tmp_path / "missing.json"), check=False))
    assert "FILE: cannot read" in line

    phone.sync()
    assert [c["version"] for c in phone.json("contract", "list") if c["entity_type"] == "note"] == [1, 2]
    assert json.loads(phone.run("contract", "show", "note").stdout)["properties"]["pinned"] == {
        "type": "boolean"
    }
    assert (
        "pinned"
        not in json.loads(phone.run("contract", "show", "note", "--version", "1").stdout)["properties"]
    )
    line = _error_line(phone.run("put", "note", '{"pinned": "yes"}', check=False))
    assert line == 'error: payload.pinned: "yes" is not of type "boolean" (note contract v2)'
    made = phone.json("put", "note", '{"text": "pinned", "pinned": true}')["item"]
    assert made["contract_version"] == 2
    phone.sync()
    laptop.sync()
    assert laptop.json("show", made["entity_id"])["item"]["contract_version"] == 2
