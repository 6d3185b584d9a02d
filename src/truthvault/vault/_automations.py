"""A vault's automations: its rules (entities of type ``automation``) and the runner that turns
what they match into durable runs.

Each match is one workflow (``automation.run``) named by what it matched, ``auto:<rule>:<entity>:
<version>`` for a write, ``auto:<rule>:<entity or ->:<time>`` for a schedule's run and
``auto:<rule>:webhook:<delivery>`` for a webhook's delivery, so that a match found twice (a
runner killed before it cleared its inbox, two runners at once, a delivery fetched twice) still
runs once. The runner looks at the inbox of writes (:mod:`._inbox`), at the webhook deliveries a
sync took from the hub (:meth:`Automations.receive`) and at each scheduled rule's times since
its last run, starts the runs, then clears what it looked at.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, NotFound, TruthvaultError
from ..kernel._automation import (
    Rule,
    ScheduleTrigger,
    WebhookTrigger,
    WriteTrigger,
    matches,
    new_hook_id,
    parse_rule,
    selected,
    slots_due,
)
from ..truth import TruthLevel
from ._inbox import AUTOMATION_TYPE

if TYPE_CHECKING:
    from ..kernel import WorkflowEngine, WorkflowInfo
    from ..model import SyncItem
    from ._vault import Vault

__all__ = ["Automations", "RuleEntry"]

#: how many inbox rows the runner takes at a time
_BATCH = 500


@dataclass(frozen=True, slots=True)
class RuleEntry:
    """A rule as the vault holds it: its entity, and the rule (None with ``error`` when its
    payload is not a rule; ``active``: written by the user and not paused)."""

    item: SyncItem
    rule: Rule | None
    error: str | None = None

    @property
    def id(self) -> str:
        return self.item.entity_id

    @property
    def active(self) -> bool:
        return self.rule is not None and not self.rule.paused and self.item.truth_level == TruthLevel.USER

    def runs_on(self, device_id: str) -> bool:
        """Whether ``device_id`` runs it: the device that last wrote it (added, paused or
        resumed it there), so that a match that reaches every device is acted on once."""
        return self.active and self.item.device_id == device_id


def _entry(item: SyncItem) -> RuleEntry:
    try:
        return RuleEntry(item, parse_rule(item.data()))
    except InvalidInput as exc:
        return RuleEntry(item, None, exc.message)


class Automations:
    """The automations of ``vault``."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    # -- the rules ---------------------------------------------------------------------
    def rules(self) -> list[RuleEntry]:
        """Every rule, newest first (ones that are not valid rules too, with their error)."""
        return [_entry(i) for i in self.vault.list(AUTOMATION_TYPE, limit=None)]

    def get(self, rule_id: str) -> RuleEntry:
        """Rule ``rule_id`` (NotFound if no automation has that id)."""
        item = self.vault.get(rule_id)
        if item.entity_type != AUTOMATION_TYPE:
            raise NotFound(f"{rule_id} is a {item.entity_type}, not an automation")
        return _entry(item)

    def add(self, rule: dict[str, Any], *, source: str | None = None) -> RuleEntry:
        """Write a new rule (checked first: InvalidInput naming the field). A webhook rule gets
        a new hook id (one given is replaced: a new rule is a new hook, with its own secret);
        registering it at the hub is :func:`truthvault.sync.register_webhook`."""
        trigger = rule.get("trigger")
        if isinstance(trigger, dict) and trigger.get("on") == "webhook":
            rule = {**rule, "trigger": {**trigger, "hook": new_hook_id()}}
        checked = parse_rule(rule)
        written = self.vault.kernel.run(
            "entity.put",
            {"type": AUTOMATION_TYPE, "data": checked.model_dump(mode="json", exclude_none=True)},
            actor=self.vault.actor(source),
        )
        return _entry(written.item)  # type: ignore[attr-defined]

    def set_paused(self, rule_id: str, paused: bool, *, source: str | None = None) -> RuleEntry:
        """Pause or resume a rule (an edit of its entity, at the editor's level)."""
        self.get(rule_id)
        written = self.vault.kernel.run(
            "entity.edit", {"id": rule_id, "changes": {"paused": paused}}, actor=self.vault.actor(source)
        )
        return _entry(written.item)  # type: ignore[attr-defined]

    # -- running -----------------------------------------------------------------------
    def run_rule(self, engine: WorkflowEngine, rule_id: str, entity_id: str | None = None) -> list[str]:
        """Run a rule now: on ``entity_id``, or (a scheduled rule without one) on what its query
        finds now; the workflows started."""
        entry = self.get(rule_id)
        if entry.rule is None:
            raise InvalidInput(f"automation {rule_id} is not a valid rule: {entry.error}")
        now = datetime.now(UTC)
        if entity_id is not None:
            self.vault.get(entity_id)
            return [self._start(engine, rule_id, entity_id, f"manual-{now.isoformat()}")]
        trigger = entry.rule.trigger
        if isinstance(trigger, ScheduleTrigger):
            return self._fire(engine, entry, trigger, now, f"manual-{now.isoformat()}")
        if isinstance(trigger, WebhookTrigger):
            raise InvalidInput(f"automation {rule_id} acts on webhook deliveries: it runs when one arrives")
        raise InvalidInput(f"automation {rule_id} acts on writes: name the entity to run it on (--on ID)")

    def run_pending(self, engine: WorkflowEngine, now: datetime | None = None) -> list[str]:
        """Start a run for every write in the inbox that a rule matches and for every time a
        scheduled rule fired since its last run; the workflows started."""
        now = now or datetime.now(UTC)
        here = self.vault.device_id
        active = [e for e in self.rules() if e.runs_on(here)]
        started = self._writes(engine, [e for e in active if isinstance(e.rule.trigger, WriteTrigger)])  # type: ignore[union-attr]
        hooked = {e.id for e in active if e.rule is not None and isinstance(e.rule.trigger, WebhookTrigger)}
        started += self._deliveries(engine, hooked)
        for entry in active:
            trigger = entry.rule.trigger  # type: ignore[union-attr]
            if isinstance(trigger, ScheduleTrigger):
                started += self._schedule(engine, entry, trigger, now)
        return started + self._backup(engine, now)

    def _backup(self, engine: WorkflowEngine, now: datetime) -> list[str]:
        """The scheduled backup's run, when one is due (see _backup)."""
        from ._backup import schedule_of, set_schedule

        plan = schedule_of(self.vault)
        if plan is None:
            return []
        trigger = ScheduleTrigger(on="schedule", every=plan.get("every"), cron=plan.get("cron"))  # type: ignore[arg-type]
        last = plan.get("last")
        slots = slots_due(trigger, datetime.fromisoformat(str(last)) if last else now, now)[-1:]
        if last and not slots:
            return []
        started = []
        if slots:
            slot = slots[-1].isoformat()
            params = {"to": plan["to"], "keep": plan.get("keep", 7), "slot": slot}
            actor = {"source": self.vault.source or "user:device", "device_id": self.vault.device_id}
            started.append(
                engine.start("vault.export.scheduled", params, actor=actor, workflow_id=f"backup:{slot}")
            )
        set_schedule(self.vault, {**plan, "last": (slots[-1] if slots else now).isoformat()})
        return started

    def watch(
        self,
        engine: WorkflowEngine,
        stop: threading.Event,
        *,
        poll_s: float = 1.0,
        on_run: Callable[[list[str]], None] | None = None,
        fetch: Callable[[], object] | None = None,
        fetch_every_s: float = 10.0,
    ) -> None:
        """Run what is pending until ``stop`` is set: at once when a write here commits, else
        every ``poll_s`` (writes of other processes, schedules). ``fetch``, called every
        ``fetch_every_s``, takes webhook deliveries from the hub (it calls :meth:`receive`)."""
        inbox = self.vault._db.inbox
        fetched = -fetch_every_s
        while not stop.is_set():
            inbox.ready.clear()
            if fetch is not None and time.monotonic() - fetched >= fetch_every_s:
                fetched = time.monotonic()
                fetch()
            started = self.run_pending(engine)
            if started and on_run is not None:
                on_run(started)
            inbox.ready.wait(poll_s)

    def log(self, engine: WorkflowEngine, rule_id: str, limit: int = 50) -> list[WorkflowInfo]:
        """The rule's runs, newest first."""
        self.get(rule_id)
        return engine.list(prefix=f"auto:{rule_id}:", limit=limit)

    # -- webhooks ----------------------------------------------------------------------
    def webhooks(self) -> list[RuleEntry]:
        """The webhook rules this device runs (whose deliveries a sync here takes)."""
        here = self.vault.device_id
        return [e for e in self.rules() if e.runs_on(here) and isinstance(e.rule.trigger, WebhookTrigger)]  # type: ignore[union-attr]

    def deleted_unhooked(self) -> list[str]:
        """Rules deleted here whose hooks (if any) the hub has not yet been told to drop."""
        with self.vault._db.read() as conn:
            rows = conn.execute(
                "SELECT entity_id FROM entities WHERE entity_type = ? AND deleted = 1", (AUTOMATION_TYPE,)
            ).fetchall()
        done = set(json.loads(self.vault._db.meta_str("webhooks_unhooked") or "[]"))
        return [str(r[0]) for r in rows if r[0] not in done]

    def note_unhooked(self, rule_ids: list[str]) -> None:
        """Note that the hub dropped the hooks of these deleted rules (see :meth:`deleted_unhooked`)."""
        with self.vault._db.tx():
            done = set(json.loads(self.vault._db.meta("webhooks_unhooked") or "[]")) | set(rule_ids)
            self.vault._db.set_meta("webhooks_unhooked", json.dumps(sorted(done)))

    def receive(self, rule_id: str, deliveries: list[dict[str, Any]]) -> int:
        """Keep deliveries a sync took from the hub for rule ``rule_id`` (each ``{"id",
        "received_at", "body"}``) until the runner starts their runs; how many were new. Once
        this returns they are safe here, and the hub may delete them."""
        rows = [
            (str(d["id"]), rule_id, str(d.get("received_at") or ""), json.dumps(d.get("body")))
            for d in deliveries
        ]
        if not rows:
            return 0
        with self.vault._db.tx() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO webhook_inbox (delivery_id, rule_id, received_at, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (delivery_id) DO NOTHING",
                rows,
            )
            added = conn.total_changes - before
        self.vault._db.inbox.ready.set()
        return added

    def _deliveries(self, engine: WorkflowEngine, rules: set[str]) -> list[str]:
        """Start a run for each delivery kept for an active rule here. One for a rule paused or
        moved to another device waits; one whose rule was deleted becomes a dead letter (its
        hub copy went: nothing is dropped silently)."""
        self._orphans()
        if not rules:
            return []
        with self.vault._db.read() as conn:
            rows = conn.execute(
                "SELECT delivery_id, rule_id, received_at, body FROM webhook_inbox "
                f"WHERE rule_id IN ({', '.join('?' * len(rules))}) ORDER BY received_at LIMIT ?",
                (*sorted(rules), _BATCH),
            ).fetchall()
        started, done = [], []
        for delivery_id, rule_id, received_at, body in rows:
            delivery = {"id": delivery_id, "received_at": received_at, "body": json.loads(body)}
            try:
                started.append(self._start(engine, rule_id, None, f"webhook:{delivery_id}", delivery))
            except TruthvaultError as exc:  # one the engine will not start must not stop the rest
                self._letter(rule_id, delivery, "automation.run (start)", exc.message)
            done.append((delivery_id,))
        if done:
            with self.vault._db.tx() as conn:
                conn.executemany("DELETE FROM webhook_inbox WHERE delivery_id = ?", done)
        return started

    def _orphans(self) -> None:
        """Deliveries whose rule was deleted before they ran: dead letters."""
        with self.vault._db.read() as conn:
            rows = conn.execute(
                "SELECT w.delivery_id, w.rule_id, w.received_at, w.body FROM webhook_inbox w "
                "JOIN entities e ON e.entity_id = w.rule_id WHERE e.deleted = 1"
            ).fetchall()
        for delivery_id, rule_id, received_at, body in rows:
            delivery = {"id": delivery_id, "received_at": received_at, "body": json.loads(body)}
            self._letter(
                rule_id, delivery, "automation.run (rule deleted)", "its rule was deleted before it ran"
            )
        if rows:
            with self.vault._db.tx() as conn:
                conn.executemany("DELETE FROM webhook_inbox WHERE delivery_id = ?", [(r[0],) for r in rows])

    def _letter(self, rule_id: str, delivery: dict[str, Any], source: str, error: str) -> None:
        self.vault.dead_letters.add(
            "automation", f"auto:{rule_id}:webhook:{delivery['id']}", source, error,
            {"saga": "automation.run", "input": {"rule_id": rule_id, "entity_id": None, "delivery": delivery}}, 1,
        )  # fmt: skip

    # -- inside ------------------------------------------------------------------------
    def _writes(self, engine: WorkflowEngine, rules: list[RuleEntry]) -> list[str]:
        rows = self._inbox()
        started: list[str] = []
        for _, entity_id, version in rows:
            try:
                item = self.vault.get(entity_id)
            except NotFound:
                continue
            if item.version != version:
                continue  # a newer version has its own row
            payload = item.data()
            for entry in rules:
                trigger = entry.rule.trigger  # type: ignore[union-attr]
                assert isinstance(trigger, WriteTrigger)
                if matches(trigger, item.entity_type, payload):
                    started.append(self._start(engine, entry.id, entity_id, str(version)))
        self._clear(rows)
        return started

    def _inbox(self) -> list[tuple[int, str, int]]:
        """The oldest rows of the inbox: (n, entity id, version)."""
        with self.vault._db.read() as conn:
            rows = conn.execute(
                "SELECT n, entity_id, version FROM automation_inbox ORDER BY n LIMIT ?", (_BATCH,)
            ).fetchall()
        return [(int(n), str(e), int(v)) for n, e, v in rows]

    def _clear(self, rows: list[tuple[int, str, int]]) -> None:
        """Remove the rows looked at, each by all it holds: another runner may have removed them
        already, and a write since have taken the same n (a rowid is reused once the table empties)."""
        if rows:
            with self.vault._db.tx() as conn:
                conn.executemany(
                    "DELETE FROM automation_inbox WHERE n = ? AND entity_id = ? AND version = ?", rows
                )

    def _schedule(
        self, engine: WorkflowEngine, entry: RuleEntry, trigger: ScheduleTrigger, now: datetime
    ) -> list[str]:
        db = self.vault._db
        with db.read() as conn:
            row = conn.execute(
                "SELECT last_slot FROM automation_state WHERE rule_id = ?", (entry.id,)
            ).fetchone()
        # a new rule counts from now: it does not catch up on times before it
        since = now if row is None else datetime.fromisoformat(row[0])
        # the times it missed (the device was off) make one run, at the last of them
        slots = slots_due(trigger, since, now)[-1:]
        started: list[str] = []
        for slot in slots:
            started += self._fire(engine, entry, trigger, now, slot.isoformat())
        if row is None or slots:
            mark = (slots[-1] if slots else now).isoformat()
            with db.tx() as conn:
                conn.execute(
                    "INSERT INTO automation_state (rule_id, last_slot) VALUES (?, ?) "
                    "ON CONFLICT (rule_id) DO UPDATE SET last_slot = excluded.last_slot",
                    (entry.id, mark),
                )
        return started

    def _fire(
        self, engine: WorkflowEngine, entry: RuleEntry, trigger: ScheduleTrigger, now: datetime, slot: str
    ) -> list[str]:
        if trigger.query is None:
            return [self._start(engine, entry.id, None, slot)]
        found = [
            i.entity_id
            for i in self.vault.list(trigger.query.type, limit=None)
            if selected(trigger.query, i.entity_type, i.data(), i.last_modified_at, now)
        ]
        return [self._start(engine, entry.id, eid, slot) for eid in found]

    def _start(
        self,
        engine: WorkflowEngine,
        rule_id: str,
        entity_id: str | None,
        mark: str,
        delivery: dict[str, Any] | None = None,
    ) -> str:
        wid = f"auto:{rule_id}:{mark}" if delivery else f"auto:{rule_id}:{entity_id or '-'}:{mark}"
        actor = {
            "source": f"automation:{rule_id}",
            "device_id": self.vault.device_id,
            "tenant_id": self.vault.tenant_id,
        }
        params: dict[str, Any] = {"rule_id": rule_id, "entity_id": entity_id}
        if delivery is not None:
            params["delivery"] = delivery
        return engine.start("automation.run", params, actor=actor, workflow_id=wid)
