"""The hub as a library: ``Hub.open``, ``hub.app()`` and a hub served in this process, reached
over real HTTP (both backends)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import truthvault.hub
from truthvault.errors import InvalidInput, NotFound
from truthvault.hub import Hub, HubServer, HubSettings
from truthvault.model import PushRequest, SyncItem, encode

from ..certs import write_cert


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _note(tenant_id: str, device_id: str) -> SyncItem:
    return SyncItem(
        entity_type="note",
        entity_id="n1",
        tenant_id=tenant_id,
        truth_level=1,
        origin_source="user:test",
        last_modified_at="2026-11-22T01:36:48.123Z-0000",
        device_id=device_id,
        mutation=1,
    )


def test_the_hub_package_exports_what_it_names() -> None:
    assert set(truthvault.hub.__all__) == {
        "Device",
        "DeviceContext",
        "Event",
        "Hub",
        "HubServer",
        "HubSettings",
        "HubStore",
        "Limits",
        "Tenant",
        "create_app",
        "open_store",
        # the hub's kernel actions
        "HUB_ACTIONS",
        "HubScope",
        "hub_kernel",
        "run_as_admin",
        # offline governance: what devices report, and each one's risk
        "DeviceReport",
        "DeviceRisk",
        "device_risks",
        # its workflows and dead letters
        "hub_engine",
        "provision_tenant",
        "run_workflows",
        "decide_dead_letter",
    }
    for name in truthvault.hub.__all__:
        assert getattr(truthvault.hub, name) is not None
    with pytest.raises(AttributeError):
        truthvault.hub.NoSuchThing  # noqa: B018


def test_a_hub_served_in_process_syncs_over_http(hub_url: str) -> None:
    with pytest.raises(NotFound):
        Hub.open(hub_url)  # no hub there yet, and none is made without create
    port = _free_port()
    with Hub.open(hub_url, create=True, settings=HubSettings(rate_per_s=0)) as hub:
        tenant = hub.store.add_tenant("family", "cloud_first")
        device, token = hub.store.add_device("family", "laptop")
        with hub.server(port=port) as server:
            assert server.url == f"http://127.0.0.1:{port}" and server.loopback
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
                assert client.get("/healthz").json()["status"] == "ok"
                body = encode(PushRequest(items=[_note(tenant.id, device.id)]))
                pushed = client.post("/v1/sync/push", content=body)
                assert pushed.status_code == 200, pushed.text
                assert pushed.json()["results"][0]["outcome"] == "applied"
                page = client.get("/v1/sync/pull", params={"since": 0}).json()
                assert [item["entity_id"] for item in page["items"]] == ["n1"]
                assert page["items"][0]["seq"] == 1 and "mutation" not in page["items"][0]
        # stopped: the port is free again
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    with Hub.open(hub_url) as again:  # what it took is in its database
        assert again.store.head(tenant.id) == 1


def test_the_app_can_be_served_by_any_asgi_server(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    with Hub.open(str(tmp_path / "hub.db"), create=True) as hub, TestClient(hub.app()) as client:
        assert client.get("/healthz").json()["backend"] == "sqlite"


def test_a_server_refuses_an_address_in_use_and_bad_tls_files(tmp_path: Path) -> None:
    with Hub.open(str(tmp_path / "hub.db"), create=True) as hub:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(InvalidInput, match=f"cannot listen on 127.0.0.1:{port}"):
                hub.server(port=port)
        cert = tmp_path / "cert.pem"
        cert.write_text("not a certificate")
        with pytest.raises(InvalidInput, match=r"cannot use .* for TLS"):
            hub.server(port=_free_port(), tls=(str(cert), str(cert)))


def test_a_hub_serves_https_with_the_certificate_it_announces(tmp_path: Path) -> None:
    cert, key = write_cert(tmp_path, "hub")
    _, other_key = write_cert(tmp_path, "other")
    with pytest.raises(InvalidInput, match="the key does not match the certificate"):
        HubServer.check_tls(str(cert), str(other_key))
    digest = x509.load_pem_x509_certificate(cert.read_bytes()).fingerprint(hashes.SHA256())
    expected = ":".join(f"{b:02X}" for b in digest)
    assert HubServer.check_tls(str(cert), str(key)) == expected
    tls = (str(cert), str(key))
    with (
        Hub.open(str(tmp_path / "hub.db"), create=True) as hub,
        hub.server(port=_free_port(), tls=tls) as server,
    ):
        assert server.url.startswith("https://") and server.fingerprint == expected
        answer = httpx.get(f"{server.url}/healthz", verify=False, timeout=10)
        assert answer.json()["status"] == "ok"
