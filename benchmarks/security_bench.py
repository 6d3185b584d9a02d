"""The cost of signing and end-to-end encryption: push and pull items/s through a real hub.

A local-first tenant (every request signed with Ed25519, every payload sealed with AES-256-GCM
on the way out and opened on the way in) beside a cloud-first one (bearer token, plaintext),
on the same data: batches of 1,000 items with ~300-byte payloads, one hub process on SQLite.
Both sides go through the device's HubClient, so encoding and decoding are counted alike.

    .venv/bin/python benchmarks/security_bench.py             # 50,000 items per tenant
    .venv/bin/python benchmarks/security_bench.py --items 10000
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
from sync_bench import serving  # the same hub process, started the same way

from truthvault.clock import HybridClock
from truthvault.crypto import DeviceKeys, Keyring
from truthvault.model import PushRequest, SyncItem, encode
from truthvault.sync import HubClient, enroll
from truthvault.sync._transport import pages
from truthvault.sync._e2e import open_page, seal_batch

BATCH = 1000
#: each side is measured this many times, alternating which goes first, after one warm-up round
#: (a cold hub process and a cold page cache would otherwise count against whichever ran first)
ROUNDS = 3
TV = [sys.executable, "-m", "truthvault"]


def _batches(tenant: str, device: str, count: int) -> list[PushRequest]:
    clock, out, mutation = HybridClock(), [], 1
    for start in range(0, count, BATCH):
        items = []
        for n in range(start, min(start + BATCH, count)):
            text = f"note {n}: " + secrets.token_hex(120)  # ~300 bytes of JSON, like a short note
            payload = msgspec.Raw(encode({"title": f"note {n}", "text": text, "tags": ["bench", "sync"]}))
            items.append(
                SyncItem(
                    entity_type="note",
                    entity_id=f"e{n:09d}",
                    tenant_id=tenant,
                    truth_level=1,
                    origin_source="user:bench",
                    last_modified_at=clock.now(),
                    device_id=device,
                    payload=payload,
                    mutation=mutation,
                )
            )
            mutation += 1
        out.append(PushRequest(items=items))
    return out


@contextmanager
def hub(home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A hub process on SQLite with a local-first and a cloud-first tenant; yields its URL and codes."""
    db = str(home / "hub.db")
    env = {**os.environ, "TRUTHVAULT_HOME": str(home), "TRUTHVAULT_HUB_DB": db}

    def run(*args: str) -> str:
        return subprocess.run([*TV, *args], env=env, check=True, capture_output=True, text=True).stdout

    codes = {
        f"{mode}-{n}": msgspec.json.decode(
            run("hub", "tenant", "add", f"{mode}-{n}", "--mode", mode, "--json")
        )["enrol_code"]
        for n in range(ROUNDS + 1)
        for mode in ("local_first", "cloud_first")
    }
    with serving(db, env, "--rate-limit", "0") as url:
        yield url, codes


def measure(
    client: HubClient, batches: list[PushRequest], keyring: Keyring | None, tenant: str
) -> tuple[float, float]:
    """(push items/s, pull items/s) for one device, sealing and opening when given a keyring."""
    count = sum(len(b.items) for b in batches)
    t0 = time.perf_counter()
    for batch in batches:
        client.push(seal_batch(batch, keyring, tenant) if keyring else batch)
    push_s = time.perf_counter() - t0
    pulled = 0
    t0 = time.perf_counter()
    # pages() is how a device pulls: the next page is fetched while this one is opened
    for page in pages(client, 0, BATCH):
        if keyring:
            page, failed = open_page(page, keyring, tenant)
            assert not failed
        pulled += len(page.items)
    pull_s = time.perf_counter() - t0
    assert pulled == count, (pulled, count)
    return count / push_s, count / pull_s


def _round(url: str, codes: dict[str, str], n: int, items: int) -> dict[str, tuple[float, float]]:
    """One measurement of each side, in fresh tenants (so both pull exactly what they pushed)."""
    results: dict[str, tuple[float, float]] = {}
    order = (SIGNED, PLAIN) if n % 2 else (PLAIN, SIGNED)
    for side in order:
        keys = DeviceKeys.generate()
        mode = "local_first" if side == SIGNED else "cloud_first"
        joined = enroll(url, codes[f"{mode}-{n}"], f"bench-{n}", keys)
        batches = _batches(joined["tenant_id"], joined["device_id"], items)
        if side == SIGNED:
            with HubClient(url, keys=keys, device_id=joined["device_id"]) as client:
                results[side] = measure(client, batches, Keyring.new(), joined["tenant_id"])
            continue
        # The plaintext side authenticates with a bearer access token (taken with one signed request).
        with HubClient(url, keys=keys, device_id=joined["device_id"]) as client:
            token = client.access_token()["token"]
        with HubClient(url, token) as client:
            results[side] = measure(client, batches, None, joined["tenant_id"])
    return results


SIGNED, PLAIN = "local_first (signed + AES-256-GCM)", "cloud_first (bearer, plaintext)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    args = parser.parse_args()
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, hub(Path(tmp)) as (url, codes):
        _round(url, codes, 0, min(args.items, 5 * BATCH))  # warm-up, not counted
        for n in range(1, ROUNDS + 1):
            for side, (push, pull) in _round(url, codes, n, args.items).items():
                old = best.get(side, (0.0, 0.0))
                best[side] = (max(old[0], push), max(old[1], pull))
    print(f"\n{'tenant':<36} {'push items/s':>13} {'pull items/s':>13}")
    for side in (SIGNED, PLAIN):
        print(f"{side:<36} {best[side][0]:>13,.0f} {best[side][1]:>13,.0f}")
    (lf_push, lf_pull), (cf_push, cf_pull) = best[SIGNED], best[PLAIN]
    print(
        f"{'cost of signing + encryption':<36} {1 - lf_push / cf_push:>13.1%} {1 - lf_pull / cf_pull:>13.1%}"
    )
    print(
        f"({args.items:,} items per tenant, batches of {BATCH:,}, one hub process on SQLite, "
        f"best of {ROUNDS}; goal: under 30%)"
    )


if __name__ == "__main__":
    main()
