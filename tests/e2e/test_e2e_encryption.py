"""End-to-end encryption with real hub processes: the hub never holds a local-first payload in
the clear, keys reach new devices without it, tampering is caught on the device (both backends)."""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from truthvault.crypto import DeviceKeys
from truthvault.errors import HubUnavailable
from truthvault.sync import HubClient, Syncer, enrol_vault, enroll, recovery_keyring
from truthvault.sync._keys import KeyExchange
from truthvault.vault import Vault

from .conftest import Cli, HubProc

pytestmark = pytest.mark.e2e

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def hub2(hub_db: str, tmp_path: Path) -> Iterator[HubProc]:
    """A running hub (no tenants yet)."""
    proc = HubProc(hub_db, tmp_path / "hub-home")
    proc.start()
    yield proc
    proc.stop()


def _tenant(hub: HubProc, name: str, mode: str) -> str:
    return str(hub.admin.json("hub", "tenant", "add", name, "--mode", mode)["enrol_code"])


def _enroll(
    hub: HubProc, home: Path, tenant: str, name: str, *extra: str, env: dict[str, str] | None = None
) -> Cli:
    code = hub.admin.json("hub", "tenant", "code", tenant)["enrol_code"]
    cli = Cli(home / name)
    cli.env.update(env or {})
    cli.run("enroll", "--hub", hub.url, "--code", code, "--name", name, *extra)
    return cli


def _texts(cli: Cli) -> set[str]:
    return {str(e["payload"].get("text")) for e in cli.json("list", "--limit", "1000")}


