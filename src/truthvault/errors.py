"""The truthvault exception tree: every error has a stable ``code`` and an optional hint.

TruthvaultError
 +-- InvalidInput          (bad input: 422 at HTTP, one line at the CLI)
 |    +-- InvalidSource    (origin_source malformed or not matching its level)
 +-- NotFound              (404)
 +-- Unauthorized          (401: missing or unknown credentials)
 |    +-- BadSignature     (a signed request's headers are missing, malformed or do not verify)
 |    +-- StaleRequest     (a signed request's timestamp is outside the allowed window)
 |    +-- ReplayedRequest  (a signed request's nonce was already used)
 |    +-- MissingCredentials (neither a signature nor a bearer token)
 |    +-- UnknownDevice    (no device has that id or token)
 |    +-- TokenExpired     (a short-lived access token is past its expiry)
 |    +-- InvalidEnrolCode (an enrolment code is unknown, expired or used)
 +-- Forbidden             (403: another tenant's data, a revoked device)
 |    +-- DeviceRevoked    (the device was revoked; every request of it is refused)
 +-- ConflictState         (409: the operation does not fit the current state)
 +-- ResyncRequired        (410: the cursor can no longer be served; re-sync from scratch)
 +-- HubReset              (410: the cursor is ahead of the hub: it lost history; re-send it)
 +-- PayloadTooLarge       (413)
 +-- RateLimited           (429: too many requests from one device; ``retry_after_s`` says when)
 +-- StorageError          (500: the database failed; detail is logged, not shown)
 +-- SyncIncomplete        (a sync moved what it could, but kept something aside or differs from the hub)
 +-- HubUnavailable        (the hub could not be reached or answered badly)
 |    +-- CertificateChanged (the hub's TLS certificate is not the one this device pinned)
 +-- DecryptionFailed      (422: a payload or wrapped key cannot be decrypted; ``reason`` says why)
 +-- InsecureKeyFile       (a private key file is accessible by group or others; refused)
"""

from __future__ import annotations

from typing import Self

__all__ = [
    "BadSignature",
    "CertificateChanged",
    "ConflictState",
    "DecryptionFailed",
    "DeviceRevoked",
    "Forbidden",
    "HubReset",
    "HubUnavailable",
    "InsecureKeyFile",
    "InvalidEnrolCode",
    "InvalidInput",
    "InvalidSource",
    "MissingCredentials",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ReplayedRequest",
    "ResyncRequired",
    "StaleRequest",
    "StorageError",
    "SyncIncomplete",
    "TokenExpired",
    "TruthvaultError",
    "Unauthorized",
    "UnknownDevice",
]


class TruthvaultError(Exception):
    """Base of every error truthvault raises on purpose."""

    code = "error"
    status = 500
    #: which item of a batch the error is about (its index), when it is about one
    item: int | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def for_item(self, index: int | None, name: str | None = None) -> Self:
        """This error, said of item ``index`` of a batch (``name``: how a person knows it)."""
        self.item = index
        if name and name not in self.message:
            self.message = f"{self.message} ({name})"
        return self

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, object]:
        """The HTTP error body's inner object."""
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.item is not None:
            body["item"] = self.item
        return body


class InvalidInput(TruthvaultError):
    code = "invalid_input"
    status = 422


class InvalidSource(InvalidInput):
    code = "invalid_source"


class NotFound(TruthvaultError):
    code = "not_found"
    status = 404


class Unauthorized(TruthvaultError):
    code = "unauthorized"
    status = 401


class Forbidden(TruthvaultError):
    code = "forbidden"
    status = 403


class ConflictState(TruthvaultError):
    code = "conflict_state"
    status = 409


class ResyncRequired(TruthvaultError):
    code = "resync_required"
    status = 410


class HubReset(TruthvaultError):
    """The device's cursor is ahead of the hub's head: the hub's database was restored from a
    backup or replaced, and lost changes this device had seen. Not a ResyncRequired: what the
    hub lacks must be sent to it again, not dropped."""

    code = "hub_reset"
    status = 410


class PayloadTooLarge(TruthvaultError):
    code = "payload_too_large"
    status = 413


class StorageError(TruthvaultError):
    code = "storage_error"
    status = 500


class SyncIncomplete(TruthvaultError):
    """A sync moved everything it could, but kept items aside (refused by the hub or by this
    device) or ended with a state that differs from the hub's: never reported as success."""

    code = "sync_incomplete"
    status = 500


class HubUnavailable(TruthvaultError):
    code = "hub_unavailable"
    status = 503


class CertificateChanged(HubUnavailable):
    code = "certificate_changed"


class BadSignature(Unauthorized):
    code = "bad_signature"


class StaleRequest(Unauthorized):
    code = "stale_request"


class ReplayedRequest(Unauthorized):
    code = "replayed_request"


class DecryptionFailed(TruthvaultError):
    """``reason``: unknown_key, tampered, malformed, unsupported, wrong_key or wrong_passphrase."""

    code = "decryption_failed"
    status = 422

    def __init__(self, message: str, *, hint: str | None = None, reason: str = "tampered") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class InsecureKeyFile(TruthvaultError):
    code = "insecure_key_file"
    status = 500


class MissingCredentials(Unauthorized):
    code = "missing_credentials"


class UnknownDevice(Unauthorized):
    code = "unknown_device"


class TokenExpired(Unauthorized):
    code = "token_expired"


class InvalidEnrolCode(Unauthorized):
    code = "invalid_enrol_code"


class DeviceRevoked(Forbidden):
    code = "device_revoked"


class RateLimited(TruthvaultError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, hint: str | None = None, retry_after_s: float = 1.0) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s
