"""TLS for a device: the hub certificate's fingerprint, fetching it, and a context that trusts it only."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
from urllib.parse import urlsplit

from .. import errors

__all__ = [
    "cert_fingerprint",
    "fetch_certificate",
    "normalize_fingerprint",
    "pin_certificate",
    "pinned_context",
    "presented_fingerprint",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def cert_fingerprint(pem: str) -> str:
    """The certificate's SHA-256 fingerprint as ``AB:CD:...`` (what ``openssl x509 -fingerprint`` shows)."""
    try:
        der = ssl.PEM_cert_to_DER_cert(pem)
    except ValueError:
        raise errors.InvalidInput("not a PEM certificate") from None
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as given (any case, with or without colons or a ``sha256`` prefix), as ``AB:CD:...``."""
    cleaned = text.strip().lower()
    for prefix in ("sha256 fingerprint=", "sha256:", "sha256="):
        cleaned = cleaned.removeprefix(prefix)
    cleaned = cleaned.replace(":", "").replace(" ", "")
    if not _HEX64.fullmatch(cleaned):
        raise errors.InvalidInput(
            f"{text!r} is not a SHA-256 fingerprint", hint="64 hex digits, colons allowed (AB:CD:...)"
        )
    upper = cleaned.upper()
    return ":".join(upper[i : i + 2] for i in range(0, 64, 2))


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise errors.InvalidInput(
            f"{url!r} is not an https:// URL", hint="pinning needs a hub served with TLS"
        )
    return parts.hostname, parts.port or 443


def fetch_certificate(url: str, timeout: float = 10.0) -> str:
    """The certificate (PEM) the https hub at ``url`` presents, not verified: the caller pins or compares it."""
    host, port = _host_port(url)
    try:
        return ssl.get_server_certificate((host, port), timeout=timeout)
    except (OSError, ssl.SSLError) as exc:
        raise errors.HubUnavailable(
            f"cannot fetch the certificate of the hub at {url} ({exc})",
            hint="is it running with --tls-cert and --tls-key? check the URL",
        ) from None


def pin_certificate(url: str, expected: str | None, timeout: float = 10.0) -> tuple[str, str]:
    """Fetch the hub's certificate and, if ``expected`` is given, refuse it unless that is its fingerprint.

    Returns the PEM and its fingerprint.
    """
    want = normalize_fingerprint(expected) if expected else None
    pem = fetch_certificate(url, timeout)
    got = cert_fingerprint(pem)
    if want is not None and got != want:
        raise errors.CertificateChanged(
            f"the hub at {url} presents certificate SHA256 {got}, not the pinned {want}",
            hint="check the fingerprint with the hub's operator (hub serve prints it)",
        )
    return pem, got


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def pinned_context(pem: str, host: str) -> ssl.SSLContext:
    """A client context whose only trust anchor is the pinned certificate ``pem`` (for the hub at ``host``)."""
    # imported here: it costs every sync command's start-up, and only a TLS hub needs it
    from cryptography import x509

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cadata=pem)
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (ssl.SSLError, ValueError):
        raise errors.InvalidInput("the pinned hub certificate is not a PEM certificate") from None
    # The pinned certificate is the anchor even when a CA issued it: OpenSSL then stops the chain
    # at the leaf instead of looking for the CA, which this context does not trust.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    self_signed = cert.issuer == cert.subject
    if self_signed and _is_ip(host):
        # A self-signed certificate of a LAN hub reached by its address often names another address
        # (or none): the pin already demands this exact certificate, so the name adds no protection.
        # Names and CA-issued certificates keep the check, as their issuer meant them to be used.
        ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def presented_fingerprint(url: str, timeout: float = 5.0) -> str | None:
    """The fingerprint of what the hub at ``url`` presents now, or None if it cannot be fetched."""
    try:
        return cert_fingerprint(fetch_certificate(url, timeout))
    except errors.TruthvaultError:
        return None
