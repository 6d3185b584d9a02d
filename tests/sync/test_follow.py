"""Syncer.follow: an iterator over the live pull, through a hub served over HTTP."""

from __future__ import annotations

import threading
from pathlib import Path

from truthvault import Hub, Vault, connect, join_with_token, syncer_for
from truthvault.hub import open_store


def test_follow_yields_a_change_made_while_it_waits(hub_url: str, tmp_path: Path) -> None:
    with Hub(open_store(hub_url)) as hub, hub.server(port=0) as server:
        hub.store.add_tenant("t", "cloud_first")
        tokens = [hub.store.add_device("t", name)[1] for name in ("laptop", "phone")]
        with (
            Vault.open(tmp_path / "laptop", source="user:test") as laptop,
            Vault.open(tmp_path / "phone", source="user:test") as phone,
        ):
            join_with_token(laptop, server.url, tokens[0])
            join_with_token(phone, server.url, tokens[1])
            following = threading.Event()

            def write_later() -> None:
                # the phone is in its long poll by now, or about to be: either way the change
                # must reach it through follow()
                following.wait(30)
                laptop_item = laptop.put("note", {"text": "made while the phone waits"})
                with connect(laptop) as client:
                    syncer_for(laptop, client).push()
                written.append(laptop_item.item.entity_id)

            written: list[str] = []
            writer = threading.Thread(target=write_later)
            writer.start()
            seen = []
            rounds = 0

            def done() -> bool:
                nonlocal rounds
                rounds += 1
                following.set()
                return bool(seen) or rounds > 20

            with connect(phone) as client:
                for item in syncer_for(phone, client).follow(wait=2, until=done):
                    seen.append(item)
            writer.join(30)
            assert [item.data()["text"] for item in seen] == ["made while the phone waits"]
            assert seen[0].entity_id == written[0]
            # what follow yielded is in the vault already
            assert phone.get(written[0]).data()["text"] == "made while the phone waits"
