"""Webhook deliveries on a vault, once a sync took them: each is kept once however often it
arrives, runs once as ``automation:<rule-id>`` at level 2, waits while its rule is paused, and
the runner's watch loop fetches them as it runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from truthvault.errors import InvalidInput
from truthvault.kernel import WorkflowEngine
from truthvault.kernel._automation import parse_rule
from truthvault.vault import Vault, vault_engine

pytestmark = pytest.mark.timeout(120)

FILE_AS_NOTE = {
    "name": "file incoming items as notes",
    "trigger": {"on": "webhook"},
    "action": {
        "do": "create",
        "type": "note",
        "payload": {"title": "{payload.title}", "from": "{payload.who.name}"},
    },
}


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.open(tmp_path / "v", source="user:cli") as v:
        yield v


@pytest.fixture
def engine(vault: Vault) -> Iterator[WorkflowEngine]:
    with vault_engine(vault) as running:
        yield running


def _delivery(n: int, title: str) -> dict[str, object]:
    return {
        "id": f"d{n}",
        "received_at": f"2026-12-07T10:00:0{n}.000Z",
        "body": {"title": title, "who": {"name": "ACME"}},
    }


def _notes(vault: Vault, rule_id: str) -> list[dict[str, object]]:
    return [n.data() for n in vault.list("note", limit=None) if n.origin_source == f"automation:{rule_id}"]


def test_a_delivery_is_kept_once_and_runs_once(vault: Vault, engine: WorkflowEngine) -> None:
    rule = vault.automations.add(FILE_AS_NOTE)
    assert [e.id for e in vault.automations.webhooks()] == [rule.id]
    assert vault.automations.receive(rule.id, [_delivery(1, "Invoice 42")]) == 1
    assert vault.automations.receive(rule.id, [_delivery(1, "Invoice 42")]) == 0  # taken twice: kept once
    [run] = vault.automations.run_pending(engine)
    assert run == f"auto:{rule.id}:webhook:d1" and engine.result(run)["status"] == "completed"
    assert _notes(vault, rule.id) == [{"title": "Invoice 42", "from": "ACME"}]
    [made] = [n for n in vault.list("note", limit=None) if n.origin_source == f"automation:{rule.id}"]
    assert made.truth_level == 2
    # taken again after it ran (the hub never heard the ack): the run is not repeated
    vault.automations.receive(rule.id, [_delivery(1, "Invoice 42")])
    assert vault.automations.run_pending(engine) == [run]  # the same workflow, not a new one
    assert len(_notes(vault, rule.id)) == 1


def test_a_delivery_waits_while_its_rule_is_paused(vault: Vault, engine: WorkflowEngine) -> None:
    rule = vault.automations.add(FILE_AS_NOTE)
    vault.automations.set_paused(rule.id, True)
    assert vault.automations.webhooks() == []
    vault.automations.receive(rule.id, [_delivery(2, "later")])
    assert vault.automations.run_pending(engine) == []
    vault.automations.set_paused(rule.id, False)
    for wid in vault.automations.run_pending(engine):
        engine.result(wid)
    assert _notes(vault, rule.id) == [{"title": "later", "from": "ACME"}]


def test_a_webhook_rule_gets_its_own_hook_and_runs_only_on_a_delivery(vault: Vault) -> None:
    first = vault.automations.add(FILE_AS_NOTE)
    given = {**FILE_AS_NOTE, "trigger": {"on": "webhook", "hook": first.rule.trigger.hook}}  # type: ignore[union-attr]
    second = vault.automations.add(given)
    assert second.rule.trigger.hook != first.rule.trigger.hook  # type: ignore[union-attr]
    with vault_engine(vault) as engine, pytest.raises(InvalidInput, match="webhook deliveries"):
        vault.automations.run_rule(engine, first.id)
    with pytest.raises(InvalidInput, match=r"trigger\.webhook\.hook"):
        parse_rule({**FILE_AS_NOTE, "trigger": {"on": "webhook", "hook": "short"}})


def test_the_watch_loop_fetches_deliveries(vault: Vault, engine: WorkflowEngine) -> None:
    rule = vault.automations.add(FILE_AS_NOTE)
    stop = threading.Event()
    ran: list[str] = []

    def fetch() -> None:
        vault.automations.receive(rule.id, [_delivery(3, "watched")])

    def on_run(ids: list[str]) -> None:
        ran.extend(ids)
        stop.set()

    vault.automations.watch(engine, stop, poll_s=0.05, on_run=on_run, fetch=fetch)
    assert ran == [f"auto:{rule.id}:webhook:d3"]
    engine.result(ran[0])
    assert _notes(vault, rule.id) == [{"title": "watched", "from": "ACME"}]


def test_a_delivery_whose_rule_was_deleted_is_a_dead_letter(vault: Vault, engine: WorkflowEngine) -> None:
    rule = vault.automations.add(FILE_AS_NOTE)
    other = vault.automations.add({**FILE_AS_NOTE, "name": "another"})
    vault.automations.set_paused(other.id, True)
    vault.automations.receive(rule.id, [_delivery(4, "orphan")])
    vault.automations.receive(other.id, [_delivery(5, "waits")])
    vault.delete(rule.id)
    assert vault.automations.run_pending(engine) == []
    [letter] = vault.dead_letters.list()
    assert (letter.kind, letter.ref, letter.error) == (
        "automation",
        f"auto:{rule.id}:webhook:d4",
        "its rule was deleted before it ran",
    )
    assert letter.input["input"]["delivery"]["body"]["title"] == "orphan"  # type: ignore[index]
    assert vault.automations.run_pending(engine) == []  # kept once, not again
    assert len(vault.dead_letters.list()) == 1
    vault.automations.set_paused(other.id, False)  # the paused rule's delivery waited
    [run] = vault.automations.run_pending(engine)
    assert engine.result(run)["status"] == "completed"
