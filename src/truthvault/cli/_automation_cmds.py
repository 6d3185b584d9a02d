"""``truthvault automation add|list|show|pause|resume|run|log|webhook`` and ``truthvault workflow
list|show|resume|cancel`` on a device.

An automation's runs are durable workflows: ``automation run`` launches this vault's workflow
engine (DBOS, on ``workflows.sqlite`` in the vault's folder), which also resumes runs a killed
process left. Listing and logs read that database without running anything.

A webhook rule's secret is printed once, when the rule is added (or given a new one with
``automation webhook ID``): the device keeps it nowhere, the hub keeps only its hash.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

import click

from ..errors import ConflictState, HubUnavailable, InvalidInput
from ._common import err_console, json_option, open_vault, out, print_json, table
from ._workflow_cmds import as_dict, show_workflow, when

if TYPE_CHECKING:
    from ..kernel import WorkflowEngine
    from ..sync import WebhookSecret
    from ..vault import RuleEntry, Vault
    from ._output import Struck

__all__ = ["register"]


@contextmanager
def _engine(vault: Vault, *, launch: bool) -> Iterator[WorkflowEngine]:
    from ..sync import device_engine

    engine = device_engine(vault)
    if launch:
        engine.launch()
    try:
        yield engine
    finally:
        engine.close()


def _pairs(values: tuple[str, ...]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set {value!r}: give it as field=value")
        try:  # true, false, numbers, JSON lists and objects as themselves; the rest as text
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = text
        fields[key] = text if isinstance(parsed, str) else parsed
    return fields


def _rule_from_options(name: str, o: dict[str, object]) -> dict[str, object]:
    """The rule the options of ``automation add`` describe."""
    triggers = [k for k in ("on_write", "every", "cron", "on_webhook") if o.get(k)]
    if len(triggers) != 1:
        raise InvalidInput("give one trigger: --on-write TYPE, --every 1d, --cron 'EXPR' or --on-webhook")
    trigger: dict[str, object]
    if o.get("on_webhook"):
        trigger = {"on": "webhook"}
    elif o.get("on_write"):
        trigger = {"on": "write", "type": None if o["on_write"] == "any" else o["on_write"]}
        trigger |= {"field": o.get("field"), "matches": o.get("matching"), "tag": o.get("tagged")}
    else:
        trigger = {"on": "schedule", "every": o.get("every"), "cron": o.get("cron")}
        query = {"type": o.get("for_type"), "tag": o.get("tagged"), "older_than_days": o.get("older_than")}
        if any(v is not None for v in query.values()):
            trigger["query"] = query
    actions = [k for k in ("add_tag", "create", "run_action") if o.get(k)]
    if len(actions) != 1:
        raise InvalidInput(
            "give one action: --add-tag TAG, --create TYPE (with --set field=value) or --run ACTION"
        )
    action: dict[str, object]
    if o.get("add_tag"):
        action = {"do": "tag", "tags": list(o["add_tag"])}  # type: ignore[call-overload]
    elif o.get("create"):
        action = {"do": "create", "type": o["create"], "payload": _pairs(o.get("set") or ())}  # type: ignore[arg-type]
    else:
        try:
            given = json.loads(str(o.get("input") or "{}"))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--input is not JSON ({exc.msg})") from None
        action = {"do": "action", "name": o["run_action"], "input": given}
    clean = {k: v for k, v in trigger.items() if v is not None}
    return {"name": name, "trigger": clean, "action": action}


def _trigger_text(entry: RuleEntry) -> str:
    if entry.rule is None:
        return "?"
    t = entry.rule.trigger.model_dump(mode="json", exclude_none=True)
    rest = " ".join(f"{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in t.items() if k != "on")
    return f"{t['on']}: {rest}" if rest else str(t["on"])


def _state(entry: RuleEntry, device_id: str) -> str:
    if entry.rule is None:
        return f"invalid: {entry.error}"
    if not entry.active:
        return (
            "paused"
            if entry.rule.paused
            else f"proposed (level {entry.item.truth_level}): accept it to run it"
        )
    if not entry.runs_on(device_id):
        return "active on another device (resume it here to run it here)"
    return "active"


def _entry_dict(entry: RuleEntry, here: str) -> dict[str, object]:
    return {
        "id": entry.id,
        "state": _state(entry, here),
        "device": entry.item.device_id,
        "rule": None if entry.rule is None else entry.rule.model_dump(mode="json", exclude_none=True),
        "level": entry.item.truth_level,
        "source": entry.item.origin_source,
    }


def register(cli: click.Group) -> None:
    """Add the automation and workflow groups."""

    @cli.group()
    def automation() -> None:
        """Automations: a trigger and an action, run durably at level 2 (what they change of
        yours becomes a suggestion)."""

    @automation.command("add")
    @click.argument("name")
    @click.option(
        "--on-write", metavar="TYPE", help="Trigger: an entity of TYPE (or 'any') written here or by sync."
    )
    @click.option("--matching", metavar="REGEX", help="Only when a text field matches REGEX.")
    @click.option("--field", help="The field --matching looks at (default: every text field).")
    @click.option("--tagged", metavar="TAG", help="Only entities tagged TAG.")
    @click.option("--every", metavar="N[mhd]", help="Trigger: every N minutes, hours or days (15m, 1h, 1d).")
    @click.option("--cron", metavar="EXPR", help="Trigger: a cron schedule ('0 9 * * 1-5').")
    @click.option(
        "--on-webhook",
        is_flag=True,
        help="Trigger: a JSON object posted to the hub's URL for this rule, with its secret "
        "(both printed once); {payload.FIELD} names the object's fields.",
    )
    @click.option("--for", "for_type", metavar="TYPE", help="A schedule acts on each entity of TYPE ...")
    @click.option("--older-than", type=click.FloatRange(0), metavar="DAYS", help="... not changed for DAYS.")
    @click.option("--add-tag", multiple=True, metavar="TAG", help="Action: tag the entity (repeatable).")
    @click.option("--create", metavar="TYPE", help="Action: create an entity of TYPE ...")
    @click.option(
        "--set",
        multiple=True,
        metavar="FIELD=TEXT",
        help="... with this field ({payload.title} names the match's).",
    )
    @click.option("--run", "run_action", metavar="ACTION", help="Action: run this action ...")
    @click.option("--input", metavar="JSON", help="... with this input ({id} names the match).")
    @click.option(
        "--rule", metavar="JSON", help="The whole rule as JSON ('-' reads stdin) instead of the options."
    )
    @json_option
    def automation_add(name: str, rule: str | None, as_json: bool, **options: object) -> None:
        """Add an automation rule (it syncs, and it is yours: level 1)."""
        if rule is not None:
            text = sys.stdin.read() if rule == "-" else rule
            try:
                given = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"--rule is not JSON ({exc.msg})") from None
            if not isinstance(given, dict):
                raise InvalidInput("--rule is a JSON object")
            spec = {"name": name, **given}
        else:
            spec = _rule_from_options(name, options)
        hooked = isinstance(spec.get("trigger"), dict) and spec["trigger"].get("on") == "webhook"
        with open_vault() as vault:
            if hooked and not vault.replica.hub_url:
                raise ConflictState(
                    "a webhook is called at the hub: this vault is not joined to one",
                    hint="enrol it first ('truthvault enroll --hub URL --code CODE')",
                )
            entry = vault.automations.add(spec)
            here = vault.device_id
            made = _register(vault, entry.id) if hooked else None
        if as_json:
            print_json(_entry_dict(entry, here) | ({"webhook": _secret_dict(made)} if made else {}))
            return
        out.print(f"automation {entry.id} added: {_trigger_text(entry)}")
        if made is not None:
            _show_secret(made)
        out.print("it runs with 'truthvault automation run' (--watch keeps it running)")

    @automation.command("webhook")
    @click.argument("rule_id")
    @click.option("--remove", is_flag=True, help="Remove the hook at the hub instead: its URL stops working.")
    @json_option
    def automation_webhook(rule_id: str, remove: bool, as_json: bool) -> None:
        """Give a webhook rule a new secret (the old one stops working at once) and print its URL
        and secret, once; or remove its hook at the hub."""
        from ..sync import remove_webhook

        with open_vault() as vault:
            if remove:
                dropped = remove_webhook(vault, rule_id)
                if as_json:
                    print_json({"id": rule_id, "removed": True, "dropped": dropped})
                else:
                    out.print(f"webhook of automation {rule_id} removed ({dropped} undelivered dropped)")
                return
            made = _register(vault, rule_id)
        if as_json:
            print_json({"id": rule_id, "webhook": _secret_dict(made)})
        else:
            _show_secret(made)

    @automation.command("list")
    @json_option
    def automation_list(as_json: bool) -> None:
        """List the automation rules and whether each is active."""
        with open_vault() as vault:
            entries = vault.automations.rules()
            here = vault.device_id
        if as_json:
            print_json([_entry_dict(e, here) for e in entries])
            return
        rows: list[list[str | Struck]] = [
            [e.id, e.rule.name if e.rule else "?", _trigger_text(e), _state(e, here)] for e in entries
        ]
        out.print(
            table(None, ["id", "name", "trigger", "state"], rows, squeeze=2) if rows else "no automations"
        )

    @automation.command("show")
    @click.argument("rule_id")
    @json_option
    def automation_show(rule_id: str, as_json: bool) -> None:
        """Show a rule: its trigger, its action and its state."""
        with open_vault() as vault:
            entry = vault.automations.get(rule_id)
            here, hub = vault.device_id, vault.replica.hub_url
        if as_json:
            print_json(_entry_dict(entry, here))
            return
        out.print(f"automation {entry.id}: {entry.rule.name if entry.rule else '?'} ({_state(entry, here)})")
        if entry.rule is not None:
            out.print(f"when   {_trigger_text(entry)}")
            out.print(f"do     {json.dumps(entry.rule.action.model_dump(mode='json'))}")
            hook = getattr(entry.rule.trigger, "hook", None)
            if hook and hub:
                out.print(f"url    {hub}/v1/hooks/{hook}", markup=False)
                out.print(
                    "       (its secret was shown once; 'truthvault automation webhook ID' makes a new one)"
                )

    for paused, verb in ((True, "pause"), (False, "resume")):
        _pause_command(automation, verb, paused)

    @automation.command("run")
    @click.argument("rule_id", required=False)
    @click.option("--on", "entity_id", metavar="ID", help="Run the rule on this entity.")
    @click.option("--watch", is_flag=True, help="Keep running what is due until Ctrl-C.")
    @json_option
    def automation_run(rule_id: str | None, entity_id: str | None, watch: bool, as_json: bool) -> None:
        """Run one rule now, or (no RULE_ID) every run that is due: writes rules match, schedules."""
        with open_vault() as vault, _engine(vault, launch=True) as engine:
            if rule_id is not None:
                started = vault.automations.run_rule(engine, rule_id, entity_id)
            elif watch:
                stop = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                out.print("running automations as they are due (Ctrl-C stops)")
                with suppress(KeyboardInterrupt):
                    vault.automations.watch(
                        engine,
                        stop,
                        on_run=lambda ids: out.print(f"started {len(ids)} run(s)"),
                        fetch=lambda: _fetch_deliveries(vault, quiet=True),
                    )
                return
            else:
                _fetch_deliveries(vault)
                started = vault.automations.run_pending(engine)
            outcomes = {wid: engine.result(wid) for wid in started}
        if as_json:
            print_json(outcomes)
            return
        for wid, outcome in outcomes.items():
            act = (outcome.get("results") or {}).get("act") or outcome.get("failed") or {}
            out.print(f"{wid}: {outcome['status']} {json.dumps(act)}")
        if not outcomes:
            out.print("nothing was due")

    @automation.command("log")
    @click.argument("rule_id")
    @click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
    @json_option
    def automation_log(rule_id: str, limit: int, as_json: bool) -> None:
        """A rule's runs, newest first, with how each went."""
        with open_vault() as vault, _engine(vault, launch=False) as engine:
            runs = vault.automations.log(engine, rule_id, limit)
        if as_json:
            print_json([as_dict(r) for r in runs])
            return
        rows: list[list[str | Struck]] = [
            [
                r.id,
                r.status,
                when(r.created_at),
                json.dumps(((r.outcome or {}).get("results") or {}).get("act")),
            ]
            for r in runs
        ]
        out.print(
            table(None, ["run", "status", "started", "result"], rows, squeeze=3) if rows else "no runs yet"
        )

    @cli.group()
    def workflow() -> None:
        """This device's durable workflows (automation runs, ...): list, show, resume, cancel."""

    @workflow.command("list")
    @click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
    @json_option
    def workflow_list(limit: int, as_json: bool) -> None:
        """List the newest workflows with their state."""
        with open_vault() as vault, _engine(vault, launch=False) as engine:
            infos = engine.list(limit=limit)
        if as_json:
            print_json([as_dict(i) for i in infos])
            return
        rows: list[list[str | Struck]] = [[i.id, i.saga, i.status, when(i.created_at)] for i in infos]
        out.print(
            table(None, ["id", "workflow", "status", "started"], rows, squeeze=0) if rows else "no workflows"
        )

    @workflow.command("show")
    @click.argument("workflow_id")
    @json_option
    def workflow_show(workflow_id: str, as_json: bool) -> None:
        """Show a workflow: its state, its steps and how each went."""
        with open_vault() as vault, _engine(vault, launch=False) as engine:
            info = engine.info(workflow_id)
        if as_json:
            print_json(as_dict(info))
        else:
            show_workflow(info)

    for verb in ("cancel", "resume"):
        _workflow_verb(workflow, verb)


