"""A hub URL is checked when it is given, not when it first fails to connect."""

from __future__ import annotations

import pytest

from truthvault.errors import InvalidInput
from truthvault.sync import HubClient


@pytest.mark.parametrize("url", ["127.0.0.1:8787", "hub.lan", "ftp://hub.lan", "localhost:8787/"])
def test_a_hub_url_without_http_or_https_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="needs http:// or https://") as refused:
        HubClient(url, "token")
    assert refused.value.hint and refused.value.hint.startswith("e.g. http://")


def test_a_hub_url_needs_a_host_and_loses_its_trailing_slash() -> None:
    with pytest.raises(InvalidInput, match="names no host"):
        HubClient("http://", "token")
    with HubClient(" HTTPS://hub.lan:9443/ ", "token") as client:
        assert client.url == "HTTPS://hub.lan:9443"
