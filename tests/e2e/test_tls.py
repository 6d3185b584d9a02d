"""The hub over HTTPS with real processes: pinning at enrolment, and a changed certificate refused."""

from __future__ import annotations

import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from truthvault.sync import cert_fingerprint, pinned_context

from ..certs import write_cert
from .conftest import Cli, HubProc


class TlsHub(HubProc):
    """A hub process serving HTTPS with the certificate it is given at start."""

    def __init__(self, db: str, home: Path) -> None:
        super().__init__(db, home)
        self.url = f"https://127.0.0.1:{self.port}"
        self.cert: Path | None = None

    def start_tls(self, cert: Path, key: Path) -> None:
        self.cert = cert
        args = ["hub", "serve", "--db", self.db, "--port", str(self.port)]
        args += ["--tls-cert", str(cert), "--tls-key", str(key)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "truthvault", *args],
                env=self.admin.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            self._wait_ready(pinned_context(cert.read_text(), "127.0.0.1"))
        except BaseException:
            self.stop(kill=True)  # a hub that never got ready must not outlive the test
            raise

    def _wait_ready(self, trust: ssl.SSLContext) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=trust).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("hub did not start in 30 s")


@pytest.fixture
def tls_hub(tmp_path: Path) -> Iterator[tuple[TlsHub, str]]:
    """A hub over HTTPS on SQLite (TLS sits in uvicorn, in front of either backend) and a code."""
    proc = TlsHub(str(tmp_path / "hub.db"), tmp_path / "hub-home")
    code = proc.admin.json("hub", "tenant", "add", "family")["enrol_code"]
    proc.start_tls(*write_cert(tmp_path / "certs", "first"))
    yield proc, code
    proc.stop()


def _fingerprint(path: Path) -> str:
    return cert_fingerprint(path.read_text())


def test_pinned_enrol_sync_and_a_changed_certificate(tls_hub: tuple[TlsHub, str], tmp_path: Path) -> None:
    hub, code = tls_hub
    assert hub.cert is not None
    first = _fingerprint(hub.cert)
    startup = hub.log.read_text()
    assert f"https://127.0.0.1:{hub.port} (loopback only)" in startup and first in startup

    laptop = Cli(tmp_path / "laptop")
    wrong = first[:-2] + ("00" if not first.endswith("00") else "11")
    refused = laptop.run("enroll", "--hub", hub.url, "--code", code, "--pin", wrong, check=False)
    assert refused.returncode != 0 and first in refused.stderr and wrong in refused.stderr
    assert not (tmp_path / "laptop" / "vault.db").exists()  # refused before anything was written

    out = laptop.run(
        "enroll", "--hub", hub.url, "--code", code, "--pin", first.lower().replace(":", "")
    ).stdout
    assert f"hub certificate SHA256 {first} (matches --pin)" in out
    laptop.run("note", "add", "over tls")
    assert laptop.sync()["outcomes"] == {"applied": 1}
    laptop.run("note", "add", "still queued")

    # The hub comes back with another certificate (same name, same address): the pin refuses it.
    hub.stop()
    second_cert, second_key = write_cert(tmp_path / "certs", "second")
    hub.start_tls(second_cert, second_key)
    vault = tmp_path / "laptop" / "vault.db"
    before = _dump(vault)
    failed = laptop.run("sync", "now", check=False)
    assert failed.returncode != 0
    first_line, *rest = failed.stderr.strip().splitlines()
    assert first_line.startswith("error: the hub's certificate changed") and len(rest) <= 1
    assert first in first_line and _fingerprint(second_cert) in first_line
    assert "truthvault hub repin" in failed.stderr  # the hint names the way out
    assert _dump(vault) == before

    # The operator says which certificate is the new one: the device re-pins to it, and only it.
    second = _fingerprint(second_cert)
    refused = laptop.run("hub", "repin", first, "--yes", check=False)
    assert refused.returncode != 0 and second in refused.stderr and first in refused.stderr
    unconfirmed = laptop.run("hub", "repin", second, check=False)  # no terminal to ask at
    assert unconfirmed.returncode != 0 and "--yes" in unconfirmed.stderr
    declined = laptop.run_at_terminal("hub", "repin", second, answers="n\n")
    assert declined.returncode != 0 and "not confirmed" in declined.stderr
    assert _dump(vault) == before
    agreed = laptop.run_at_terminal("hub", "repin", second.replace(":", "").lower(), answers="y\n")
    assert agreed.returncode == 0, agreed.stderr
    assert "trust this certificate" in agreed.stdout and f"pinned SHA256 {second}" in agreed.stdout
    assert laptop.sync()["outcomes"] == {"applied": 1}  # the note queued before the change
    again = laptop.run("hub", "repin", second, "--yes").stdout
    assert "already pinned" in again


def test_token_device_pins_with_init(tls_hub: tuple[TlsHub, str], tmp_path: Path) -> None:
    hub, _ = tls_hub
    assert hub.cert is not None
    token = hub.device("family", "ci")["token"]
    ci = Cli(tmp_path / "ci")
    args = ("init", "--hub", hub.url, "--token", "-", "--pin")
    refused = ci.run(*args, "AB" * 32, stdin=token + "\n", check=False)
    assert refused.returncode != 0 and "not the pinned" in refused.stderr
    ci.run(*args, _fingerprint(hub.cert), stdin=token + "\n")
    ci.run("note", "add", "from ci")
    assert ci.sync()["outcomes"] == {"applied": 1}


def test_plain_http_hub_says_loopback_only(hub: HubProc) -> None:
    startup = hub.log.read_text()
    assert f"http://127.0.0.1:{hub.port} (loopback only)" in startup
    assert "certificate" not in startup


def _dump(vault: Path) -> list[tuple[object, ...]]:
    """Everything in a vault's tables, to compare before and after."""
    with closing(sqlite3.connect(vault)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [
            (t, *row)
            for t in sorted(tables)
            if not t.startswith(("sqlite_", "search"))
            for row in conn.execute(f'SELECT * FROM "{t}" ORDER BY 1')
        ]
