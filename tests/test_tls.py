"""The device's TLS helpers: certificate fingerprints and the context that trusts the pinned certificate only."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from truthvault.errors import InvalidInput
from truthvault.sync import cert_fingerprint, normalize_fingerprint, pinned_context

from .certs import make_cert, pem, write_cert


def _handshake(client: ssl.SSLContext, hostname: str, cert_file: Path, key_file: Path) -> None:
    """A TLS handshake in memory between ``client`` and a server presenting ``cert_file``."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, end, outbox, peer_in in (("c", c, c_out, s_in), ("s", s, s_out, c_in)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(outbox.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_fingerprint_is_the_sha256_of_the_der_certificate() -> None:
    cert, _ = make_cert()
    expected = cert.fingerprint(hashes.SHA256()).hex().upper()
    got = cert_fingerprint(pem(cert))
    assert got.replace(":", "") == expected and len(got) == 95
    with pytest.raises(InvalidInput):
        cert_fingerprint("not a certificate")


@pytest.mark.parametrize(
    "given",
    ["{c}", "{c_lower}", "{bare}", "SHA256:{c}", "sha256 Fingerprint={c}", "  {bare_lower}\n"],
)
def test_normalize_fingerprint_accepts_the_usual_spellings(given: str) -> None:
    c = cert_fingerprint(pem(make_cert()[0]))
    bare = c.replace(":", "")
    text = given.format(c=c, c_lower=c.lower(), bare=bare, bare_lower=bare.lower())
    assert normalize_fingerprint(text) == c


@pytest.mark.parametrize("bad", ["", "AB:CD", "zz" * 32, "AB" * 33])
def test_normalize_fingerprint_refuses_anything_else(bad: str) -> None:
    with pytest.raises(InvalidInput, match="not a SHA-256 fingerprint"):
        normalize_fingerprint(bad)


def test_pinned_self_signed_certificate_is_trusted_and_no_other(tmp_path: Path) -> None:
    cert_file, key_file = write_cert(tmp_path, "hub")
    other_cert, other_key = write_cert(tmp_path, "other")
    ctx = pinned_context(cert_file.read_text(), "127.0.0.1")
    _handshake(ctx, "127.0.0.1", cert_file, key_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ctx, "127.0.0.1", other_cert, other_key)


def test_hostname_check_is_relaxed_only_for_a_self_signed_cert_at_an_ip(tmp_path: Path) -> None:
    # A LAN hub's self-signed certificate that names another address still works when pinned.
    cert_file, key_file = write_cert(tmp_path, "lan", names=("hub.lan",))
    at_ip = pinned_context(cert_file.read_text(), "192.168.1.20")
    assert at_ip.check_hostname is False
    _handshake(at_ip, "192.168.1.20", cert_file, key_file)
    by_name = pinned_context(cert_file.read_text(), "other.lan")
    assert by_name.check_hostname is True
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match"):
        _handshake(by_name, "other.lan", cert_file, key_file)


def test_a_pinned_ca_issued_leaf_is_trusted_without_its_ca(tmp_path: Path) -> None:
    ca = make_cert((), ca=True)
    cert_file, key_file = write_cert(tmp_path, "leaf", ("localhost",), issuer=ca)
    sibling_cert, sibling_key = write_cert(tmp_path, "sibling", ("localhost",), issuer=ca)
    ctx = pinned_context(cert_file.read_text(), "localhost")
    assert ctx.check_hostname is True  # a CA-issued certificate keeps the name check
    _handshake(ctx, "localhost", cert_file, key_file)
    # Trusting the leaf is not trusting its CA: another leaf of the same CA is refused.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ctx, "localhost", sibling_cert, sibling_key)
