"""``truthvault policy``: the tenant's Cedar policy, shown, set (a new version) and tested."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

import click

from ..errors import InvalidInput
from ._common import json_option, open_vault, out, print_json, run_action

if TYPE_CHECKING:
    from ..kernel import PolicyDecision

__all__ = ["register"]

_RISKS = ("read", "write", "destructive", "security")


def _show(as_json: bool, default: bool) -> None:
    from ..kernel import BUILTIN_POLICY, DEFAULT_POLICY, PolicyVersion, builtin_rules
    from ..vault import vault_policies

    if default:
        current = PolicyVersion(0, DEFAULT_POLICY)
    else:
        with open_vault() as vault:
            current = vault_policies(vault).current()
    builtins = [{"id": r.id, "reason": r.reason} for r in builtin_rules()]
    if as_json:
        body = {"version": current.version, "set_by": current.set_by, "set_at": current.set_at}
        print_json({**body, "text": current.text, "builtin": builtins, "builtin_text": BUILTIN_POLICY})
        return
    who = f", set by {current.set_by} at {current.set_at}" if current.version else " (the default policy)"
    out.print(f"policy version {current.version}{who}", markup=False, highlight=False)
    out.print("built-in rules (always in force, no policy can override them):", markup=False, highlight=False)
    for rule in builtins:
        out.print(f"  {rule['id']}: {rule['reason']}", markup=False, highlight=False)
    out.print("", markup=False)
    out.print(current.text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)


def _decision_body(decision: PolicyDecision, version: int) -> dict[str, object]:
    verdict = "forbidden" if not decision.allowed else ("approval" if decision.approval else "allowed")
    return {
        "decision": verdict,
        "allowed": decision.allowed,
        "approval": decision.approval,
        "policies": list(decision.policies),
        "reason": decision.reason,
        "version": version,
    }


def register(cli: click.Group) -> None:
    """Add the ``policy`` group to the top-level group."""

    @cli.group()
    def policy() -> None:
        """The tenant's policy (Cedar): who may run which action, and which need your approval.

        Built-in rules always apply on top and no policy can override them: AI never runs a
        security action, automations never hard-delete your entities nor touch security, and
        only you decide an approval. See docs/kernel-policy.md.
        """

    @policy.command("show")
    @click.option("--default", "default", is_flag=True, help="Show the default policy instead.")
    @json_option
    def policy_show(default: bool, as_json: bool) -> None:
        """The policy in force: its version, who set it, the built-in rules, and its text."""
        _show(as_json, default)

    @policy.command("set")
    @click.argument("file", type=click.File("r", encoding="utf-8"))
    @json_option
    def policy_set(file: TextIO, as_json: bool) -> None:
        """Set the policy from FILE ('-' reads stdin): checked, stored as a new version, and sent
        to the hub first when this vault is joined to one. A bad policy changes nothing."""
        text = file.read()
        with open_vault() as vault:
            stored = run_action(vault, "policy.set", {"text": text}).model_dump(mode="json")
        if as_json:
            print_json(stored)
        else:
            out.print(f"policy version {stored['version']} is in force", markup=False, highlight=False)

    @policy.command("test")
    @click.option(
        "--actor", "source", required=True, help="Who acts: a source such as user:voice, ai-cloud:x/y."
    )
    @click.option("--action", "action", required=True, help="The action's name, e.g. notes.create.")
    @click.option(
        "--risk", type=click.Choice(_RISKS), default="write", show_default=True, help="The risk class."
    )
    @click.option(
        "--target-level", type=click.IntRange(1, 5), default=None, help="The truth level the target holds."
    )
    @click.option("--target-type", default="", help="The target's entity type, e.g. note.")
    @click.option("--device", "device_id", default="", help="The device the actor acts on.")
    @json_option
    def policy_test(
        source: str,
        action: str,
        risk: str,
        target_level: int | None,
        target_type: str,
        device_id: str,
        as_json: bool,
    ) -> None:
        """Decide a request with the policy in force and say which policies decided it."""
        from ..kernel import Actor, CedarPolicy, PolicyRequest, Risk, Target
        from ..vault import vault_policies

        if "." not in action:
            raise InvalidInput(f"--action: {action!r} is not domain.verb (e.g. notes.create)")
        with open_vault() as vault:
            current = vault_policies(vault).current()
        actor = Actor(source, device_id=device_id)
        targets = (
            () if target_level is None and not target_type else (Target("", target_type, 0, target_level),)
        )
        engine = CedarPolicy(current.text, version=current.version)
        decision = engine.decide(PolicyRequest(actor, action, Risk(risk), targets))
        body = _decision_body(decision, current.version)
        if as_json:
            print_json(body)
            return
        out.print(decision.reason, markup=False, highlight=False, soft_wrap=True)
        out.print(f"policies: {', '.join(decision.policies) or '(none)'}", markup=False, highlight=False)
