"""Automations across the user's devices: a rule syncs to every device, and so do the writes it
matches; each match must still be acted on once, not once per device that runs a runner."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from truthvault.vault import vault_engine

from ..stores import Devices

pytestmark = pytest.mark.timeout(120)

FOLLOW_UP = {
    "name": "a task for every note",
    "trigger": {"on": "write", "type": "note"},
    "action": {"do": "create", "type": "task", "payload": {"title": "Follow up: {payload.text}"}},
}


def test_a_match_is_acted_on_once_across_devices(devices: Callable[..., Devices]) -> None:
    d = devices("laptop", "phone")
    laptop, phone = d.vaults["laptop"], d.vaults["phone"]
    laptop.automations.add(FOLLOW_UP)
    laptop.put("note", {"text": "call the plumber"})
    for name, vault in (("laptop", laptop), ("phone", phone)):
        d.syncers[name].sync()
        with vault_engine(vault) as engine:  # one engine a process: the devices take turns
            for wid in vault.automations.run_pending(engine):
                engine.result(wid)
        d.syncers[name].sync()
    d.syncers["laptop"].sync()
    made = [t for t in laptop.list("task", limit=None) if t.origin_source.startswith("automation:")]
    assert len(made) == 1  # the laptop wrote the rule: the laptop runs it
    assert [r.runs_on(phone.device_id) for r in phone.automations.rules()] == [False]
    # resumed on the phone, the phone runs it, and the laptop no longer does
    rule = phone.automations.rules()[0]
    phone.automations.set_paused(rule.id, False)
    phone.put("note", {"text": "water the plants"})
    for name, vault in (("phone", phone), ("laptop", laptop)):
        d.syncers[name].sync()
        with vault_engine(vault) as engine:
            for wid in vault.automations.run_pending(engine):
                engine.result(wid)
        d.syncers[name].sync()
    d.syncers["phone"].sync()
    made = [t for t in phone.list("task", limit=None) if t.origin_source.startswith("automation:")]
    assert sorted(t.data()["title"] for t in made) == [
        "Follow up: call the plumber",
        "Follow up: water the plants",
    ]
