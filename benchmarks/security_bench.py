"""The cost of signing and end-to-end encryption: push and pull items/s through a real hub.

A local-first tenant (every request signed with Ed25519, every payload sealed with AES-256-GCM
on the way out and opened on the way in) beside a cloud-first one (bearer token, plaintext),
on the same data: batches of 1,000 items with ~300-byte payloads, one hub process on SQLite.
Two measurements of each:

- device sync: what a user waits for. Device A's vault pushes its queue (`Syncer.push`, as
  `truthvault sync push` does) and device B's vault pulls and applies everything
  (`Syncer.pull`); reading the queue, acknowledging and applying count on both sides alike.
- wire only: the device's HubClient alone, pushing pre-built batches and pulling pages
  (fetched ahead, as a device does) without a vault, where nothing but encoding and
  decoding sits beside the crypto, so its share shows at its largest.

    .venv/bin/python benchmarks/security_bench.py             # 50,000 items per tenant
    .venv/bin/python benchmarks/security_bench.py --items 10000
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _figures import Figures
from sync_bench import make_batches, serving  # the same data and hub process as sync_bench

from truthvault.crypto import DeviceKeys, Keyring
from truthvault.hub.store import open_store
from truthvault.model import encode
from truthvault.sync import HubClient, Syncer, enroll
from truthvault.sync._e2e import open_page, seal_batch
from truthvault.sync._transport import pages
from truthvault.vault import Vault

BATCH = 1000
#: each side is measured this many times, alternating which goes first, after one warm-up round
#: (a cold hub process and a cold page cache would otherwise count against whichever ran first)
ROUNDS = 3
TV = [sys.executable, "-m", "truthvault"]
SIGNED, PLAIN = "local_first (signed + AES-256-GCM)", "cloud_first (bearer, plaintext)"
#: how each round's tenants are named: one per measurement and side, so each pulls what it pushed
MEASUREMENTS = ("device", "wire")


@contextmanager
def hub(home: Path, rounds: int = ROUNDS) -> Iterator[tuple[str, dict[str, str]]]:
    """A hub process on SQLite with a local-first and a cloud-first tenant per round and
    measurement, two enrolment codes each (devices a and b); yields its URL and the codes."""
    db = str(home / "hub.db")
    env = {**os.environ, "TRUTHVAULT_HOME": str(home), "TRUTHVAULT_HUB_DB": db}
    # the tenants are made in this process, as the store's own calls: 'hub tenant add' runs
    # the tenant.provision workflow, a process and a workflow engine each (16 of them took 15 s)
    store = open_store(db, create=True)
    codes = {}
    try:
        for n in range(rounds + 1):
            for what in MEASUREMENTS:
                for mode in ("local_first", "cloud_first"):
                    name = f"{mode}-{what}-{n}"
                    store.add_tenant(name, mode)
                    codes[name + "-a"] = store.create_enrol_code(name)
                    codes[name + "-b"] = store.create_enrol_code(name)
    finally:
        store.close()
    with serving(db, env, "--rate-limit", "0") as url:
        yield url, codes


def _client(url: str, keys: DeviceKeys, joined: dict[str, str], signed: bool) -> tuple[HubClient, str | None]:
    """The device's client, signing every request, or (the plaintext side) with a bearer access
    token, which it returns too."""
    signing = HubClient(url, keys=keys, device_id=joined["device_id"])
    if signed:
        return signing, None
    with signing:
        token = signing.access_token()["token"]
    return HubClient(url, token), token


def wire(url: str, code: str, items: int, signed: bool) -> tuple[float, float]:
    """(push items/s, pull items/s) of the HubClient alone, sealing and opening when ``signed``."""
    keys = DeviceKeys.generate()
    joined = enroll(url, code, "wire", keys)
    tenant = joined["tenant_id"]
    batches = make_batches(tenant, joined["device_id"], 0, items, 1)
    keyring = Keyring.new() if signed else None
    client, _ = _client(url, keys, joined, signed)
    with client:
        t0 = time.perf_counter()
        for batch in batches:
            client.push(seal_batch(batch, keyring, tenant) if keyring else batch)
        push_s = time.perf_counter() - t0
        pulled = 0
        t0 = time.perf_counter()
        for page, refused, _ in pages(client, 0, BATCH):
            assert not refused
            if keyring:
                page, failed = open_page(page, keyring, tenant)
                assert not failed
            pulled += len(page.items)
        pull_s = time.perf_counter() - t0
    assert pulled == items, (pulled, items)
    return items / push_s, items / pull_s


def _device(url: str, code: str, name: str, home: Path, signed: bool) -> tuple[Vault, Syncer]:
    """An enrolled device's vault and syncer, as `truthvault enroll` leaves them."""
    keys = DeviceKeys.generate()
    keys.save(home / f"{name}.key")
    joined = enroll(url, code, name, keys)
    client, token = _client(url, keys, joined, signed)
    vault = Vault.open(home / name, source="user:bench")
    vault.replica.join(
        hub_url=url,
        token=token,
        tenant_id=joined["tenant_id"],
        tenant_name=joined["tenant_name"],
        device_id=joined["device_id"],
        vault_mode=joined["vault_mode"],
        key_path=str(home / f"{name}.key") if signed else None,
    )
    return vault, Syncer(vault, client, device_keys=keys)


