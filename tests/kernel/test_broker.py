"""The input broker's rules, on each of its stores (a vault file, a SQLite hub, a PostgreSQL hub)."""

from __future__ import annotations

import pytest

from truthvault.errors import ConflictState, InvalidInput
from truthvault.kernel import (
    ActionForbidden,
    Actor,
    ApprovalRequired,
    BrokerSettings,
    InputBroker,
    Risk,
    Target,
)

from .conftest import Backend, Clock

AI = Actor("ai-local:llama3", "dev-a", "")
ME = Actor("user:cli", "dev-b", "")
VOICE = Actor("user:voice", "dev-a", "")
MOBILE = Actor("user:mobile", "dev-a", "")


def ask(broker: InputBroker, actor: Actor = AI, kind: str = "approve", input_hash: str = "h1") -> str:
    return broker.ask_approval(
        actor=actor,
        action="notes.delete",
        risk=Risk.DESTRUCTIVE,
        kind=kind,
        input_hash=input_hash,
        targets=(Target("n1", "note", 3, 1),),
        reason="an AI deletes a note you wrote",
    )


def redeem(
    broker: InputBroker, rid: str, actor: Actor = AI, action: str = "notes.delete", h: str = "h1"
) -> str:
    return broker.redeem(rid, actor=actor, action=action, input_hash=h)


def test_a_request_persists_with_who_what_and_why_but_no_payload(
    broker: InputBroker, backend: Backend
) -> None:
    rid = ask(broker)
    stored = backend.store.get(rid)
    assert stored is not None
    assert (stored.kind, stored.action, stored.risk, stored.status) == (
        "approval",
        "notes.delete",
        "destructive",
        "pending",
    )
    assert (stored.source, stored.device_id, stored.tenant_id) == (
        "ai-local:llama3",
        "dev-a",
        backend.tenant_id,
    )
    assert stored.targets == (Target("n1", "note", 3, 1),) and stored.input_hash == "h1"
    assert [r.id for r in broker.pending()] == [rid]


def test_an_approval_is_redeemed_once(broker: InputBroker) -> None:
    rid = ask(broker)
    with pytest.raises(ApprovalRequired) as pending:
        redeem(broker, rid)
    assert pending.value.request_id == rid
    broker.approve(rid, actor=ME)
    assert redeem(broker, rid) == "user:cli"
    with pytest.raises(ActionForbidden, match="was used"):
        redeem(broker, rid)
    assert broker.get(rid).status == "used"


@pytest.mark.parametrize(
    ("actor", "action", "h"),
    [
        (AI, "notes.purge", "h1"),  # another action
        (AI, "notes.delete", "h2"),  # another input
        (Actor("ai-local:llama3", "dev-c", ""), "notes.delete", "h1"),  # the same source elsewhere
        (Actor("ai-cloud:openai/gpt", "dev-a", ""), "notes.delete", "h1"),  # another source
    ],
)
def test_a_mismatched_redeem_is_refused_and_uses_nothing(
    broker: InputBroker, actor: Actor, action: str, h: str
) -> None:
    rid = ask(broker)
    broker.approve(rid, actor=ME)
    with pytest.raises(ActionForbidden, match="another action, input or actor"):
        redeem(broker, rid, actor, action, h)
    assert redeem(broker, rid) == "user:cli"  # still there for the right call


def test_a_denied_request_is_refused_with_its_reason(broker: InputBroker) -> None:
    rid = ask(broker)
    with pytest.raises(InvalidInput):
        broker.deny(rid, actor=ME, reason="  ")
    broker.deny(rid, actor=ME, reason="keep that note")
    with pytest.raises(ActionForbidden, match="denied: keep that note"):
        redeem(broker, rid)
    with pytest.raises(ConflictState):
        broker.approve(rid, actor=ME)


