"""The broker behind the dispatcher: an approval asked by Kernel.run, decided by the user, then
redeemed inside the action's own transaction, so that an action that fails gives it back."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from truthvault.errors import ConflictState
from truthvault.kernel import (
    ActionConflict,
    ActionForbidden,
    Actor,
    ApprovalRequired,
    AuditRecord,
    Context,
    Kernel,
    PolicyDecision,
    PolicyRequest,
    Registry,
    Risk,
)
from truthvault.vault import Vault


class Wipe(BaseModel):
    note: str


class Done(BaseModel):
    ok: bool


class AskFirst:
    """Every destructive action waits for an approval."""

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        return PolicyDecision(allowed=True, approval="approve", policies=("test",), reason="destructive")


def test_an_approval_is_spent_only_by_the_run_that_commits(tmp_path: Path) -> None:
    registry: Registry[Vault] = Registry()
    failures = [1]

    @registry.action("notes.wipe", version="1.0.0", risk=Risk.DESTRUCTIVE, input=Wipe, output=Done)
    def wipe(ctx: Context[Vault], params: Wipe) -> Done:
        """Wipe a note."""
        if failures:
            failures.pop()
            raise ConflictState("the note changed meanwhile")
        return Done(ok=True)

    audit: list[AuditRecord] = []
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        kernel = Kernel(
            registry, vault, policy=AskFirst(), broker=vault.broker, audit=_Sink(audit),
            transaction=vault._db.tx, clock=lambda: "2026-12-07T00:00:00Z",
        )  # fmt: skip
        ai = Actor("ai-local:llama3", vault.device_id, vault.tenant_id)
        with pytest.raises(ApprovalRequired) as asked:
            kernel.run("notes.wipe", {"note": "n1"}, actor=ai)
        rid = asked.value.request_id
        assert rid is not None and vault.broker.get(rid).status == "pending"
        with pytest.raises(ApprovalRequired):
            kernel.run("notes.wipe", {"note": "n1"}, actor=ai, approval=rid)
        vault.broker.approve(rid, actor=Actor("user:cli", vault.device_id))
        with pytest.raises(ActionForbidden, match="another action, input or actor"):
            kernel.run("notes.wipe", {"note": "n2"}, actor=ai, approval=rid)
        with pytest.raises(ActionConflict):
            kernel.run("notes.wipe", {"note": "n1"}, actor=ai, approval=rid)
        assert vault.broker.get(rid).status == "approved"  # the failed run gave it back
        assert kernel.run("notes.wipe", {"note": "n1"}, actor=ai, approval=rid) == Done(ok=True)
        assert vault.broker.get(rid).status == "used"
        with pytest.raises(ActionForbidden, match="was used"):
            kernel.run("notes.wipe", {"note": "n1"}, actor=ai, approval=rid)
    approved = [r for r in audit if r.decision == "approved"]
    assert len(approved) == 1 and approved[0].approved_by == "user:cli"


class _Sink:
    def __init__(self, records: list[AuditRecord]) -> None:
        self.records = records

    def append(self, record: AuditRecord) -> None:
        self.records.append(record)
