"""Many deciders and redeemers at once, on each store: one decision and one redemption win;
concurrent requests each get their own change number at the hub."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from truthvault.errors import ConflictState
from truthvault.kernel import ActionForbidden, Actor, InputBroker, Risk

from .conftest import FAST, Backend, Clock

AI = Actor("ai-local:llama3", "dev-a", "")
WORKERS = 8


def _ask(broker: InputBroker, n: int) -> str:
    return broker.ask_approval(
        actor=AI, action="notes.delete", risk=Risk.DESTRUCTIVE, kind="approval",
        input_hash=f"h{n}", targets=(), reason="race",
    )  # fmt: skip


def _outcome(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except (ConflictState, ActionForbidden) as exc:
        return type(exc).__name__
    return "won"


def test_one_decision_and_one_redemption_win(backend: Backend, clock: Clock) -> None:
    # one broker per worker, as separate processes (or hub processes) would have
    brokers = [
        InputBroker(backend.store, settings=FAST, now=clock, tenant_id=backend.tenant_id)
        for _ in range(WORKERS)
    ]
    rid = _ask(brokers[0], 0)
    deciders = [Actor("user:cli", f"dev-{n}", "") for n in range(WORKERS)]
    with ThreadPoolExecutor(WORKERS) as pool:
        decided = list(
            pool.map(lambda n: _outcome(lambda: brokers[n].approve(rid, actor=deciders[n])), range(WORKERS))
        )
    assert decided.count("won") == 1 and set(decided) <= {"won", "ConflictState"}
    winner = deciders[decided.index("won")].device_id
    assert brokers[0].get(rid).decided_device == winner
    with ThreadPoolExecutor(WORKERS) as pool:
        spent = list(
            pool.map(
                lambda n: _outcome(
                    lambda: brokers[n].redeem(rid, actor=AI, action="notes.delete", input_hash="h0")
                ),
                range(WORKERS),
            )
        )
    assert spent.count("won") == 1 and set(spent) <= {"won", "ActionForbidden"}


def test_concurrent_requests_each_get_their_own_change_number(backend: Backend, clock: Clock) -> None:
    brokers = [
        InputBroker(backend.store, settings=FAST, now=clock, tenant_id=backend.tenant_id)
        for _ in range(WORKERS)
    ]
    with ThreadPoolExecutor(WORKERS) as pool:
        ids = list(pool.map(lambda n: _ask(brokers[n % WORKERS], n), range(WORKERS * 5)))
    assert len(set(ids)) == WORKERS * 5
    assert {r.id for r in brokers[0].pending()} == set(ids)
    changes = getattr(backend.store, "changes", None)
    if changes is not None:  # the hub numbers every change of the tenant's requests
        seqs = [seq for seq, _ in changes(0, 1000)]
        assert seqs == list(range(1, WORKERS * 5 + 1))


def test_devices_approving_a_two_device_request_at_once_lose_no_approval(
    backend: Backend, clock: Clock
) -> None:
    """Each device approves, trying again while another's approval came in meanwhile: exactly
    two approvals are given, both kept, and every device told "given" is one of them."""
    brokers = [
        InputBroker(backend.store, settings=FAST, now=clock, tenant_id=backend.tenant_id)
        for _ in range(WORKERS)
    ]
    rid = brokers[0].ask_approval(
        actor=AI, action="notes.delete", risk=Risk.DESTRUCTIVE, kind="two-devices",
        input_hash="h0", targets=(), reason="race",
    )  # fmt: skip

    def approve(n: int) -> str:
        while True:
            try:
                brokers[n].approve(rid, actor=Actor("user:cli", f"dev-{n}", ""))
                return "given"
            except ConflictState as exc:
                if "changed meanwhile" not in exc.message:
                    return "late"  # approved by two others already

    with ThreadPoolExecutor(WORKERS) as pool:
        said = list(pool.map(approve, range(WORKERS)))
    final = brokers[0].get(rid)
    assert final.status == "approved" and said.count("given") == 2
    assert sorted(a.device for a in final.approvals) == sorted(
        f"dev-{n}" for n, s in enumerate(said) if s == "given"
    )
