"""The dispatcher on a real vault: validation, policy, approvals, one transaction with its audit
entry and events, and the structured errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from truthvault import Vault
from truthvault.errors import InvalidSource
from truthvault.kernel import (
    ActionConflict,
    ActionForbidden,
    ActionNotFound,
    ActionSpec,
    Actor,
    ApprovalRequired,
    AuditRecord,
    Context,
    Kernel,
    PolicyRequest,
    Registry,
    Risk,
    Target,
    ValidationFailed,
)
from truthvault.sync import device_kernel
from truthvault.vault import DEVICE_ACTIONS, Written
from truthvault.vault._actions import written


class Recorder:
    """An audit sink that keeps what it is given (the vault's own sink is tested apart)."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def append(self, record: AuditRecord) -> None:
        self.records.append(record)


@pytest.fixture
def vault(tmp_path: Path) -> Any:
    with Vault.open(tmp_path / "v", source="user:cli") as v:
        yield v


def kernel_of(vault: Vault, registry: Registry[Vault] = DEVICE_ACTIONS) -> tuple[Kernel[Vault], Recorder]:
    audit = Recorder()
    base = vault.kernel
    kernel = Kernel(
        registry,
        vault,
        policy=base.policy,
        broker=base.broker,
        audit=audit,
        transaction=vault.transaction,
        clock=lambda: "2026-12-07T00:00:00.000Z-0000",
        on_event=lambda type, entity_id, detail: vault.add_event(type, entity_id, **detail),
    )
    return kernel, audit


def note(kernel: Kernel[Vault], vault: Vault, text: str = "mine", source: str = "user:cli") -> Written:
    out = kernel.run("notes.create", {"text": text}, actor=vault.actor(source))
    assert isinstance(out, Written)
    return out


def test_an_action_runs_and_is_audited_with_its_targets(vault: Vault) -> None:
    kernel, audit = kernel_of(vault)
    out = note(kernel, vault)
    assert out.outcome == "applied" and vault.get(out.item.entity_id).data() == {"text": "mine"}
    [record] = audit.records
    assert (record.action, record.action_version, record.decision) == ("notes.create", "1.0.0", "allowed")
    assert record.targets == (Target(out.item.entity_id, "note", 1, 1),)
    assert record.actor.source == "user:cli" and len(record.input_hash) == 64


def test_bad_input_is_a_validation_error_naming_the_field_and_writes_nothing(vault: Vault) -> None:
    kernel, audit = kernel_of(vault)
    for bad, field in (({"txt": "x"}, "text"), ({"text": ""}, "text"), ({"text": "x", "tags": "a"}, "tags")):
        with pytest.raises(ValidationFailed) as caught:
            kernel.run("notes.create", bad, actor=vault.actor())
        assert caught.value.code == "VALIDATION_ERROR" and caught.value.field == field
    assert vault.count() == 0 and audit.records == []


def test_an_unknown_action_is_not_found(vault: Vault) -> None:
    kernel, _ = kernel_of(vault)
    with pytest.raises(ActionNotFound, match=r"no action 'notes\.nope'") as caught:
        kernel.run("notes.nope", {}, actor=vault.actor())
    assert caught.value.code == "NOT_FOUND" and caught.value.status == 404


def test_a_missing_entity_is_not_found_and_the_failure_is_audited(vault: Vault) -> None:
    kernel, audit = kernel_of(vault)
    with pytest.raises(ActionNotFound):
        kernel.run("entity.edit", {"id": "nope", "changes": {"a": 1}}, actor=vault.actor())
    assert [(r.action, r.decision) for r in audit.records] == [("entity.edit", "failed")]
    assert audit.records[0].reason is not None and audit.records[0].reason.startswith("NOT_FOUND")


def test_ai_below_the_user_makes_a_suggestion_through_the_kernel(vault: Vault) -> None:
    kernel, _ = kernel_of(vault)
    mine = note(kernel, vault)
    params = {"id": mine.item.entity_id, "changes": {"text": "ai's idea"}}
    out = kernel.run("entity.edit", params, actor=vault.actor("ai-cloud:openai/gpt"))
    assert isinstance(out, Written) and out.outcome == "suggestion" and out.record_id
    assert vault.get(mine.item.entity_id).data() == {"text": "mine"}


def test_ai_may_never_run_a_security_action_and_the_refusal_is_audited(vault: Vault) -> None:
    kernel, audit = kernel_of(vault)
    full = kernel.derive(device_kernel(vault).registry)
    full.audit = audit
    policy = '@id("all")\npermit(principal, action, resource);\n'
    with pytest.raises(ActionForbidden) as caught:
        full.run("policy.set", {"text": policy}, actor=vault.actor("ai-local:llama3"))
    assert caught.value.code == "FORBIDDEN" and any(p.startswith("builtin.") for p in caught.value.policies)
    assert [(r.action, r.decision) for r in audit.records] == [("policy.set", "denied")]
    # the user may
    out = full.run("policy.set", {"text": policy}, actor=vault.actor("user:cli"))
    assert out.model_dump()["version"] == 1


def test_a_voice_delete_waits_for_the_pin_and_the_approval_is_used_once(vault: Vault) -> None:
    kernel, audit = kernel_of(vault)
    eid = note(kernel, vault).item.entity_id
    voice = vault.actor("user:voice")
    with pytest.raises(ApprovalRequired) as caught:
        kernel.run("entity.delete", {"id": eid}, actor=voice)
    request_id = caught.value.request_id
    assert request_id and caught.value.status == 428 and vault.get(eid)
    vault.broker.set_pin("4711", actor=vault.actor("user:cli"))
    vault.broker.approve(request_id, actor=vault.actor("user:cli"), pin="4711")
    with pytest.raises(ActionForbidden):  # approved for this input only
        kernel.run("entity.delete", {"id": "other"}, actor=voice, approval=request_id)
    out = kernel.run("entity.delete", {"id": eid}, actor=voice, approval=request_id)
    assert isinstance(out, Written) and out.item.deleted is True
    assert audit.records[-1].decision == "approved" and audit.records[-1].approved_by
    with pytest.raises(ActionForbidden, match="used"):
        kernel.run("entity.delete", {"id": eid}, actor=voice, approval=request_id)


class Boom(BaseModel):
    text: str


registry: Registry[Vault] = Registry()


@registry.action("test.write_then_fail", version="1.0.0", risk=Risk.WRITE, input=Boom, output=Written)
def write_then_fail(ctx: Context[Vault], params: Boom) -> Written:
    """Write, raise an event, then fail."""
    ctx.store.put("note", {"text": params.text}, source=ctx.actor.source)
    ctx.emit("TEST_EVENT", None, text=params.text)
    raise ActionConflict("the handler gave up")


def test_a_failing_handler_leaves_nothing_behind_but_its_audited_failure(vault: Vault) -> None:
    kernel, audit = kernel_of(vault, registry)
    with pytest.raises(ActionConflict) as caught:
        kernel.run("test.write_then_fail", {"text": "half"}, actor=vault.actor())
    assert caught.value.code == "CONFLICT" and caught.value.status == 409
    assert vault.count() == 0 and "TEST_EVENT" not in {e.type for e in vault.events(100)}
    assert [r.decision for r in audit.records] == ["failed"]


def test_the_events_of_an_action_are_kept_when_it_commits(vault: Vault) -> None:
    kernel, _ = kernel_of(vault, registry + _emitting)
    kernel.run("test.emit", {"text": "kept"}, actor=vault.actor())
    assert [e.detail for e in vault.events(100) if e.type == "TEST_EVENT"] == [{"text": "kept"}]


_emitting: Registry[Vault] = Registry()


@_emitting.action("test.emit", version="1.0.0", risk=Risk.WRITE, input=Boom, output=Written)
def emit(ctx: Context[Vault], params: Boom) -> Written:
    """Write and raise an event."""
    ctx.emit("TEST_EVENT", None, text=params.text)
    return written(ctx.store.put("note", {"text": params.text}, source=ctx.actor.source))


def test_the_actor_level_comes_from_the_source_never_from_the_caller() -> None:
    assert Actor("ai-cloud:openai/gpt").level == 5 and Actor("user:voice").level == 1
    with pytest.raises(InvalidSource):
        Actor("root")


def test_every_action_has_a_contract_in_json_schema(vault: Vault) -> None:
    specs = list(device_kernel(vault).registry)
    names = {s.name for s in specs}
    assert {"notes.create", "entity.delete", "suggestion.accept", "conflict.resolve", "policy.set"} <= names
    for spec in specs:
        schema = spec.schema()
        assert schema["version"].count(".") == 2 and schema["risk"] in {r.value for r in Risk}
        assert schema["input"]["type"] == "object"


class Nothing(BaseModel):
    pass


class Done(BaseModel):
    ran: bool


_matrix: Registry[Vault] = Registry()
#: one action of each risk class; the security one in a security domain
RISKY = {
    Risk.READ: "probe.read",
    Risk.WRITE: "probe.write",
    Risk.DESTRUCTIVE: "probe.purge",
    Risk.SECURITY: "keys.probe",
}
for _risk, _name in RISKY.items():
    _matrix.add(ActionSpec(_name, "1.0.0", _risk, Nothing, Done, lambda ctx, params: Done(ran=True), "probe"))

SOURCES = ["user:cli", "user:voice", "user:mobile", "automation:r", "ai-local:m", "ai-lan:m", "ai-cloud:p/m"]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("risk", list(Risk), ids=str)
def test_every_level_channel_and_risk_class_through_the_dispatcher(
    vault: Vault, source: str, risk: Risk
) -> None:
    """What policy decides is what the dispatcher does: it runs, it waits for an approval, or
    it is refused with FORBIDDEN and the refusal is audited."""
    kernel, audit = kernel_of(vault, _matrix)
    name = RISKY[risk]
    decision = kernel.policy.decide(PolicyRequest(Actor(source), name, risk))
    try:
        out = kernel.run(name, {}, actor=vault.actor(source))
    except ActionForbidden as exc:
        assert not decision.allowed and exc.code == "FORBIDDEN" and exc.policies == decision.policies
        assert [(r.action, r.decision, r.actor.source) for r in audit.records] == [(name, "denied", source)]
    except ApprovalRequired as exc:
        assert decision.allowed and decision.approval and exc.request_id
        assert audit.records == [] and vault.broker.get(exc.request_id).status == "pending"
    else:
        assert decision.allowed and not decision.approval and out == Done(ran=True)
        expected = [] if risk is Risk.READ else [(name, "allowed", source)]
        assert [(r.action, r.decision, r.actor.source) for r in audit.records] == expected
    # the truth hierarchy, whatever the tenant's policy: AI never runs a security action, an
    # automation never one either, and only the user decides approvals
    if risk is Risk.SECURITY and Actor(source).level >= 2:
        assert not decision.allowed


def test_text_no_store_keeps_alike_is_refused_naming_where(vault: Vault) -> None:
    kernel, _ = kernel_of(vault)
    for bad, field in (({"text": "a\x00b"}, "text"), ({"text": "ok", "tags": ["x", "\udc00"]}, "tags[1]")):
        with pytest.raises(ValidationFailed) as caught:
            kernel.run("notes.create", bad, actor=vault.actor())
        assert caught.value.field == field
    assert vault.count() == 0


def test_kept_decisions_never_outlive_the_policy_they_were_made_under(tmp_path: Path) -> None:
    """Decisions are kept in the vault across processes (a command loads no policy engine for
    what an earlier one decided); a new policy, set here or by another process, drops them."""
    reads_only = '@id("reads") permit (principal, action, resource) when { context.risk == "read" };\n'
    home = tmp_path / "v"
    with Vault.open(home, source="user:cli") as first:
        note(first.kernel, first, "decided once")
    with Vault.open(home, source="user:cli") as second, Vault.open(home, source="user:cli") as other:
        note(second.kernel, second, "decided from what was kept")
        assert second.kernel.policy._engine is None  # no Cedar was needed
        device_kernel(other).run("policy.set", {"text": reads_only}, actor=other.actor())
        with pytest.raises(ActionForbidden):  # the other connection's policy is seen at once
            note(second.kernel, second, "no longer allowed")
    with Vault.open(home, source="user:cli") as third:
        with pytest.raises(ActionForbidden):
            note(third.kernel, third, "nor in a new process")
        assert third.count() == 2


def test_a_write_is_decided_inside_its_transaction_and_a_read_outside_any(vault: Vault) -> None:
    """Policy sees a write's targets in the transaction that writes them (nothing can change
    their level in between), and a refusal's audit entry commits though the action raises; a
    read takes no write transaction (it holds no lock)."""
    kernel, audit = kernel_of(vault)
    inner = kernel.policy
    seen: list[tuple[str, bool]] = []

    class Watching:
        def decide(self, request: PolicyRequest) -> Any:
            seen.append((request.action, vault._db.in_tx()))
            return inner.decide(request)

    kernel.policy = Watching()
    written_ = note(kernel, vault)
    kernel.run("entity.get", {"id": written_.item.entity_id}, actor=vault.actor())
    assert seen == [("notes.create", True), ("entity.get", False)]
    with pytest.raises(ActionForbidden):
        kernel.run("pin.set", {"pin": "2468"}, actor=vault.actor("ai-local:llama3"))
    assert [(r.action, r.decision) for r in audit.records][-1] == ("pin.set", "denied")
    assert not vault._db.in_tx()
    assert vault.get(written_.item.entity_id).version == 1
