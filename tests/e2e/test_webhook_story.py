"""End to end through real processes (a serving hub, the command line): the README's webhook that
files incoming items as notes. The rule is added with flags and prints its URL and secret once; a
sender without the secret is refused; one with it is taken; ``automation run`` fetches what
arrived and files it as a note at level 2; a new secret retires the old one; the secret is found
in no file of the device or the hub."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .conftest import Cli, HubProc

pytestmark = pytest.mark.e2e


def _post(url: str, body: object, secret: str) -> httpx.Response:
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=10)


def _secret_of(printed: str) -> str:
    return next(line.split()[-1] for line in printed.splitlines() if line.startswith("webhook secret:"))


def test_a_webhook_that_files_incoming_items_as_notes(hub: HubProc, laptop: Cli, tmp_path: Path) -> None:
    added = laptop.run(
        "automation", "add", "file incoming items", "--on-webhook",
        "--create", "note", "--set", "title={payload.title}", "--set", "text={payload.text}",
        "--set", 'tags=["inbox"]',
    )  # fmt: skip
    assert "shown this once" in added.stdout
    url = next(line.split()[-1] for line in added.stdout.splitlines() if line.startswith("webhook URL:"))
    secret = _secret_of(added.stdout)
    assert url.startswith(f"{hub.url}/v1/hooks/") and secret.startswith("tvwh_")
    [rule] = laptop.json("automation", "list")
    assert rule["state"] == "active" and rule["rule"]["trigger"]["on"] == "webhook"
    assert secret not in str(rule)

    refused = _post(url, {"title": "spam"}, "tvwh_not-the-secret")
    assert refused.status_code == 401 and "secret" in refused.json()["error"]["message"]
    assert httpx.post(url, json={"title": "spam"}, timeout=10).status_code == 401
    taken = _post(url, {"title": "Invoice 42", "text": "from ACME, due Friday"}, secret)
    assert taken.status_code == 202
    delivery = taken.json()["delivery"]

    runs = laptop.json("automation", "run")  # fetches what waits at the hub, then runs it
    [(wid, outcome)] = runs.items()
    assert wid == f"auto:{rule['id']}:webhook:{delivery}" and outcome["status"] == "completed"
    made = [
        e for e in laptop.json("list", "--type", "note") if e["origin_source"] == f"automation:{rule['id']}"
    ]
    assert [(e["truth_level"], e["payload"]["title"]) for e in made] == [(2, "Invoice 42")]
    assert laptop.json("automation", "run") == {}  # nothing runs twice

    # a new secret: the old one stops working at once
    rotated = laptop.run("automation", "webhook", rule["id"])
    fresh = _secret_of(rotated.stdout)
    assert fresh != secret
    assert _post(url, {"title": "late"}, secret).status_code == 401
    assert _post(url, {"title": "Parcel", "text": "arrives Monday"}, fresh).status_code == 202
    laptop.sync()  # a sync takes it too; the runner then runs it
    [(_, outcome)] = laptop.json("automation", "run").items()
    assert outcome["status"] == "completed"
    assert "url" in laptop.run("automation", "show", rule["id"]).stdout

    # neither secret is in any file of the device's or the hub's
    files = [p for p in [*laptop.home.rglob("*"), *Path(hub.db).parent.rglob("*")] if p.is_file()]
    if hub.db.startswith("postgresql"):
        files = [p for p in laptop.home.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        assert secret.encode() not in data and fresh.encode() not in data, path

    # removed: its URL answers 401
    laptop.run("automation", "webhook", rule["id"], "--remove")
    assert _post(url, {"title": "gone"}, fresh).status_code == 401


def test_a_webhook_needs_a_hub(tmp_path: Path) -> None:
    alone = Cli(tmp_path / "alone")
    alone.run("init")
    failed = alone.run("automation", "add", "x", "--on-webhook", "--create", "note", check=False)
    assert failed.returncode != 0 and "not joined" in failed.stderr and "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) <= 2, failed.stderr
    assert alone.json("automation", "list") == []
