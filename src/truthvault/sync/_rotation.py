"""``keys.rotate`` as a durable, compensated workflow: a new tenant data key, wrapped for every
device and for the recovery copy, then used here.

The steps (each leaves its ledger row, a ``WORKFLOW_STEP`` event and an audit entry):

1. ``refresh``: take in the newest keyring at the hub (a rotation builds on every key there is).
2. ``prepare``: make the new key and keep it here, **not yet current** (in the step's own
   transaction: a kill cannot make two).
3. ``share``: wrap the keyring, the new key current, for every device of the tenant.
   Compensation: wrap it again with the previous key current, for every device whose copy
   still has the new key current (one rotated on top of it since: its rotation stands). A failed
   attempt of the share undoes itself the same way (a step that fails for good is not
   compensated, and the hub may have taken a share whose answer was lost). The new key
   stays in every keyring that had it, so nothing a device sealed with it meanwhile becomes
   unreadable, and each device goes back to the previous key at its next sync.
4. ``recovery``: re-wrap the recovery copy with the passphrase (when the tenant has one), once
   the copy there opens with it (a mistyped one fails the step: the rotation is undone).
5. ``adopt``: make the new key current here.

The recovery passphrase never enters the workflow's input, output or database: it is held in
this process's memory, by workflow id, for the workflow's life. A rotation resumed in another
process (the one that started it was killed) finds no passphrase at step 4: that step fails for
good and the rotation is compensated. The user runs ``truthvault keys rotate`` again.

Why compensate rather than roll forward: until step 5 this device still seals with the previous
key, and every device can read both keys after step 3 or its compensation. Undoing is therefore
always safe. Rolling forward would need the passphrase again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ..crypto import Keyring
from ..errors import ConflictState, NotFound
from ..kernel import Actor, Retry, Saga, Step, StepContext, WorkflowEngine
from ..vault import WORKFLOWS_FILE, vault_engine
from ._connect import connect, key_exchange
from ._keys import WAITING_HINT, KeyExchange, open_recovery

if TYPE_CHECKING:
    from ..vault import Vault

__all__ = [
    "KeyRotation",
    "device_engine",
    "key_rotation_saga",
    "rotate_data_key",
    "start_rotation",
    "unfinished_rotations",
]

SAGA = "keys.rotate"
_NETWORK = Retry(attempts=4, first_s=1.0)
_held: dict[str, str] = {}
_held_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """A completed rotation: the workflow, the key now current, the one before it, how many
    devices it was wrapped for, and whether the recovery copy was re-wrapped."""

    workflow_id: str
    current: str
    previous: str
    devices: int
    recovery_rewrapped: bool


def device_engine(vault: Vault, *, transport: httpx.BaseTransport | None = None) -> WorkflowEngine:
    """The device's workflow engine: the vault's own sagas and those that reach its hub
    (``keys.rotate``); with it, a dead letter of a pulled change that did not open (kind
    ``event``) is retried too. ``transport`` lets tests reach an in-process hub."""
    from ._event_letters import KIND, reopen_unreadable

    vault.dead_letters.on_retry(KIND, reopen_unreadable(vault))
    return vault_engine(vault, (key_rotation_saga(vault, transport=transport),))


def _keyring_with(ring: Keyring, current: str) -> Keyring:
    return Keyring({kid: key for kid in ring.kids if (key := ring.key(kid))}, current)


def key_rotation_saga(vault: Vault, *, transport: httpx.BaseTransport | None = None) -> Saga:
    """The ``keys.rotate`` saga acting on ``vault`` (see the module)."""

    @contextmanager
    def exchange() -> Iterator[KeyExchange]:
        with connect(vault, transport=transport) as client:
            yield key_exchange(vault, client)

    def local() -> Keyring:
        ring = vault.replica.keyring()
        if ring is None:
            raise ConflictState("this device has no tenant key to rotate", hint=WAITING_HINT)
        return ring

    def refresh(ctx: StepContext) -> dict[str, Any]:
        with exchange() as keys:
            keys.refresh()
        return {"kid": local().current}

    def prepare(ctx: StepContext) -> dict[str, Any]:
        ring = local()
        rotated = _keyring_with(ring, ring.current)
        kid = rotated.rotate()
        vault.replica.set_keyring(_keyring_with(rotated, ring.current))  # held, not yet used
        return {"previous": ring.current, "kid": kid}

    def share(ctx: StepContext) -> dict[str, Any]:
        try:
            with exchange() as keys:
                return {
                    "devices": keys.share(
                        _keyring_with(local(), ctx.results["prepare"]["kid"]), everyone=True
                    )
                }
        except Exception:
            # A step that fails for good is not compensated (only those before it are), yet the
            # hub may have taken this share with its answer lost: a failed attempt undoes it (the
            # next one shares again), unless it was abandoned at its deadline for another.
            if ctx.attempt >= _NETWORK.attempts or not ctx.expired():
                with contextlib.suppress(Exception), exchange() as keys:
                    keys.share(
                        _keyring_with(local(), ctx.results["prepare"]["previous"]),
                        replacing=ctx.results["prepare"]["kid"],
                    )
            raise

    def unshare(ctx: StepContext) -> None:  # (a share's failed attempt does this too)
        prepared = ctx.results["prepare"]
        with exchange() as keys:
            # only the copies that still have this rotation's key current: a device that rotated
            # on top of it since keeps its own (and every device keeps this one's key)
            keys.share(_keyring_with(local(), prepared["previous"]), replacing=prepared["kid"])
        _forget(ctx.workflow_id)

    def recovery(ctx: StepContext) -> dict[str, Any]:
        if not ctx.input.get("recovery"):
            return {"rewrapped": False}
        with _held_lock:
            passphrase = _held.get(ctx.workflow_id)
        if passphrase is None:
            raise ConflictState(
                "the recovery passphrase was held only by the process that started this rotation, "
                "and that process stopped: the rotation is undone",
                hint="run 'truthvault keys rotate' again",
            )
        with exchange() as keys:
            # the copy there must open with it first: a mistyped passphrase would lock the copy
            # under one nobody knows (DecryptionFailed: the rotation is undone)
            kept = keys._call("GET", "/v1/keys/recovery")["blob"]
            if kept:
                open_recovery(kept, passphrase)
            keys.set_recovery(passphrase, _keyring_with(local(), ctx.results["prepare"]["kid"]))
        return {"rewrapped": True}

    def adopt(ctx: StepContext) -> dict[str, Any]:
        kid = ctx.results["prepare"]["kid"]
        vault.replica.set_keyring(_keyring_with(local(), kid))
        _forget(ctx.workflow_id)
        return {"current": kid}

    return Saga(
        SAGA,
        "1.0.0",
        (
            Step("refresh", refresh, retry=_NETWORK, transactional=False),
            Step("prepare", prepare),
            Step("share", share, unshare, retry=_NETWORK, transactional=False),
            Step("recovery", recovery, retry=_NETWORK, transactional=False),
            Step("adopt", adopt),
        ),
        summary="A new tenant data key, wrapped for every device and the recovery copy, then used here.",
    )


def _forget(workflow_id: str) -> None:
    with _held_lock:
        _held.pop(workflow_id, None)


def _runs_for(engine: WorkflowEngine, vault: Vault) -> bool:
    return engine.registry.get(SAGA) is not None and engine.database_url == (
        f"sqlite:///{vault.home / WORKFLOWS_FILE}"
    )


def start_rotation(vault: Vault, passphrase: str | None, actor: Actor) -> str:
    """Start ``keys.rotate`` on the engine running in this process (the ``keys.rotate`` action's
    handler); its workflow id. ``passphrase`` is held in memory only (see the module)."""
    if vault.vault_mode != "local_first":
        raise ConflictState(
            f"tenant {vault.tenant_name!r} is {vault.vault_mode}: its payloads are not end-to-end "
            "encrypted, so it has no data key to rotate"
        )
    engine = WorkflowEngine.running()
    if engine is None or not _runs_for(engine, vault):
        raise ConflictState(
            "keys.rotate runs as a workflow of this device, and its workflow engine is not running "
            "in this process",
            hint="use truthvault.sync.rotate_data_key(vault), or 'truthvault keys rotate'",
        )
    import uuid

    workflow_id = f"keys.rotate:{uuid.uuid4()}"
    if passphrase is not None:
        with _held_lock:
            _held[workflow_id] = passphrase
    who = {"source": actor.source, "device_id": actor.device_id, "tenant_id": actor.tenant_id}
    try:
        return engine.start(SAGA, {"recovery": passphrase is not None}, actor=who, workflow_id=workflow_id)
    except BaseException:
        _forget(workflow_id)
        raise


def rotate_data_key(
    vault: Vault,
    passphrase: str | None = None,
    *,
    source: str | None = None,
    approval: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> KeyRotation:
    """Rotate the tenant's data key through the governed ``keys.rotate`` action (policy,
    approval, audit), which starts the rotation workflow; wait for it to end. Uses the device's
    engine running in this process, or launches one for the call. ``passphrase``: the recovery
    passphrase, when the tenant has a recovery copy to re-wrap.

    ConflictState when a step failed for good: the rotation was then undone, and every device
    keeps the key it had."""
    from ._actions import device_kernel

    engine = WorkflowEngine.running()
    own = None
    if engine is None:
        own = engine = device_engine(vault, transport=transport).launch()
    try:
        started = device_kernel(vault).run(
            "keys.rotate", {"passphrase": passphrase}, actor=vault.actor(source), approval=approval
        )
        workflow_id = str(started.model_dump()["workflow_id"])
        try:
            outcome = engine.result(workflow_id)
        finally:
            _forget(workflow_id)
    finally:
        if own is not None:
            own.close()
    if outcome.get("status") != "completed":
        failed = outcome.get("failed") or {}
        raise ConflictState(
            f"the key rotation failed at its {failed.get('step')} step ({failed.get('error')}); "
            "it was undone: every device keeps the key it had",
            hint=f"'truthvault workflow show {workflow_id}' shows its steps; run 'truthvault keys rotate' again",
        )
    results = outcome["results"]
    return KeyRotation(
        workflow_id=workflow_id,
        current=str(results["adopt"]["current"]),
        previous=str(results["prepare"]["previous"]),
        devices=int(results["share"]["devices"]),
        recovery_rewrapped=bool(results["recovery"]["rewrapped"]),
    )


def unfinished_rotations(vault: Vault) -> list[str]:
    """The ids of this device's ``keys.rotate`` workflows that have not ended (their process was
    killed): each finishes, or is undone, when this device next launches its workflow engine.
    Until then the recovery copy may lack the new key."""
    engine = device_engine(vault)
    try:
        return [w.id for w in engine.list(prefix=f"{SAGA}:", limit=100) if w.status in ("running", "queued")]
    except NotFound:  # no workflow has run here
        return []
    finally:
        engine.close()
