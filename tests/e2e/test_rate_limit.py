"""A device the hub asks to slow down (429) waits as told and carries on; a hub that keeps
refusing is reported, not waited on forever."""

from __future__ import annotations

from pathlib import Path

import pytest

from truthvault.errors import RateLimited
from truthvault.sync import HubClient

from .conftest import HubProc

pytestmark = pytest.mark.e2e


@pytest.fixture
def slow_hub(tmp_path: Path) -> HubProc:
    # 2 requests a second, bursts of 4: the fifth request in a row is refused with 429.
    proc = HubProc(str(tmp_path / "hub.db"), tmp_path / "hub-home", "--rate-limit", "2/s")
    proc.admin.run("hub", "tenant", "add", "family", "--mode", "cloud_first")
    return proc


def test_a_rate_limited_client_waits_and_every_request_lands(slow_hub: HubProc) -> None:
    token = slow_hub.device("family", "laptop")["token"]
    slow_hub.start()
    try:
        with HubClient(slow_hub.url, token) as client:
            assert [client.whoami()["device_name"] for _ in range(8)] == ["laptop"] * 8
            client.RATE_LIMIT_PATIENCE_S = 0  # now it may not wait at all
            with pytest.raises(RateLimited) as refused:
                for _ in range(8):
                    client.whoami()
        assert refused.value.retry_after_s > 0
    finally:
        slow_hub.stop()
    # The hub did refuse the first run: each refusal is recorded (once a minute per device).
    events = slow_hub.admin.json("hub", "security-events")
    assert "AUTH_RATE_LIMITED" in {e["type"] for e in events}
