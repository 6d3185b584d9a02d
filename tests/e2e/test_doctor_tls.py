"""``doctor`` against a hub over HTTPS: the pinned certificate checks out; once the hub presents
another one, the TLS check fails naming it and says how to re-pin."""

from __future__ import annotations

import json
from pathlib import Path

from truthvault.sync import cert_fingerprint

from ..certs import write_cert
from .conftest import Cli
from .test_tls import TlsHub, tls_hub  # noqa: F401 (the fixture)


def test_doctor_checks_the_pinned_certificate(tls_hub: tuple[TlsHub, str], tmp_path: Path) -> None:  # noqa: F811
    hub, code = tls_hub
    assert hub.cert is not None
    first = cert_fingerprint(hub.cert.read_text())
    laptop = Cli(tmp_path / "laptop")
    laptop.run("enroll", "--hub", hub.url, "--code", code, "--pin", first)
    laptop.run("sync", "now")
    ok = {c["name"]: c for c in json.loads(laptop.run("doctor", "--json").stdout)}
    assert ok["hub.tls"]["status"] == "ok" and first[:23] in ok["hub.tls"]["detail"]
    assert ok["hub.reachable"]["status"] == "ok"

    hub.stop()
    second_cert, second_key = write_cert(tmp_path / "certs", "second")
    hub.start_tls(second_cert, second_key)
    result = laptop.run("doctor", "--json", check=False)
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["hub.tls"]["status"] == "fail"
    assert cert_fingerprint(second_cert.read_text())[:23] in checks["hub.tls"]["detail"]
    assert "truthvault hub repin" in checks["hub.tls"]["fix"]
    assert checks["hub.reachable"]["status"] == "fail"
