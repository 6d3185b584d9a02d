"""The crypto package's public surface and the errors it raises."""

from __future__ import annotations

import types

import truthvault.crypto as crypto
from truthvault import errors


def test_all_is_curated_and_complete() -> None:
    for name in crypto.__all__:  # each loads on first use
        getattr(crypto, name)
    public = {
        name
        for name, value in vars(crypto).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert set(crypto.__all__) == public
    assert crypto.__all__ == sorted(crypto.__all__, key=lambda n: (not n.isupper(), n[0].islower(), n))


def test_new_errors_have_stable_codes_and_statuses() -> None:
    expected = {
        errors.BadSignature: ("bad_signature", 401),
        errors.StaleRequest: ("stale_request", 401),
        errors.ReplayedRequest: ("replayed_request", 401),
        errors.DecryptionFailed: ("decryption_failed", 422),
        errors.InsecureKeyFile: ("insecure_key_file", 500),
    }
    for cls, (code, status) in expected.items():
        assert issubclass(cls, errors.TruthvaultError)
        assert (cls.code, cls.status) == (code, status)
        assert cls.__name__ in errors.__all__
        assert cls.__name__ in (errors.__doc__ or "")
    assert issubclass(errors.BadSignature, errors.Unauthorized)


def test_decryption_failed_carries_its_reason() -> None:
    exc = errors.DecryptionFailed("nope", hint="sync keys", reason="unknown_key")
    assert exc.reason == "unknown_key"
    assert exc.to_dict() == {"code": "decryption_failed", "message": "nope", "hint": "sync keys"}