@pytest.mark.parametrize(
    "decider", ["ai-local:llama3", "ai-cloud:openai/gpt", "automation:nightly", "ai-lan:x"]
)
def test_only_level_1_decides(broker: InputBroker, decider: str) -> None:
    rid = ask(broker)
    other = Actor(decider, "dev-b", "")
    with pytest.raises(ActionForbidden, match="only the user"):
        broker.approve(rid, actor=other)
    with pytest.raises(ActionForbidden, match="only the user"):
        broker.deny(rid, actor=other, reason="no")
    with pytest.raises(ActionForbidden, match="only the user"):
        broker.record_decision(rid, actor=other, approved=True)
    assert broker.get(rid).status == "pending"


def test_two_decisions_one_wins(broker: InputBroker) -> None:
    rid = ask(broker)
    broker.approve(rid, actor=ME)
    with pytest.raises(ConflictState, match="approved, not pending"):
        broker.deny(rid, actor=ME, reason="too late")
    assert broker.get(rid).decided_by == "user:cli"


def test_pending_requests_expire(broker: InputBroker, clock: Clock) -> None:
    rid = ask(broker)
    clock.advance(broker.settings.ttl_s - 1)
    assert broker.get(rid).status == "pending"
    clock.advance(1)
    assert broker.get(rid).status == "expired" and broker.pending() == []
    with pytest.raises(ConflictState, match="expired"):
        broker.approve(rid, actor=ME)
    with pytest.raises(ActionForbidden, match="expired"):
        redeem(broker, rid)


def test_an_approval_must_be_used_within_its_window(broker: InputBroker, clock: Clock) -> None:
    rid = ask(broker)
    broker.approve(rid, actor=ME)
    clock.advance(broker.settings.approved_ttl_s)
    with pytest.raises(ActionForbidden, match="expired"):
        redeem(broker, rid)


def test_a_confirmation_must_be_fresh(broker: InputBroker, clock: Clock) -> None:
    settings = broker.settings
    late = ask(broker, MOBILE, "confirm")
    clock.advance(settings.confirm_ttl_s)
    assert broker.get(late).status == "expired"  # not confirmed in time

    stale = ask(broker, MOBILE, "confirm")
    broker.approve(stale, actor=MOBILE)
    clock.advance(settings.confirm_window_s)
    with pytest.raises(ActionForbidden, match="expired"):
        redeem(broker, stale, MOBILE)  # confirmed, but not used at once

    fresh = ask(broker, MOBILE, "confirm")
    clock.advance(settings.confirm_ttl_s - 1)
    broker.approve(fresh, actor=MOBILE)
    clock.advance(settings.confirm_window_s - 1)
    assert redeem(broker, fresh, MOBILE) == "user:mobile"


def test_a_pin_request_needs_the_right_pin(broker: InputBroker, backend: Backend) -> None:
    rid = ask(broker, VOICE, "pin")
    with pytest.raises(ActionForbidden, match="no PIN is set"):
        broker.approve(rid, actor=ME, pin="2468")
    broker.set_pin("2468", actor=ME)
    record = backend.store.pin()
    assert record is not None and "2468" not in (record.hash + record.salt) and record.n == 1 << 10
    with pytest.raises(ActionForbidden, match="needs your PIN"):
        broker.approve(rid, actor=ME)
    with pytest.raises(ActionForbidden, match="wrong PIN"):
        broker.approve(rid, actor=ME, pin="1357")
    assert broker.get(rid).status == "pending"
    broker.approve(rid, actor=VOICE, pin="2468")
    assert redeem(broker, rid, VOICE) == "user:voice"


def test_wrong_pins_lock_it_for_a_while(broker: InputBroker, clock: Clock) -> None:
    broker.set_pin("2468", actor=ME)
    rid = ask(broker, VOICE, "pin")
    attempts = broker.settings.pin_attempts
    for n in range(attempts):
        with pytest.raises(ActionForbidden, match="locked now" if n == attempts - 1 else "tries left"):
            broker.approve(rid, actor=ME, pin=f"000{n}")
    with pytest.raises(ActionForbidden, match="locked"):
        broker.approve(rid, actor=ME, pin="2468")  # even the right one, while locked
    clock.advance(broker.settings.pin_lockout_s)
    broker.approve(rid, actor=ME, pin="2468")
    assert broker.get(rid).status == "approved"