def _hub_text(hub: HubProc) -> str:
    """Everything the hub holds, as text: every column of every row of every table, and its files."""
    chunks: list[str] = []
    if hub.db.startswith("postgresql"):
        with psycopg.connect(hub.db) as conn:
            cols = conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public'"
            ).fetchall()
            for table in sorted({c[0] for c in cols}):
                chunks += [r[0] for r in conn.execute(f'SELECT t::text FROM "{table}" t')]
            for table, column, kind in cols:
                if kind == "bytea":  # t::text shows bytea as hex: read it as the bytes it holds
                    rows = conn.execute(f'SELECT "{column}" FROM "{table}"')
                    chunks += [bytes(r[0]).decode("latin-1") for r in rows if r[0] is not None]
    else:
        for suffix in ("", "-wal", "-shm"):
            path = Path(hub.db + suffix)
            if path.exists():
                chunks.append(path.read_bytes().decode("latin-1"))
        with closing(sqlite3.connect(hub.db)) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
                for col in cols:
                    # binary columns (the audit log's hashes) as the bytes they hold
                    chunks += [
                        r[0].decode("latin-1") if isinstance(r[0], bytes) else str(r[0])
                        for r in conn.execute(f'SELECT "{col}" FROM "{table}"')
                    ]
    for path in hub.admin.home.rglob("*"):
        if path.is_file():
            chunks.append(path.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


def _hub_sql(hub: HubProc, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    if hub.db.startswith("postgresql"):
        with psycopg.connect(hub.db, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    with closing(sqlite3.connect(hub.db, isolation_level=None)) as conn:
        return conn.execute(sql, params).fetchall()


def _stored_items(hub: HubProc, tenant: str) -> dict[str, dict[str, Any]]:
    rows = _hub_sql(
        hub,
        "SELECT e.entity_id, e.wire FROM entities e JOIN tenants t ON t.pk = e.tenant_pk WHERE t.name = ?",
        (tenant,),
    )
    return {r[0]: json.loads(bytes(r[1])) for r in rows}


def _store_item(hub: HubProc, entity_id: str, item: dict[str, Any]) -> None:
    wire = json.dumps(item, separators=(",", ":")).encode()
    _hub_sql(hub, "UPDATE entities SET wire = ? WHERE entity_id = ?", (wire, entity_id))


def test_hub_never_sees_local_first_plaintext(hub2: HubProc, tmp_path: Path) -> None:
    hub = hub2
    _tenant(hub, "family", "local_first")
    _tenant(hub, "shop", "cloud_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    marker = uuid.uuid4().hex
    ids = [
        laptop.json("note", "add", f"secret {marker} {n}", "--title", f"t-{marker}")["item"]["entity_id"]
        for n in range(3)
    ]
    laptop.sync()
    assert marker not in _hub_text(hub)

    # The search finds a marker where there is one: a cloud-first tenant keeps plaintext.
    till = _enroll(hub, tmp_path, "shop", "till")
    plain = uuid.uuid4().hex
    till.run("note", "add", f"open {plain}")
    till.sync()
    assert plain in _hub_text(hub) and marker not in _hub_text(hub)

    # A second device gets the key once an enrolled device has shared it.
    phone = _enroll(hub, tmp_path, "family", "phone")
    waiting = phone.run("sync", "now", check=False)
    assert waiting.returncode == 1 and "waiting for the tenant's data key" in waiting.stderr
    laptop.sync()  # wraps the keyring to the phone's box key
    phone.sync()
    assert _texts(phone) == {f"secret {marker} {n}" for n in range(3)}

    # Tamper at the hub: flip a ciphertext byte of one entity, move another's envelope onto a third.
    stored = _stored_items(hub, "family")
    bad, src, dst = ids
    item = stored[bad]
    ct = bytearray(base64.urlsafe_b64decode(item["payload"]["ct"] + "=="))
    ct[5] ^= 0x01
    item["payload"]["ct"] = base64.urlsafe_b64encode(bytes(ct)).rstrip(b"=").decode()
    _store_item(hub, bad, item)
    moved = stored[dst]
    moved["payload"] = stored[src]["payload"]
    _store_item(hub, dst, moved)

    fresh = _enroll(hub, tmp_path, "family", "tablet")
    laptop.sync()
    result = fresh.run("sync", "now", check=False)
    assert result.returncode == 1
    first, *rest = result.stderr.strip().splitlines()
    assert first.startswith("error: 2 pulled items could not be decrypted") and len(rest) <= 1
    assert bad in first and dst in first and "tampered" in first
    assert _texts(fresh) == {f"secret {marker} 1"}  # the untouched entity arrived intact
    events = fresh.json("events", "--type", "DECRYPTION_FAILED")
    assert {e["entity_id"] for e in events} == {bad, dst}
    # nothing is dropped: both are dead letters, still sealed; a retry cannot open a tampered one
    letters = fresh.json("dlq", "list", "--kind", "event")
    assert len(letters) == 2 and {x["error"].split(":")[0] for x in letters} <= {"tampered", "malformed"}
    assert not any(marker in json.dumps(x) for x in letters)
    retry = fresh.run("dlq", "retry", letters[0]["id"], check=False)
    assert retry.returncode == 1 and "still does not open" in retry.stderr
    assert fresh.json("dlq", "show", letters[0]["id"])["status"] == "open"


def _record_wires(hub: HubProc, entity_id: str) -> dict[str, dict[str, Any]]:
    rows = _hub_sql(hub, "SELECT id, wire FROM records WHERE entity_id = ?", (entity_id,))
    return {r[0]: json.loads(bytes(r[1])) for r in rows}


def test_whoever_holds_the_hubs_database_cannot_pass_ai_text_off_as_the_users(
    hub2: HubProc, tmp_path: Path
) -> None:
    """The current version (v2, U1, user:cli) and a suggestion (v2, C5) have payloads of the same
    entity and version. Swapped in the hub's database, a new device used to show the AI's text
    as the user's, with no error and 'sync check' in sync. Now both fail to open."""
    hub = hub2
    _tenant(hub, "family", "local_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    eid = laptop.json("note", "add", "mine v1")["item"]["entity_id"]
    laptop.sync()
    phone = _enroll(hub, tmp_path, "family", "phone")
    laptop.sync()
    phone.sync()
    phone.run("edit", eid, "--set", "text=the AI's words", "--source", "ai-cloud:evil/model")
    phone.sync()
    laptop.run("edit", eid, "--set", "text=mine v2")
    laptop.sync()
    [(rid, record)] = _record_wires(hub, eid).items()
    current = _stored_items(hub, "family")[eid]
    assert (current["version"], current["truth_level"]) == (2, 1)
    assert (record["item"]["version"], record["item"]["truth_level"]) == (2, 5)
    current["payload"], record["item"]["payload"] = record["item"]["payload"], current["payload"]
    _store_item(hub, eid, current)
    _hub_sql(hub, "UPDATE records SET wire = ? WHERE id = ?", (json.dumps(record).encode(), rid))

    tablet = _enroll(hub, tmp_path, "family", "tablet")
    laptop.sync()
    result = tablet.run("sync", "now", check=False)
    assert result.returncode == 1 and "could not be decrypted" in result.stderr
    assert "tampered" in result.stderr
    assert "the AI's words" not in json.dumps(tablet.json("list", "--all"))
    assert tablet.run("show", eid, check=False).returncode == 1  # kept out, not shown as the user's
    failed = tablet.json("events", "--type", "DECRYPTION_FAILED")
    assert [e["entity_id"] for e in failed] == [eid, eid]


# The hub's part of this is tested on both backends at the store (tests/sync, tests/hub); the
# story through real processes once, on SQLite, keeps the suite within its time.
@pytest.mark.parametrize("hub_db", ["sqlite"], indirect=True)
def test_a_suggestion_made_on_another_device_is_accepted_over_later_edits(
    hub2: HubProc, tmp_path: Path
) -> None:
    """The AI on the phone suggests against a version the laptop holds too; the laptop edits
    another field, syncs and accepts: the suggestion travels with the version it was made on
    (sealed like any payload), so only what it changed is applied, without --force."""
    hub = hub2
    _tenant(hub, "family", "local_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    eid = laptop.json("put", "note", '{"text": "draft", "title": "orig"}')["item"]["entity_id"]
    phone = _enroll(hub, tmp_path, "family", "phone")
    laptop.sync()
    phone.sync()
    phone.run("edit", eid, "--set", "text=an AI rewrite", "--source", "ai-cloud:openai/gpt-4o")
    phone.sync()
    laptop.run("edit", eid, "--set", "title=mine")
    laptop.sync()
    [suggestion] = laptop.json("suggestions")
    [stored] = _record_wires(hub, eid).values()
    assert stored["base"].get("version", 1) == 1 and "tv_enc" in stored["base"]["payload"]
    assert "draft" not in _hub_text(hub)  # the base is sealed like every payload
    laptop.run("accept", suggestion["id"])
    assert laptop.json("show", eid)["item"]["payload"] == {"text": "an AI rewrite", "title": "mine"}
    laptop.sync()
    phone.sync()
    assert phone.json("show", eid)["item"]["payload"] == {"text": "an AI rewrite", "title": "mine"}
    assert phone.run("sync", "check").returncode == 0


def test_recovery_and_rotation(hub2: HubProc, tmp_path: Path) -> None:
    hub = hub2
    _tenant(hub, "family", "local_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    laptop.run("note", "add", "before rotation")
    laptop.sync()
    early = Cli(tmp_path / "early")
    early.env["TRUTHVAULT_RECOVERY_PASSPHRASE"] = PASSPHRASE
    code = hub.admin.json("hub", "tenant", "code", "family")["enrol_code"]
    unset = early.run("enroll", "--hub", hub.url, "--code", code, "--recover", check=False)
    assert unset.returncode == 1 and "no recovery passphrase set" in unset.stderr
    assert not (tmp_path / "early" / "vault.db").exists()  # refused before enrolling
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    out = laptop.run("keys", "recovery", "set", "--passphrase-file", str(secret)).stdout
    assert "recovery passphrase set" in out and PASSPHRASE not in out

    # The lost-device story: a brand-new device reads everything with the passphrase alone.
    restored = _enroll(
        hub, tmp_path, "family", "restored", "--recover", env={"TRUTHVAULT_RECOVERY_PASSPHRASE": PASSPHRASE}
    )
    restored.sync()
    assert _texts(restored) == {"before rotation"}
    code = hub.admin.json("hub", "tenant", "code", "family")["enrol_code"]
    wrong = Cli(tmp_path / "wrong")
    wrong.env["TRUTHVAULT_RECOVERY_PASSPHRASE"] = "not the passphrase at all"
    failed = wrong.run(
        "enroll", "--hub", hub.url, "--code", code, "--name", "wrong", "--recover", check=False
    )
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[0].startswith("error: wrong recovery passphrase")
    # checked before enrolling: no device was added, nothing was written, the code is not spent
    assert "wrong" not in {d["name"] for d in laptop.json("devices")}
    assert not (tmp_path / "wrong" / "vault.db").exists()
    wrong.env["TRUTHVAULT_RECOVERY_PASSPHRASE"] = PASSPHRASE
    out = wrong.run("enroll", "--hub", hub.url, "--code", code, "--name", "wrong", "--recover").stdout
    assert "recovered the tenant data key" in out
    wrong.sync()
    assert _texts(wrong) == {"before rotation"}
    # an enrolled device retries the passphrase as often as it needs to
    bad = tmp_path / "bad.txt"
    bad.write_text("not the passphrase at all\n")
    retried = wrong.run("keys", "recover", "--passphrase-file", str(bad), check=False)
    assert retried.returncode == 1 and "wrong recovery passphrase" in retried.stderr
    assert "recovered the tenant key" in wrong.run("keys", "recover", "--passphrase-file", str(secret)).stdout

    phone = _enroll(hub, tmp_path, "family", "phone")
    laptop.sync()
    phone.sync()
    before = laptop.json("keys", "status")["current_key"]
    rotated = laptop.run("keys", "rotate", "--passphrase-file", str(secret)).stdout
    assert "rotated the tenant data key" in rotated and "recovery copy re-wrapped" in rotated
    after = laptop.json("keys", "status")["current_key"]
    assert after != before
    laptop.run("note", "add", "after rotation")
    laptop.sync()
    phone.sync()
    assert _texts(phone) == {"before rotation", "after rotation"}
    kids = {item["payload"]["kid"] for item in _stored_items(hub, "family").values()}
    assert kids == {before, after}
    # The recovery copy was re-wrapped: a device recovering now reads the new entries too.
    late = _enroll(hub, tmp_path, "family", "late", "--recover", "--passphrase-file", str(secret))
    late.sync()
    assert _texts(late) == {"before rotation", "after rotation"}


class _Device:
    """An enrolled device in this process (the CLI's objects), so a test can order key exchanges."""

    def __init__(self, hub: HubProc, home: Path, tenant: str, name: str) -> None:
        code = hub.admin.json("hub", "tenant", "code", tenant)["enrol_code"]
        self.device_keys = DeviceKeys.generate()
        key_path = home / f"{name}.key"
        self.device_keys.save(key_path)
        joined = enroll(hub.url, code, name, self.device_keys)
        self.vault = Vault.open(home / name, source="user:cli")
        self.vault.replica.join(
            hub_url=hub.url,
            token=None,
            tenant_id=joined["tenant_id"],
            tenant_name=joined["tenant_name"],
            device_id=joined["device_id"],
            vault_mode=joined["vault_mode"],
            key_path=str(key_path),
        )
        self.client = HubClient(hub.url, keys=self.device_keys, device_id=joined["device_id"])

    def syncer(self) -> Syncer:
        """A new Syncer, as each `truthvault sync` makes one."""
        return Syncer(self.vault, self.client, device_keys=self.device_keys)

    def texts(self) -> set[str]:
        return {str(msgspec.json.decode(e.payload)["text"]) for e in self.vault.list(limit=1000)}

    def close(self) -> None:
        self.client.close()
        self.vault.close()


def test_concurrent_rotations_converge_and_every_entry_stays_readable(
    hub2: HubProc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tenant(hub2, "race", "local_first")
    a, b, c = (_Device(hub2, tmp_path, "race", name) for name in ("a", "b", "c"))
    try:
        for device in (a, b, c):
            device.syncer().sync()  # a makes the key and shares it; all three hold it
        stale = b.vault.replica.keyring()
        a.syncer().keys.rotate()  # a: a new key, shared with everyone
        a.vault.put("note", {"text": "sealed under a's new key"})
        a.syncer().push()
        # b rotates from the view it had before a's share reached it: its keyring, shared with
        # everyone, overwrites a's and lacks a's new key
        b_keys = b.syncer().keys
        monkeypatch.setattr(b_keys, "refresh", lambda force=False: stale)
        b_keys.rotate()
        monkeypatch.undo()
        b.vault.put("note", {"text": "sealed under b's new key"})
        b.syncer().push()
        # a's next sync finds its copy lacks its own new key and shares the union with everyone
        a.syncer().sync()
        both = {"sealed under a's new key", "sealed under b's new key"}
        for device in (c, b, a):
            stats = device.syncer().sync()
            assert stats.unreadable == [], [u.describe() for u in stats.unreadable]
            assert device.texts() == both
    finally:
        for device in (a, b, c):
            device.close()


def test_a_token_device_in_a_local_first_tenant_is_told_how_to_get_the_key(
    hub2: HubProc, tmp_path: Path
) -> None:
    hub = hub2
    _tenant(hub, "family", "local_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    laptop.run("note", "add", "sealed")
    laptop.sync()
    added = hub.admin.run("hub", "device", "add", "--tenant", "family", "--name", "script")
    assert "local-first" in added.stderr and "hub tenant code family" in added.stderr
    token = added.stdout.split("token (shown once, keep it secret): ")[1].split()[0]
    script = Cli(tmp_path / "script")
    script.run("init", "--hub", hub.url, "--tenant", "family", "--token", "-", stdin=token + "\n")
    laptop.sync()  # it has no box key: nothing can be wrapped to it
    result = script.run("sync", "now", check=False)
    first = result.stderr.strip().splitlines()[0]
    assert result.returncode == 1 and "added with a token" in first
    assert "keys recover" in result.stderr and "enroll" in result.stderr


def test_an_enrolment_whose_recovery_fails_after_enrolling_says_how_to_finish(
    hub2: HubProc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = hub2
    _tenant(hub, "family", "local_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    laptop.sync()
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    laptop.run("keys", "recovery", "set", "--passphrase-file", str(secret))

    code = hub.admin.json("hub", "tenant", "code", "family")["enrol_code"]
    recovered = recovery_keyring(hub.url, code, PASSPHRASE)

    def lost(*_: object) -> None:
        raise HubUnavailable("the hub did not answer in time")

    monkeypatch.setattr(KeyExchange, "adopt", lost)
    with Vault.open(tmp_path / "phone", source="user:cli") as vault, pytest.raises(HubUnavailable) as failed:
        enrol_vault(vault, hub.url, code, "phone", recovered=recovered)
    assert "IS enrolled" in str(failed.value) and "keys recover" in str(failed.value)
    monkeypatch.undo()
    phone = Cli(tmp_path / "phone")
    assert "recovered the tenant key" in phone.run("keys", "recover", "--passphrase-file", str(secret)).stdout


def test_a_local_first_approval_is_sealed_on_the_phone_and_one_the_hub_makes_up_is_refused(
    hub2: HubProc, tmp_path: Path
) -> None:
    """The phone approves with the CLI, sealed under the tenant keyring; the laptop redeems it.
    The hub's operator approves another request in the hub's database: the laptop shows it
    refused and does not redeem it."""
    from truthvault.kernel import ActionForbidden, Actor, Risk

    hub = hub2
    _tenant(hub, "family", "local_first")
    laptop = _enroll(hub, tmp_path, "family", "laptop")
    phone = _enroll(hub, tmp_path, "family", "phone")
    laptop.sync()  # the keyring, wrapped to the phone
    phone.sync()

    def ai(vault: Vault) -> Actor:
        return Actor("ai-local:llama3", vault.device_id, vault.tenant_id)

    with Vault.open(laptop.home) as vault:
        honest, forged = (
            vault.broker.ask_approval(
                actor=ai(vault),
                action="notes.delete",
                risk=Risk.DESTRUCTIVE,
                kind="approve",
                input_hash=h,
                targets=(),
                reason="an AI deletes a note you wrote",
            )
            for h in ("h1", "h2")
        )
    assert laptop.sync()["approvals"]["sent"] == 2
    assert {r["id"] for r in phone.json("approvals")} == {honest, forged}  # fetched from the hub
    phone.run("approve", honest)
    [[seal]] = _hub_sql(hub, "SELECT seal FROM broker_requests WHERE id = ?", (honest,))
    with Vault.open(phone.home) as vault:
        ring = vault.replica.keyring()
    assert ring is not None and seal.startswith(f"{ring.current}:")
    _hub_sql(
        hub,
        "UPDATE broker_requests SET status = 'approved', decided_by = 'user:cli', decided_at = 1e9, "
        "seq = (SELECT max(seq) + 1 FROM broker_requests) WHERE id = ?",
        (forged,),
    )
    laptop.sync()
    shown = {r["id"]: r for r in laptop.json("approvals", "--all")}
    assert shown[honest]["status"] == "approved" and shown[forged]["status"] == "denied"
    with Vault.open(laptop.home) as vault:
        assert (
            vault.broker.redeem(honest, actor=ai(vault), action="notes.delete", input_hash="h1") == "user:cli"
        )
        with pytest.raises(ActionForbidden, match="no device of yours"):
            vault.broker.redeem(forged, actor=ai(vault), action="notes.delete", input_hash="h2")
