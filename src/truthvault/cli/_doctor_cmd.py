"""``truthvault doctor``: check this device's vault, keys and hub, and say what to do."""

from __future__ import annotations

import click

from ._common import home_dir, json_option, out, print_json

__all__ = ["register"]

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def register(cli: click.Group) -> None:
    """Add ``doctor``."""

    @cli.command("doctor")
    @json_option
    def doctor(as_json: bool) -> None:
        """Check this device: vault file, schema, keys, hub and its TLS pin, clock, queue, audit.

        The vault file (integrity, permissions 0600, schema revision), the device key file and
        the tenant keyring, the hub (reachable, its pinned certificate), the clock against the
        hub's, the pending queue and the audit checkpoint; for each problem, what to do.
        Exits 1 when a check fails."""
        from ..sync import diagnose

        checks = diagnose(home_dir())
        if as_json:
            print_json([c.to_dict() for c in checks])
        else:
            for c in checks:
                out.print(f"{_MARK.get(c.status, c.status)}  {c.name:<18} {c.detail}")
                if c.fix and c.status != "ok":
                    out.print(f"      {'':<18} -> {c.fix}")
            failed = sum(c.status == "fail" for c in checks)
            warned = sum(c.status == "warn" for c in checks)
            out.print(
                "all checks passed" if not failed and not warned
                else f"{failed} failed, {warned} to look at"
            )  # fmt: skip
        if any(c.status == "fail" for c in checks):
            raise SystemExit(1)