def test_changing_the_pin_takes_the_current_one(broker: InputBroker) -> None:
    broker.set_pin("2468", actor=ME)
    with pytest.raises(ActionForbidden, match="current one"):
        broker.set_pin("1111", actor=ME)
    with pytest.raises(ActionForbidden, match="wrong PIN"):
        broker.set_pin("1111", actor=ME, current="9999")
    with pytest.raises(ActionForbidden, match="only the user"):
        broker.set_pin("1111", actor=AI, current="2468")
    with pytest.raises(InvalidInput, match="pin"):
        broker.set_pin("12", actor=ME, current="2468")
    broker.set_pin("1111", actor=ME, current="2468")
    broker.check_pin("1111")


def test_the_default_pin_hash_is_scrypt_at_full_cost(backend: Backend) -> None:
    broker = InputBroker(backend.store, tenant_id=backend.tenant_id)
    broker.set_pin("2468", actor=ME)
    record = backend.store.pin()
    assert record is not None and (record.n, record.r, record.p) == (BrokerSettings().scrypt_n, 8, 1)
    assert BrokerSettings().scrypt_n >= 1 << 15 and len(bytes.fromhex(record.salt)) == 16


def test_a_form_is_answered_once_by_the_user(broker: InputBroker) -> None:
    rid = broker.ask_input(actor=AI, kind="form", fields=("title", "due"), reason="a task's details")
    with pytest.raises(ApprovalRequired):
        broker.take_input(rid, actor=AI)
    with pytest.raises(ActionForbidden):
        broker.provide(rid, {"title": "x", "due": "y"}, actor=AI)
    with pytest.raises(InvalidInput, match="exactly"):
        broker.provide(rid, {"title": "x"}, actor=ME)
    broker.provide(rid, {"title": "call Bob", "due": "friday"}, actor=ME)
    with pytest.raises(ActionForbidden):
        broker.take_input(rid, actor=Actor("ai-local:other", "dev-a", ""))
    assert broker.take_input(rid, actor=AI) == {"title": "call Bob", "due": "friday"}
    with pytest.raises(ActionForbidden, match="used"):
        broker.take_input(rid, actor=AI)


def test_a_secret_is_handed_over_once_and_never_stored(broker: InputBroker, backend: Backend) -> None:
    secret = "sk-live-7f3a9c0e5b1d4f2a"
    rid = broker.ask_input(actor=AI, kind="secret", fields=("api_key",), reason="the mail account's key")
    with pytest.raises(ActionForbidden, match="another action"):
        redeem(broker, rid)
    answered = broker.provide(rid, {"api_key": secret}, actor=ME)
    assert answered.provided and answered.values is None
    stored = backend.store.get(rid)
    assert stored is not None and stored.provided and stored.values is None
    assert secret not in repr(stored) and secret not in str(stored.to_wire())
    assert broker.take_input(rid, actor=AI) == {"api_key": secret}
    with pytest.raises(ActionForbidden, match="used"):
        broker.take_input(rid, actor=AI)
    # and another broker over the same store (another process) never sees it
    other = InputBroker(backend.store, tenant_id=backend.tenant_id)
    rid2 = broker.ask_input(actor=AI, kind="secret", fields=("api_key",), reason="again")
    broker.provide(rid2, {"api_key": secret}, actor=ME)
    with pytest.raises(ConflictState, match="another process"):
        other.take_input(rid2, actor=AI)
    assert secret.encode() not in dump(backend)


def dump(backend: Backend) -> bytes:
    """Every byte the backend keeps: the vault's or the SQLite hub's files, or every row of
    every PostgreSQL table."""
    if backend.vault is not None:
        home = backend.vault.path.parent
        return b"".join(p.read_bytes() for p in sorted(home.iterdir()) if p.is_file())
    if backend.hub_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(backend.hub_url, autocommit=True) as conn:
            tables = [
                r[0]
                for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ]
            return b"".join(
                str(conn.execute(f'SELECT t::text FROM "{name}" t').fetchall()).encode() for name in tables
            )
    from pathlib import Path

    db = Path(backend.hub_url)
    return b"".join(p.read_bytes() for p in sorted(db.parent.iterdir()) if p.name.startswith(db.name))
