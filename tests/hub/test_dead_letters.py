"""Dead letters at the hub, on SQLite and PostgreSQL: a workflow step that fails for good is kept
with its error and its input (secrets masked); retrying runs the workflow again; quarantine and
discard go through the tenant's governed actions (policy, audit); nothing is dropped."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from pydantic import BaseModel, SecretStr

from truthvault.errors import ConflictState, InvalidInput, NotFound
from truthvault.hub._dlq_actions import decide_dead_letter
from truthvault.hub._governance import run_as_admin
from truthvault.hub._workflows import dbos_url, hub_engine, provision_input
from truthvault.hub.store import HubStore
from truthvault.kernel import decode_entry
from truthvault.kernel._dead_letters import MASK, is_secret_name, redact
from truthvault.kernel._workflows import WorkflowEngine

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def engine(hub_store: HubStore, hub_url: str) -> Iterator[WorkflowEngine]:
    with hub_engine(hub_store, hub_url) as running:
        yield running
    url, schema = dbos_url(hub_url)
    if schema:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_secret_fields_and_secret_values_are_masked() -> None:
    class Hook(BaseModel):
        url: str
        signing: SecretStr

    data = {
        "name": "acme",
        "password": "hunter2",
        "apiKey": "k1",
        "webhook_secret": "s1",
        "PIN": "1234",
        "nested": [{"refresh_token": "t1", "keep": "yes"}],
        "hook": Hook(url="https://x", signing=SecretStr("zzz")),
        "keyboard": "not a secret",
    }
    out = redact(data)
    assert out["name"] == "acme" and out["keyboard"] == "not a secret"
    assert out["password"] == out["apiKey"] == out["webhook_secret"] == out["PIN"] == MASK
    assert out["nested"] == [{"refresh_token": MASK, "keep": "yes"}]
    assert out["hook"] == {"url": "https://x", "signing": MASK}
    assert "hunter2" not in repr(out) and "zzz" not in repr(out)
    assert not is_secret_name("monkey") and is_secret_name("private_key")


def test_a_failed_provisioning_becomes_a_dead_letter_with_its_input_masked(
    hub_store: HubStore, engine: WorkflowEngine
) -> None:
    params = {**provision_input("acme", "local_first"), "policy": "permit(", "admin_password": "hunter2"}
    wid = engine.start("tenant.provision", params)
    assert engine.result(wid)["status"] == "compensated"
    [letter] = hub_store.dead_letters.list()
    assert letter.kind == "workflow" and letter.ref == wid and letter.status == "open"
    assert letter.source == "tenant.provision/policy (run)"
    assert letter.error.startswith("VALIDATION_ERROR: text:") and letter.attempts == 1
    assert letter.input["saga"] == "tenant.provision"
    assert letter.input["input"]["admin_password"] == MASK and letter.input["input"]["name"] == "acme"
    assert letter.first_failed_at == letter.last_failed_at
    assert hub_store.dead_letters.counts() == {"open": 1, "quarantined": 0, "retried": 0, "discarded": 0}
    assert hub_store.dead_letters.get(letter.id[:8]).id == letter.id

    # retried: the workflow runs again from its first step, as a new workflow (here it fails alike)
    done = decide_dead_letter(hub_store, "retry", letter.id[:8], note="policy fixed upstream")
    assert done.status == "retried" and done.retried_as and done.retried_as != wid
    assert done.note == "policy fixed upstream"
    again = engine.result(done.retried_as)
    assert again["status"] == "compensated" and again["failed"]["step"] == "policy"
    assert [s for s, _, _ in engine.info(done.retried_as).steps] == ["tenant", "policy", "tenant"]
    letters = {x.ref: x for x in hub_store.dead_letters.list()}
    assert set(letters) == {wid, done.retried_as}
    assert letters[done.retried_as].status == "open"
    with pytest.raises(ConflictState, match="retried"):
        decide_dead_letter(hub_store, "discard", letter.id)
    # of no tenant (it was removed), the admin's decision is kept as a security event
    assert [e.type for e in hub_store.security_events()][:1] == ["DLQ_RETRY"]


def test_a_failure_kept_twice_is_one_dead_letter_and_a_later_one_joins_it(hub_store: HubStore) -> None:
    add = hub_store.dead_letters.add
    first = add("workflow", "wf-1", "s/a (run)", "boom", {"x": 1}, 3)
    assert add("workflow", "wf-1", "s/a (run)", "boom", {"x": 1}, 3).id == first.id  # a replay
    joined = add("workflow", "wf-1", "s/b (compensate)", "bang", {"x": 1}, 2)
    assert joined.id == first.id and joined.attempts == 5
    assert joined.source == "s/a (run); s/b (compensate)" and joined.error == "boom; then bang"
    assert len(hub_store.dead_letters.list()) == 1
    with pytest.raises(InvalidInput, match="kind"):
        add("nope", "r", "s", "e", {}, 1)


def test_a_tenants_dead_letter_is_decided_through_its_governed_actions(hub_store: HubStore) -> None:
    acme = hub_store.add_tenant("acme", "cloud_first")
    hub_store.add_tenant("other", "cloud_first")
    letter = hub_store.dead_letters.add(
        "event", "ev-7", "SYNC_PUSH relay", "timeout", {"token": "t"}, 5, acme.id
    )
    assert letter.input == {"token": MASK}
    # another tenant's admin does not even see it
    with pytest.raises(NotFound):
        run_as_admin(hub_store, "other", "dlq.quarantine", {"id": letter.id})
    done = decide_dead_letter(hub_store, "quarantine", letter.id, note="look later")
    assert done.status == "quarantined" and done.changed_by == "user:hub-admin"
    with pytest.raises(ConflictState, match="nothing in this process retries"):
        decide_dead_letter(hub_store, "retry", letter.id)
    assert decide_dead_letter(hub_store, "discard", letter.id).status == "discarded"
    with pytest.raises(ConflictState):
        decide_dead_letter(hub_store, "quarantine", letter.id)
    assert hub_store.dead_letters.list(status="discarded")[0].id == letter.id  # kept, never dropped
    hub_store.audit_queue.flush(acme.id)
    actions = [decode_entry(e.entry).action for e in hub_store.audit.entries(acme.id)]
    # every attempt is audited, the refused ones too
    assert actions == ["dlq.quarantine", "dlq.retry", "dlq.discard", "dlq.quarantine"]


def test_only_the_user_discards_a_dead_letter(hub_store: HubStore) -> None:
    from truthvault.clock import HybridClock
    from truthvault.hub._actions import HubScope
    from truthvault.hub._governance import hub_kernel
    from truthvault.kernel import Actor

    acme = hub_store.add_tenant("acme", "cloud_first")
    letter = hub_store.dead_letters.add("automation", "run-1", "rule r1", "boom", {}, 3, acme.id)
    kernel = hub_kernel(hub_store, HubScope(hub_store, "acme", acme.id), HybridClock())
    with pytest.raises(Exception, match="only the user"):
        kernel.run("dlq.discard", {"id": letter.id}, actor=Actor("automation:r1", "", acme.id))
    assert hub_store.dead_letters.get(letter.id).status == "open"


def test_a_device_decides_its_tenants_dead_letters_over_http(hub_store: HubStore) -> None:
    from fastapi.testclient import TestClient

    from truthvault.hub.app import create_app

    from .test_auth import Signer

    alpha = hub_store.add_tenant("alpha", "cloud_first")
    beta = hub_store.add_tenant("beta", "cloud_first")
    mine = hub_store.dead_letters.add("event", "ev-1", "relay", "boom", {"pin": "1234"}, 2, alpha.id)
    theirs = hub_store.dead_letters.add("event", "ev-2", "relay", "boom", {}, 2, beta.id)
    with TestClient(create_app(hub_store)) as client:
        laptop = Signer(client, hub_store, "alpha", "laptop")
        bad = laptop.post("/v1/actions/dlq.quarantine", {"input": {"id": "ab"}})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "id"
        assert laptop.post("/v1/actions/dlq.quarantine", {"input": {"id": theirs.id}}).status_code == 404
        ok = laptop.post("/v1/actions/dlq.quarantine", {"input": {"id": mine.id[:8], "note": "later"}})
        assert ok.status_code == 200, ok.text
        assert ok.json()["dead_letter"]["status"] == "quarantined"
        assert ok.json()["dead_letter"]["input"] == {"pin": "***"}
        assert ok.json()["dead_letter"]["changed_by"] == "user:device"
    assert hub_store.dead_letters.get(theirs.id).status == "open"
