"""Policy on Cedar: every level, channel and risk class decided by the default policy, the
built-in rules no tenant policy can override, approvals from annotations, decisions that name
their policies, the cache that never outlives a policy version, and bad text refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from truthvault.kernel import (
    ActionForbidden,
    Actor,
    ApprovalRequired,
    AuditRecord,
    CedarPolicy,
    InvalidPolicy,
    Kernel,
    PolicyRequest,
    Registry,
    Risk,
    Target,
    builtin_rules,
    check_policy,
    role_of,
)

CHANNELS = [
    "user:cli",
    "user:voice",
    "user:mobile",
    "automation:nightly",
    "ai-local:llama3",
    "ai-lan:mistral",
    "ai-cloud:openai/gpt",
]
#: one action of each risk class
ACTIONS = {
    Risk.READ: "notes.list",
    Risk.WRITE: "notes.create",
    Risk.DESTRUCTIVE: "notes.delete",
    Risk.SECURITY: "device.revoke",
}
ALLOWED, FORBIDDEN = "allowed", "forbidden"


def expected(source: str, risk: Risk) -> tuple[str, tuple[str, ...]]:
    """What the default policy decides, written out by hand: (allowed | forbidden | the
    approval kind, the policies that decide it)."""
    risky = risk in (Risk.DESTRUCTIVE, Risk.SECURITY)
    if source == "user:voice" and risky:
        return "pin", ("owner.voice-pin",)
    if source == "user:mobile" and risky:
        return "confirm", ("owner.mobile-confirm",)
    if source.startswith("user:"):
        return ALLOWED, ("owner.all",)
    if source.startswith("automation:"):
        if risk is Risk.SECURITY:
            return FORBIDDEN, ("builtin.automation-no-security",)
        return ALLOWED, ("automation.work",)
    if risk is Risk.SECURITY:
        return FORBIDDEN, ("builtin.ai-no-security",)
    if risk is Risk.DESTRUCTIVE:
        return "approve", ("assistant.delete-approved",)
    return ALLOWED, ("assistant.propose",)


def verdict(
    engine: CedarPolicy, source: str, action: str, risk: Risk, *targets: Target
) -> tuple[str, tuple[str, ...]]:
    decision = engine.decide(
        PolicyRequest(Actor(source, device_id="d1", tenant_id="t"), action, risk, targets)
    )
    if not decision.allowed:
        assert decision.approval is None and decision.reason.startswith(("forbidden by", "no policy"))
        return FORBIDDEN, decision.policies
    return decision.approval or ALLOWED, decision.policies


@pytest.fixture(scope="module")
def default() -> CedarPolicy:
    return CedarPolicy()


@pytest.mark.parametrize("risk", list(Risk), ids=str)
@pytest.mark.parametrize("source", CHANNELS)
def test_every_level_channel_and_risk_under_the_default_policy(
    default: CedarPolicy, source: str, risk: Risk
) -> None:
    note = Target("e1", "note", 3, level=1)
    assert verdict(default, source, ACTIONS[risk], risk, note) == expected(source, risk)
    # the same asked again is served from the cache, with the same answer
    assert verdict(default, source, ACTIONS[risk], risk, note) == expected(source, risk)


@pytest.mark.parametrize("source", CHANNELS)
@pytest.mark.parametrize("domain", ["device", "keys", "tenant", "policy", "member"])
def test_security_domains_are_security_whatever_the_declared_risk(
    default: CedarPolicy, source: str, domain: str
) -> None:
    got = verdict(default, source, f"{domain}.list", Risk.READ)
    level = Actor(source).level
    if level >= 3:
        assert got == (FORBIDDEN, ("builtin.ai-no-security",))
    elif level == 2:
        assert got == (FORBIDDEN, ("builtin.automation-no-security",))
    else:
        assert got[0] == ALLOWED


@pytest.mark.parametrize("target_level", [1, 2, 3, None])
@pytest.mark.parametrize("action", ["entity.purge", "notes.destroy", "entity.delete.hard", "entity.delete"])
def test_automations_never_hard_delete_user_entities(
    default: CedarPolicy, action: str, target_level: int | None
) -> None:
    got = verdict(
        default, "automation:cleanup", action, Risk.DESTRUCTIVE, Target("e1", "note", 2, target_level)
    )
    if target_level == 1 and action != "entity.delete":
        assert got == (FORBIDDEN, ("builtin.automation-no-hard-delete-user",))
    else:  # a plain delete of user truth becomes a suggestion (the truth rule): allowed here
        assert got == (ALLOWED, ("automation.work",))


def test_the_lowest_target_level_is_what_policy_sees(default: CedarPolicy) -> None:
    mixed = (Target("a", "note", 1, 3), Target("b", "task", 1, 1), Target("c", "note", 0, None))
    assert verdict(default, "automation:x", "entity.purge", Risk.DESTRUCTIVE, *mixed)[0] == FORBIDDEN
    assert verdict(default, "automation:x", "entity.purge", Risk.DESTRUCTIVE, *mixed[::2])[0] == ALLOWED


@pytest.mark.parametrize("source", CHANNELS)
def test_only_level_1_decides_an_approval(default: CedarPolicy, source: str) -> None:
    got = verdict(default, source, "approval.decide", Risk.WRITE)
    if source.startswith("user:"):
        assert got == (ALLOWED, ("owner.all",))
    else:
        assert got[0] == FORBIDDEN and "builtin.only-user-decides-approvals" in got[1]


EVERYTHING = '@id("everything")\npermit (principal, action, resource);\n'


@pytest.mark.parametrize("source", CHANNELS)
def test_a_policy_that_permits_everything_cannot_lift_the_built_in_rules(source: str) -> None:
    engine = CedarPolicy(EVERYTHING, version=7)
    level = Actor(source).level
    for risk in Risk:
        got = verdict(engine, source, ACTIONS[risk], risk, Target("e", "note", 1, 1))
        if risk is Risk.SECURITY and level >= 2:
            assert got[0] == FORBIDDEN and got[1][0].startswith("builtin.")
        else:
            assert got == (ALLOWED, ("everything",))
    purge = verdict(engine, source, "entity.purge", Risk.DESTRUCTIVE, Target("e", "note", 1, 1))
    assert purge == (
        (FORBIDDEN, ("builtin.automation-no-hard-delete-user",)) if level == 2 else (ALLOWED, ("everything",))
    )
    keys = verdict(engine, source, "keys.rotate", Risk.WRITE)
    assert keys[0] == (FORBIDDEN if level >= 2 else ALLOWED)


def test_a_decision_explains_itself_in_words(default: CedarPolicy) -> None:
    decision = default.decide(PolicyRequest(Actor("ai-cloud:openai/gpt"), "keys.rotate", Risk.SECURITY))
    assert decision.policies == ("builtin.ai-no-security",)
    assert decision.reason == (
        "forbidden by builtin.ai-no-security: AI (levels 3-5) never runs a security action "
        "(devices, keys, tenant, members, policy, approvals)"
    )
    voice = default.decide(PolicyRequest(Actor("user:voice"), "notes.delete", Risk.DESTRUCTIVE))
    assert voice.reason == (
        "allowed after approval (pin), by owner.voice-pin: a destructive or security action by voice needs your PIN"
    )
    none = CedarPolicy('@id("reads") permit (principal, action, resource) when { context.risk == "read" };')
    refused = none.decide(PolicyRequest(Actor("user:cli"), "notes.create", Risk.WRITE))
    assert (refused.allowed, refused.policies) == (False, ())
    assert refused.reason == "no policy permits user:cli running notes.create (write)"


APPROVALS = """\
@id("cli") permit (principal, action, resource) when { principal.channel == "user:cli" };
@id("voice-pin") @approval("pin") permit (principal, action, resource) when { principal.channel == "user:voice" };
@id("voice-confirm") @approval("confirm")
permit (principal, action, resource) when { principal.channel == "user:voice" && context.risk == "read" };
@id("lan-device") permit (principal, action, resource) when { principal.device == "lan-box" };
@id("lan-approve") @approval("approve") permit (principal in Role::"assistant", action, resource);
"""


def test_approvals_come_from_annotated_permits() -> None:
    engine = CedarPolicy(APPROVALS, version=1)

    def ask(source: str, risk: Risk, device: str = "") -> tuple[bool, str | None, tuple[str, ...]]:
        d = engine.decide(PolicyRequest(Actor(source, device_id=device), "notes.create", risk))
        return d.allowed, d.approval, d.policies

    assert ask("user:cli", Risk.WRITE) == (True, None, ("cli",))
    assert ask("user:voice", Risk.WRITE) == (True, "pin", ("voice-pin",))
    # two annotated permits: either approval will do, so the lighter one is asked for
    assert ask("user:voice", Risk.READ) == (True, "confirm", ("voice-pin", "voice-confirm"))
    # one permit without an annotation decides it outright
    assert ask("ai-lan:m", Risk.WRITE, device="lan-box") == (True, None, ("lan-device",))
    assert ask("ai-lan:m", Risk.WRITE, device="elsewhere") == (True, "approve", ("lan-approve",))
    assert ask("user:mobile", Risk.WRITE) == (False, None, ())


def test_roles_follow_the_truth_level() -> None:
    assert [role_of(level) for level in range(1, 6)] == ["owner", "automation"] + ["assistant"] * 3


def test_the_cache_never_serves_a_decision_of_an_older_version() -> None:
    engine = CedarPolicy(EVERYTHING, version=1)
    request = PolicyRequest(Actor("ai-local:m"), "notes.create", Risk.WRITE)
    assert engine.decide(request).allowed and engine.cached() == 1
    engine.load('@id("users-only") permit (principal in Role::"owner", action, resource);', 2)
    assert engine.version == 2 and engine.cached() == 0
    after = engine.decide(request)
    assert (after.allowed, after.policies) == (False, ())
    engine.load(EVERYTHING, 3)
    assert engine.decide(request).policies == ("everything",)
    # loading the version in force again keeps its cache
    engine.load(EVERYTHING, 3)
    assert engine.cached() == 1


def test_the_cache_key_holds_every_attribute_a_policy_can_read() -> None:
    text = '@id("laptop") permit (principal, action, resource) when { principal.device == "laptop" && resource.types.contains("note") };'
    engine = CedarPolicy(text)

    def allowed(device: str, kind: str) -> bool:
        return engine.decide(
            PolicyRequest(Actor("user:cli", device_id=device), "x.y", Risk.WRITE, (Target("e", kind),))
        ).allowed

    assert allowed("laptop", "note") and not allowed("phone", "note") and not allowed("laptop", "task")
    assert engine.cached() == 3


def test_a_bad_policy_is_refused_and_the_old_one_kept() -> None:
    engine = CedarPolicy(EVERYTHING, version=4)
    with pytest.raises(InvalidPolicy) as caught:
        engine.load("permit (principal, action, resource);\n\npermit (principal,\n  action resource);\n", 5)
    assert (caught.value.message, caught.value.line) == ("line 4: unexpected token `resource`", 4)
    assert engine.version == 4 and engine.policy.text == EVERYTHING
    assert engine.decide(PolicyRequest(Actor("user:cli"), "a.b", Risk.WRITE)).allowed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("permit (principal, action, resource)\nwhen { principal.level == };", r"^line 2: "),
        (
            "permit (principal, action, resource) when { nosuch(1) };",
            r"^line 1: `nosuch` is not a valid function",
        ),
        (
            '@id("a") @approval("fingerprint")\npermit (principal, action, resource);',
            r"^line 1: @approval\('fingerprint'\) is not one of",
        ),
        (
            '@id("a") permit (principal, action, resource);\n@id("a") permit (principal, action, resource);',
            r"^line 1: @id\('a'\) is used twice",
        ),
        ('@id("builtin.mine") permit (principal, action, resource);', r"^line 1: @id\('builtin.mine'\)"),
        (
            '@id("f") @approval("pin") forbid (principal, action, resource);\npermit (principal, action, resource);',
            r"only a permit can ask",
        ),
        ("// nothing but a comment\n", r"has no permit"),
        ("permit (principal == ?principal, action, resource);", r"templates"),
    ],
)
def test_bad_policy_text_is_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message) as caught:
        check_policy(text)
    assert "\n" not in caught.value.message


def test_the_built_in_rules_are_forbids_and_one_permit_that_keeps_the_user_in_charge() -> None:
    rules = builtin_rules()
    assert all(r.builtin and r.reason for r in rules)
    assert [(r.id, r.effect) for r in rules] == [
        ("builtin.ai-no-security", "forbid"),
        ("builtin.automation-no-security", "forbid"),
        ("builtin.automation-no-hard-delete-user", "forbid"),
        ("builtin.owner-sets-policy", "permit"),
        ("builtin.only-user-decides-approvals", "forbid"),
    ]


def test_a_policy_that_permits_too_little_never_locks_the_user_out_of_changing_it() -> None:
    reads_only = CedarPolicy(
        '@id("reads") permit (principal, action, resource) when { context.risk == "read" };\n'
    )
    assert not reads_only.decide(PolicyRequest(Actor("user:cli"), "notes.create", Risk.WRITE)).allowed
    fix = reads_only.decide(PolicyRequest(Actor("user:cli"), "policy.set", Risk.SECURITY))
    assert fix.allowed and fix.policies == ("builtin.owner-sets-policy",)
    assert not reads_only.decide(PolicyRequest(Actor("ai-local:m"), "policy.set", Risk.SECURITY)).allowed


# -- through the dispatcher ------------------------------------------------------------
class Empty(BaseModel):
    pass


class Audit:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def append(self, record: AuditRecord) -> None:
        self.records.append(record)


class Broker:
    def ask_approval(self, **kwargs: Any) -> str:
        self.asked = kwargs
        return "req-1"

    def redeem(self, request_id: str, **kwargs: Any) -> str:
        return "user:cli"


def test_the_dispatcher_refuses_with_forbidden_naming_the_policy_and_audits_it() -> None:
    registry: Registry[None] = Registry()

    @registry.action("keys.rotate", version="1.0.0", risk=Risk.SECURITY, input=Empty, output=Empty)
    def rotate(ctx: Any, params: Empty) -> Empty:
        """Rotate the keys."""
        return Empty()

    @registry.action("notes.delete", version="1.0.0", risk=Risk.DESTRUCTIVE, input=Empty, output=Empty)
    def delete(ctx: Any, params: Empty) -> Empty:
        """Delete a note."""
        return Empty()

    audit, broker = Audit(), Broker()
    from contextlib import nullcontext

    kernel = Kernel(
        registry, None, policy=CedarPolicy(), broker=broker, audit=audit,
        transaction=nullcontext, clock=lambda: "2026-12-07T00:00:00Z",
    )  # fmt: skip
    with pytest.raises(ActionForbidden) as caught:
        kernel.run("keys.rotate", {}, actor=Actor("ai-cloud:openai/gpt"))
    assert caught.value.code == "FORBIDDEN" and caught.value.policies == ("builtin.ai-no-security",)
    assert [(r.action, r.decision) for r in audit.records] == [("keys.rotate", "denied")]
    with pytest.raises(ApprovalRequired) as asked:
        kernel.run("notes.delete", {}, actor=Actor("user:voice"))
    assert asked.value.request_id == "req-1" and broker.asked["kind"] == "pin"
    kernel.run("keys.rotate", {}, actor=Actor("user:cli"))
    assert audit.records[-1].decision == "allowed"


def test_the_line_is_found_in_a_long_policy_past_semicolons_in_strings_and_comments() -> None:
    lines = [
        f'@id("p{i}") permit (principal, action, resource) when {{ context.risk == "a;b" }}; // c;d'
        for i in range(500)
    ]
    lines[400] = "permit (principal, action resource);"
    with pytest.raises(InvalidPolicy) as caught:
        check_policy("\n".join(lines))
    assert caught.value.message == "line 401: unexpected token `resource`"
    with pytest.raises(InvalidPolicy, match=r"^line 2: unexpected end of input"):
        check_policy("permit (principal, action, resource);\npermit (principal, action, resource)\n")