def _register(vault: Vault, rule_id: str) -> WebhookSecret:
    from ..sync import register_webhook

    try:
        return register_webhook(vault, rule_id)
    except HubUnavailable as exc:
        raise HubUnavailable(
            f"automation {rule_id} is added, but its webhook is not registered: {exc.message}",
            hint=f"once the hub answers: truthvault automation webhook {rule_id}",
        ) from None


def _secret_dict(made: WebhookSecret) -> dict[str, str]:
    return {"url": made.url, "secret": made.secret, "hook_id": made.hook_id}


def _show_secret(made: WebhookSecret) -> None:
    """The URL and the secret, once: nothing keeps the secret (the hub holds its hash)."""
    out.print(f"webhook URL:    {made.url}", markup=False)
    out.print(f"webhook secret: {made.secret}", markup=False)
    out.print(
        "the secret is shown this once and kept nowhere: copy it now. Send it as "
        "'Authorization: Bearer <secret>' with a JSON object, e.g.\n"
        f"  curl -X POST {made.url} -H 'Authorization: Bearer <secret>' "
        "-H 'Content-Type: application/json' -d '{\"title\": \"...\"}'",
        markup=False,
    )


def _fetch_deliveries(vault: Vault, *, quiet: bool = False) -> None:
    """Take the webhook deliveries waiting at the hub for this device's rules (when it runs
    any and is joined); a hub out of reach is said, not fatal: they wait there."""
    if not vault.replica.hub_url or not vault.automations.webhooks():
        return
    from ..sync import connect, sync_webhooks

    try:
        with connect(vault, timeout=10.0) as client:
            sync_webhooks(vault, client)
    except HubUnavailable as exc:
        if not quiet:
            err_console.print(f"note: webhook deliveries not fetched: {exc.message}", markup=False)


def _pause_command(group: click.Group, verb: str, paused: bool) -> None:
    @group.command(verb, help=f"{verb.capitalize()} a rule (an edit of it, which syncs).")
    @click.argument("rule_id")
    def command(rule_id: str) -> None:
        with open_vault() as vault:
            vault.automations.set_paused(rule_id, paused)
        out.print(f"automation {rule_id} {'paused' if paused else 'resumed'}")


def _workflow_verb(group: click.Group, verb: str) -> None:
    doc = {
        "cancel": "Stop a running workflow before its next step (what it did stays).",
        "resume": "Go on with a cancelled or failed workflow from its last completed step.",
    }[verb]

    @group.command(verb, help=doc)
    @click.argument("workflow_id")
    def command(workflow_id: str) -> None:
        with open_vault() as vault, _engine(vault, launch=verb == "resume") as engine:
            info = engine.cancel(workflow_id) if verb == "cancel" else engine.resume(workflow_id)
            if verb == "resume":  # a saga that failed for good goes on as a copy (info.id)
                result = engine.result(info.id)
                out.print(f"workflow {info.id}: {result.get('status')}")
                return
        out.print(f"workflow {workflow_id} {info.status}")