def device(url: str, codes: tuple[str, str], items: int, signed: bool, home: Path) -> tuple[float, float]:
    """(push items/s, pull items/s) of whole device syncs: A's vault pushes, B's vault pulls."""
    a_vault, a = _device(url, codes[0], "a", home, signed)
    b_vault, b = _device(url, codes[1], "b", home, signed)  # enrolled first: A shares the key with it
    lines = b"".join(
        encode(item) + b"\n" for batch in make_batches("any", "a", 0, items, 1) for item in batch.items
    )
    a_vault.import_jsonl(io.BytesIO(lines))
    t0 = time.perf_counter()
    pushed = a.push().pushed
    push_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pulled = b.pull().pulled
    pull_s = time.perf_counter() - t0
    assert pushed == pulled == items, (pushed, pulled, items)
    for v, s in ((a_vault, a), (b_vault, b)):
        s.client.close()
        v.close()
    return items / push_s, items / pull_s


def _round(url: str, codes: dict[str, str], n: int, items: int, home: Path) -> dict[str, tuple[float, ...]]:
    """One measurement of each side, in fresh tenants: (device push, device pull, wire push, wire pull)."""
    results: dict[str, tuple[float, ...]] = {}
    order = (SIGNED, PLAIN) if n % 2 else (PLAIN, SIGNED)
    for side in order:
        mode, signed = ("local_first", True) if side == SIGNED else ("cloud_first", False)
        name = f"{mode}-device-{n}"
        folder = home / f"{mode}-{n}"
        folder.mkdir()
        dev = device(url, (codes[name + "-a"], codes[name + "-b"]), items, signed, folder)
        results[side] = (*dev, *wire(url, codes[f"{mode}-wire-{n}-a"], items, signed))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="measurements of each side (best shown)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args()
    best: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, hub(Path(tmp), args.rounds) as (url, codes):
        warm = Path(tmp) / "warm-up"
        warm.mkdir()
        _round(url, codes, 0, min(args.items, 5 * BATCH), warm)  # not counted
        for n in range(1, args.rounds + 1):
            for side, figures in _round(url, codes, n, args.items, Path(tmp)).items():
                old = best.get(side, [0.0] * 4)
                best[side] = [max(a, b) for a, b in zip(old, figures, strict=True)]
    columns = ("device push", "device pull", "wire push", "wire pull")
    print(f"\n{'items/s':<36}" + "".join(f"{c:>13}" for c in columns))
    for side in (SIGNED, PLAIN):
        print(f"{side:<36}" + "".join(f"{v:>13,.0f}" for v in best[side]))
    figures = Figures()
    for side in (SIGNED, PLAIN):
        for column, value in zip(columns, best[side], strict=True):
            figures.add(f"{side}: {column} items/s", value, "/s", "higher")
    figures.write(args.json)
    cost = [1 - lf / cf for lf, cf in zip(best[SIGNED], best[PLAIN], strict=True)]
    print(f"{'cost of signing + encryption':<36}" + "".join(f"{c:>13.1%}" for c in cost))
    print(
        f"({args.items:,} items per tenant, batches of {BATCH:,}, one hub process on SQLite, "
        f"best of {args.rounds}; goal: under 30%)"
    )


if __name__ == "__main__":
    main()
