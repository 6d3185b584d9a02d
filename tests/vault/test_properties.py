"""Convergence and truth invariants under random writes and random exchange orders.

These vaults exchange their queues directly, with no hub between them. That nothing is lost is
a property of the system with its hub, which keeps the losers a device leaves to it (a device
keeps only its own losing versions, so that records converge): tests/test_convergence.py."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truthvault.model import SyncItem
from truthvault.truth import Outcome
from truthvault.vault import Vault

from .conftest import as_pull, hub_ack

SOURCES = ["user:cli", "automation:rule-1", "ai-local:llama3", "ai-lan:mixtral", "ai-cloud:openai/gpt-4o"]
ENTITIES = ["e0", "e1", "e2"]

write = st.tuples(
    st.just("write"),
    st.integers(0, 2),  # vault
    st.sampled_from(ENTITIES),
    st.sampled_from(SOURCES),
    st.booleans(),  # delete instead of put (when live)
)
exchange = st.tuples(st.just("exchange"), st.integers(0, 2), st.integers(0, 2))
push_all = st.tuples(st.just("push_all"), st.integers(0, 2))
operations = st.lists(st.one_of(write, write, exchange, push_all), min_size=1, max_size=40)


@dataclass(frozen=True)
class Written:
    item: SyncItem
    outcome: Outcome


def _send(src: Vault, dst: Vault) -> None:
    request = src.replica.pending_batch(limit=10_000)
    if request is not None and src is not dst:
        dst.replica.apply_pull(as_pull(request, dst.replica.cursor + 1))


def _run(vaults: list[Vault], ops: list[tuple[object, ...]]) -> list[Written]:
    log: list[Written] = []
    n = len(vaults)
    for op in ops:
        if op[0] == "write":
            _, vi, eid, source, delete = op
            v = vaults[int(str(vi)) % n]
            live = v.count(include_deleted=False) and any(i.entity_id == eid for i in v.list())
            if delete and live:
                res = v.delete(str(eid), source=str(source))
            else:
                res = v.put(
                    "note", {"v": len(log), "by": str(source)}, entity_id=str(eid), source=str(source)
                )
            log.append(Written(res.item, res.outcome))
        elif op[0] == "exchange":
            a, b = vaults[int(str(op[1])) % n], vaults[int(str(op[2])) % n]
            _send(a, b)
            _send(b, a)
        else:  # a push through a hub that reaches every peer, then the ack
            src = vaults[int(str(op[1])) % n]
            request = src.replica.pending_batch(limit=10_000)
            if request is not None:
                for other in vaults:
                    if other is not src:
                        other.replica.apply_pull(as_pull(request, other.replica.cursor + 1))
                src.replica.ack(request, hub_ack(request))
    # Everyone gets everything: every queue reaches every peer (twice, for losers made on the way).
    for _ in range(2):
        for src in vaults:
            for dst in vaults:
                _send(src, dst)
    return log


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(2, 3), ops=operations)
def test_vaults_converge_and_keep_truth(count: int, ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        vaults = [Vault.open(Path(tmp) / f"v{n}", source="user:cli") for n in range(count)]
        try:
            log = _run(vaults, ops)
            written = {w.item.entity_id for w in log}
            # (a) one state everywhere
            assert len({v.replica.checksum() for v in vaults}) == 1
            for eid in written:
                versions = [v.get(eid, include_deleted=True) for v in vaults]
                assert all(x == versions[0] for x in versions), eid
            # (b) U1 content is never replaced by a lower level
            for eid in written:
                if any(w.item.entity_id == eid and w.item.truth_level == 1 for w in log):
                    assert all(v.get(eid, include_deleted=True).truth_level == 1 for v in vaults), eid
        finally:
            for v in vaults:
                v.close()
