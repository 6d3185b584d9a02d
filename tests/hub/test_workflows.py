"""The hub's sagas on its own store, on SQLite and PostgreSQL: tenant.provision makes a tenant
with its policy and first code, every step leaving an event and an audit entry; a provisioning
that fails half-way is compensated (the new tenant removed, nothing else touched)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from truthvault.errors import ConflictState, NotFound
from truthvault.hub._governance import run_as_admin
from truthvault.hub._tenants import TENANT_TABLES
from truthvault.hub._workflows import dbos_url, hub_engine, provision_input, provision_tenant
from truthvault.hub.store import HubStore
from truthvault.kernel import decode_entry
from truthvault.kernel._workflows import WorkflowEngine

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def engine(hub_store: HubStore, hub_url: str) -> Iterator[WorkflowEngine]:
    with hub_engine(hub_store, hub_url) as running:
        yield running
    url, schema = dbos_url(hub_url)
    if schema:  # PostgreSQL: DBOS's tables, out of the next test's way
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_every_table_with_tenant_rows_is_one_a_removal_clears(hub_url: str, hub_store: HubStore) -> None:
    if hub_url.startswith("postgresql"):
        with psycopg.connect(hub_url) as conn:
            found = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE column_name = 'tenant_pk' AND table_schema = current_schema()"
                )
            }
    else:
        with closing(sqlite3.connect(hub_url)) as conn:
            found = {
                r[0]
                for r in conn.execute(
                    "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) p "
                    "WHERE m.type = 'table' AND p.name = 'tenant_pk'"
                )
            }
    assert found == set(TENANT_TABLES)


def test_tenant_provision_makes_a_tenant_with_its_policy_and_first_code(
    hub_store: HubStore, engine: WorkflowEngine
) -> None:
    wid = engine.start("tenant.provision", provision_input("acme", "cloud_first"))
    outcome = engine.result(wid)
    assert outcome["status"] == "completed", outcome
    tenant = hub_store.get_tenant("acme")
    assert tenant.vault_mode == "cloud_first"
    assert outcome["results"]["tenant"]["tenant_id"] == tenant.id
    assert outcome["results"]["policy"]["version"] == 1
    steps = [e.detail["step"] for e in hub_store.events(tenant.id, type="WORKFLOW_STEP")]
    assert steps == ["tenant", "policy", "contracts"]
    hub_store.audit_queue.flush(tenant.id)
    actions = [decode_entry(e.entry) for e in hub_store.audit.entries(tenant.id)]
    workflow = [(a.action, a.reason) for a in actions if a.action.startswith("workflow.")]
    assert [r.split(" ")[1] for _, r in workflow] == ["tenant", "policy", "contracts"]
    assert all(a == "workflow.run" for a, _ in workflow)
    assert "policy.set" in {a.action for a in actions}
    info = engine.info(wid)
    assert info.status == "completed" and [s for s, _, _ in info.steps] == [
        "tenant",
        "policy",
        "contracts",
    ]


def test_a_provisioning_that_fails_half_way_removes_its_tenant(
    hub_store: HubStore, engine: WorkflowEngine
) -> None:
    hub_store.add_tenant("other", "local_first")
    wid = engine.start("tenant.provision", {**provision_input("acme", "local_first"), "policy": "permit("})
    outcome = engine.result(wid)
    assert outcome["status"] == "compensated"
    # bad input fails for good at once: no retry mends it
    assert outcome["failed"]["step"] == "policy" and outcome["failed"]["attempts"] == 1
    assert outcome["failed"]["error"].startswith("VALIDATION_ERROR: text:")
    assert outcome["compensated"] == ["tenant"]
    with pytest.raises(NotFound):
        hub_store.get_tenant("acme")
    assert [t.name for t in hub_store.list_tenants()] == ["other"]  # nothing else touched


def test_a_tenant_that_holds_a_device_is_never_removed_as_new(hub_store: HubStore) -> None:
    tenant = hub_store.add_tenant("acme", "cloud_first")
    hub_store.add_device("acme", "laptop")
    with pytest.raises(ConflictState, match="holds devices"):
        hub_store.drop_new_tenant(tenant.id)
    assert hub_store.get_tenant("acme").id == tenant.id
    hub_store.drop_new_tenant("no-such-tenant")  # gone already: done


_KILLED_PROVISION = """
import os, signal, sys
from truthvault.hub import hub_engine, open_store
from truthvault.hub._workflows import provision_input
url = sys.argv[1]
store = open_store(url)
engine = hub_engine(store, url)
def observe(event):
    if (event.step, event.outcome) == ("policy", "completed"):
        os.kill(os.getpid(), signal.SIGKILL)
engine.observe = observe
engine.launch()
engine.run("tenant.provision", provision_input("acme", "cloud_first"), workflow_id="provision-acme")
"""


@pytest.mark.timeout(180)
def test_a_serving_hub_resumes_a_provisioning_a_killed_process_left(hub_url: str, tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    from truthvault.hub import open_store

    open_store(hub_url).close()  # made, as 'hub init' makes it
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_PROVISION, hub_url], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TRUTHVAULT_HOME": str(tmp_path / "home")}
    serving = subprocess.Popen(
        [sys.executable, "-m", "truthvault", "hub", "serve", "--db", hub_url, "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        store = open_store(hub_url)
        deadline = time.monotonic() + 90
        steps: list[object] = []
        while time.monotonic() < deadline:
            try:
                tenant = store.get_tenant("acme")
                steps = [e.detail["step"] for e in store.events(tenant.id, type="WORKFLOW_STEP")]
            except NotFound:
                steps = []
            if steps == ["tenant", "policy", "contracts"]:
                break
            time.sleep(0.2)
        assert steps == ["tenant", "policy", "contracts"]  # each step once: none ran twice
        store.close()
    finally:
        serving.terminate()
        serving.communicate(timeout=30)  # its pipes closed


def _everything_kept(hub_url: str) -> str:
    """Every text DBOS's system database and the hub's step ledger hold, as one text."""
    url, schema = dbos_url(hub_url)
    texts: list[str] = []
    if schema:
        with psycopg.connect(url) as conn:
            for (table,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall():
                rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                texts += [str(v) for row in rows for v in row]
        with psycopg.connect(hub_url) as conn:
            texts += [str(r[0]) for r in conn.execute("SELECT output FROM workflow_steps").fetchall()]
    else:
        for path in (url.removeprefix("sqlite:///"), hub_url):
            with closing(sqlite3.connect(path)) as conn:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for table in tables:
                    texts += [str(v) for row in conn.execute(f'SELECT * FROM "{table}"') for v in row]
    return "\n".join(texts)


def test_the_first_code_is_shown_once_and_kept_nowhere_in_plain_text(
    hub_store: HubStore, hub_url: str
) -> None:
    results = provision_tenant(hub_store, hub_url, "acme", "local_first")
    code = results["code"]["code"]
    assert len(code) >= 8
    kept = _everything_kept(hub_url)
    assert "acme" in kept  # what a provisioning keeps is there to look in ...
    assert code not in kept and code.replace("-", "") not in kept  # ... and the code is not
    enrolled = hub_store.enroll(code, "laptop", "s" * 43, "b" * 43)
    assert enrolled is not None
    url, schema = dbos_url(hub_url)
    if schema:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_provisioning_adds_the_contracts_it_is_given(hub_store: HubStore, engine: WorkflowEngine) -> None:
    recipe = {"type": "recipe", "schema": {"type": "object", "properties": {"title": {"type": "string"}}}}
    outcome = engine.result(
        engine.start("tenant.provision", provision_input("acme", "local_first", contracts=[recipe]))
    )
    assert outcome["status"] == "completed", outcome
    tenant = hub_store.get_tenant("acme")
    assert [c.entity_type for _, c in hub_store.contracts.list(tenant.id)] == ["recipe"]
    hub_store.add_device("acme", "laptop")  # after its first device, the tenant's own devices add them
    again = engine.result(
        engine.start("tenant.provision", provision_input("acme", "local_first", contracts=[recipe]))
    )
    assert again["status"] == "compensated" and again["failed"]["step"] == "tenant"  # the name is taken


def test_a_removed_tenant_leaves_no_row_for_no_one(
    hub_store: HubStore, engine: WorkflowEngine, hub_sql: Callable[..., list[Any]]
) -> None:
    outcome = engine.result(
        engine.start("tenant.provision", {**provision_input("acme", "local_first"), "policy": "permit("})
    )
    assert outcome["compensated"] == ["tenant"]
    for table in ("audit_pending", "sync_events"):  # the compensation's own trace went nowhere
        orphans = hub_sql(f"SELECT count(*) FROM {table} WHERE tenant_pk NOT IN (SELECT pk FROM tenants)")
        assert orphans[0][0] == 0, table
    beta = hub_store.add_tenant("beta", "local_first")
    run_as_admin(hub_store, "beta", "tenant.code", {"ttl_s": 60})
    hub_store.audit_queue.sequence()  # the sequencer is not stuck on a removed tenant's entry
    assert hub_sql("SELECT count(*) FROM audit_pending")[0][0] == 0
    assert hub_store.audit.entries(beta.id)


def test_a_taken_or_bad_tenant_name_is_refused_before_any_workflow(hub_store: HubStore, hub_url: str) -> None:
    from truthvault.errors import InvalidInput
    from truthvault.hub import provision_tenant

    hub_store.add_tenant("acme", "local_first")
    with pytest.raises(ConflictState, match="'acme' already exists"):
        provision_tenant(hub_store, hub_url, "acme", "cloud_first")
    with pytest.raises(InvalidInput, match="tenant name"):
        provision_tenant(hub_store, hub_url, " acme", "cloud_first")
    assert hub_store.dead_letters.list() == []  # nothing ran, so nothing failed
    url, schema = dbos_url(hub_url)
    assert schema or not Path(url.removeprefix("sqlite:///")).exists()  # no engine was even launched
