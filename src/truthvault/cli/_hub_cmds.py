"""The hub's commands: serve it, and manage its tenants and devices (on the database --db names)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ..errors import InvalidInput
from ._common import home_dir, json_option, out, plural, print_json

if TYPE_CHECKING:
    import uvicorn
    from _typeshed import DataclassInstance

    from ..hub import HubStore
    from ..hub.app import HubSettings

__all__ = [
    "DEFAULT_URL",
    "as_dict",
    "check_tls",
    "db_option",
    "default_hub_db",
    "open_hub_store",
    "register",
    "serve_hub",
    "url_option",
]

DEFAULT_PORT = 8787
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def default_hub_db() -> str:
    return os.environ.get("TRUTHVAULT_HUB_DB") or str(home_dir() / "hub.db")


db_option = click.option(
    "--db",
    "db_url",
    default=None,
    help="The hub database: a SQLite file path (default: $TRUTHVAULT_HUB_DB or hub.db in the "
    "truthvault home) or postgresql://user@host/dbname.",
)


def _checked_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # checked before the command runs: a bad --url must not leave a tenant made and its code unseen
    from ..sync import check_hub_url

    return None if value is None else check_hub_url(value)


url_option = click.option(
    "--url",
    "hub_url",
    default=None,
    metavar="URL",
    callback=_checked_url,
    help="The hub's URL as devices reach it, for the command printed for them "
    f"(default: the address 'hub serve' uses by default, {DEFAULT_URL}).",
)


@contextmanager
def open_hub_store(db_url: str | None, *, create: bool = False) -> Iterator[HubStore]:
    """The hub store --db names (or the default one); a new database only with ``create``."""
    from ..errors import NotFound
    from ..hub import open_store

    url = db_url or default_hub_db()
    try:
        store = open_store(url, create=create)
    except NotFound as exc:
        db = f" --db {_where(url)}" if db_url else ""  # a PostgreSQL password is not shown
        exc.hint = f"create one with 'truthvault hub init{db}' (or 'truthvault hub serve{db} --create')"
        raise
    try:
        yield store
    finally:
        store.close()


def _where(url: str) -> str:
    """Where a hub database is, for a message: its file, or its URL with any password hidden."""
    if "://" not in url or url.startswith("sqlite://"):
        return url.removeprefix("sqlite:///").removeprefix("sqlite://")
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _describe(url: str) -> str:
    """The database for a start-up line, with any password hidden."""
    kind = "sqlite" if "://" not in url or url.startswith("sqlite://") else "postgresql"
    return f"{kind} {_where(url)}"


def check_tls(cert_file: str, key_file: str) -> str:
    """The certificate's SHA-256 fingerprint, once it and its key are readable and match."""
    from ..hub import HubServer

    return HubServer.check_tls(cert_file, key_file)


def serve_hub(
    store: HubStore,
    db_url: str,
    host: str,
    port: int,
    settings: HubSettings,
    log_level: str = "warning",
    ready: Callable[[uvicorn.Server], None] | None = None,
    tls: tuple[str, str] | None = None,
) -> None:
    """Run the hub in this process until Ctrl-C (or SIGTERM); over HTTPS with ``tls`` (cert, key)."""
    from ..hub import Hub

    server = Hub(store, settings).server(host, port, tls=tls, log_level=log_level)
    exposure = "loopback only" if server.loopback else "REACHABLE FROM THE NETWORK"
    out.print(
        f"truthvault hub on {server.url} ({exposure}) using {_describe(db_url)}"
        + ("" if exposure != "loopback only" else "; --host 0.0.0.0 would expose it")
        + (f"; certificate SHA256 {server.fingerprint}" if server.fingerprint else "")
    )
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    from ..hub import run_workflows

    # the hub's workflows run beside the server (those a killed hub left resume), started in
    # the background: DBOS takes half a second to load, which the server need not wait for
    with run_workflows(store, db_url):
        if ready is not None:
            ready(server.server)
        server.run()
    out.print("hub stopped")


def register(cli: click.Group) -> None:
    """Add the hub group."""

    @cli.group()
    def hub() -> None:
        """The sync hub: serve it, manage tenants and devices."""

    from . import _dlq_cmds, _workflow_cmds

    _workflow_cmds.register_hub(hub)
    _dlq_cmds.register_hub(hub)

    @hub.command("serve")
    @db_option
    @click.option(
        "--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 exposes it)."
    )
    @click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
    @click.option(
        "--max-payload-bytes",
        type=click.IntRange(1),
        default=1 << 20,
        show_default=True,
        help="Largest payload a pushed item may carry.",
    )
    @click.option("--max-batch-items", type=click.IntRange(1), default=5000, show_default=True)
    @click.option(
        "--max-clock-skew",
        type=click.FloatRange(0),
        default=900,
        show_default=True,
        help="Seconds a pushed clock may run ahead of the hub's.",
    )
    @click.option(
        "--tombstone-retention",
        type=click.FloatRange(0),
        default=30,
        show_default=True,
        help="Days a tombstone is kept; devices offline longer must re-sync.",
    )
    @click.option(
        "--signature-window",
        type=click.FloatRange(1),
        default=300,
        show_default=True,
        help="Seconds a signed request's timestamp may differ from the hub's clock.",
    )
    @click.option(
        "--rate-limit",
        default="200/s",
        show_default=True,
        help="Requests a second each device may make (bursts up to twice that); 0 turns it off.",
    )
    @click.option(
        "--tls-cert",
        type=click.Path(dir_okay=False),
        default=None,
        help="Serve HTTPS with this PEM certificate (needs --tls-key); devices pin it when they enrol.",
    )
    @click.option(
        "--tls-key", type=click.Path(dir_okay=False), default=None, help="The certificate's PEM key."
    )
    @click.option(
        "--audit-key",
        type=click.Path(dir_okay=False),
        default=None,
        help="The hub's audit checkpoint key file, made (mode 0600) if missing; every hub process "
        "of one database shares it (default: hub-audit.key in the truthvault home).",
    )
    @click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="warning",
        show_default=True,
    )
    @click.option(
        "--create", is_flag=True, help="Create the hub database if there is none (as 'hub init' does)."
    )
    def serve(
        db_url: str | None,
        host: str,
        port: int,
        max_payload_bytes: int,
        max_batch_items: int,
        max_clock_skew: float,
        tombstone_retention: float,
        signature_window: float,
        rate_limit: str,
        tls_cert: str | None,
        tls_key: str | None,
        audit_key: str | None,
        log_level: str,
        create: bool,
    ) -> None:
        """Serve the hub over HTTP, or HTTPS with --tls-cert and --tls-key (Ctrl-C stops it).

        The database must exist ('truthvault hub init' makes one), unless --create is given.
        """
        from ..hub.app import HubSettings
        from ..hub.store import Limits

        if bool(tls_cert) != bool(tls_key):
            raise InvalidInput("--tls-cert and --tls-key go together")
        tls = (tls_cert, tls_key) if tls_cert and tls_key else None
        if tls:
            check_tls(*tls)  # before the database is opened: a bad file is the likelier mistake

        settings = HubSettings(
            limits=Limits(
                max_payload_bytes=max_payload_bytes,
                max_batch_items=max_batch_items,
                max_future_skew_ms=int(max_clock_skew * 1000),
            ),
            tombstone_retention_s=tombstone_retention * 86400,
            signature_window_s=signature_window,
            rate_per_s=(rate := _parse_rate(rate_limit)),
            rate_burst=2 * rate,
            audit_key_path=audit_key or str(home_dir() / "hub-audit.key"),
        )
        with open_hub_store(db_url, create=create) as store:
            serve_hub(store, db_url or default_hub_db(), host, port, settings, log_level, tls=tls)

    @hub.command("init")
    @db_option
    def init(db_url: str | None) -> None:
        """Create the hub database (SQLite file or PostgreSQL schema), or bring it up to date."""
        from ..errors import NotFound

        url = db_url or default_hub_db()
        try:
            with open_hub_store(url):
                out.print(f"a hub database already exists at {_where(url)}")
        except NotFound:
            with open_hub_store(url, create=True):
                out.print(f"created a hub database at {_where(url)}")

    from ._hub_tenant_cmds import register_tenants

    register_tenants(hub)

    @hub.command("security-events")
    @click.option("--tenant", "tenant_name", default=None, help="Only this tenant's events.")
    @click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="At most this many.")
    @db_option
    @json_option
    def security_events(tenant_name: str | None, limit: int, db_url: str | None, as_json: bool) -> None:
        """Refused requests, enrolments, revocations and key rotations, newest first."""
        with open_hub_store(db_url) as store:
            found = store.security_events(tenant_name, limit)
        if as_json:
            print_json([as_dict(e) for e in found])
            return
        from rich.table import Table

        table = Table(header_style="bold")
        for col in ("at", "type", "tenant", "device", "detail"):
            table.add_column(col, overflow="fold")
        for e in found:
            detail = e.detail
            what = " ".join(
                str(detail[k]) for k in ("method", "path", "client", "reason", "device_name") if detail.get(k)
            )
            table.add_row(e.at[:19], e.type, e.tenant_name or "-", (e.device_id or "-")[:8], what)
        out.print(table if found else "no security events")

    @hub.group("audit")
    def audit() -> None:
        """The tenants' tamper-evident audit logs (RFC 6962 Merkle trees) in the hub's database."""

    @audit.command("verify")
    @click.option("--tenant", "tenant_name", default=None, help="Only this tenant's log.")
    @db_option
    @json_option
    def audit_verify(tenant_name: str | None, db_url: str | None, as_json: bool) -> None:
        """Check every entry, node and head of the audit logs; name the first bad index."""
        from ._audit_cmds import hub_verify

        with open_hub_store(db_url) as store:
            hub_verify(store, tenant_name, as_json)

    @hub.command("purge-tombstones")
    @click.option("--older-than", type=click.FloatRange(0), default=30, show_default=True, help="Days.")
    @db_option
    def purge(older_than: float, db_url: str | None) -> None:
        """Delete tombstones older than the retention now (the hub also does this hourly)."""
        with open_hub_store(db_url) as store:
            count = store.purge_tombstones(int((time.time() - older_than * 86400) * 1000))
        out.print(f"purged {plural(count, 'tombstone')}")


def _parse_rate(text: str) -> float:
    """Requests a second from ``200/s``, ``200`` or ``0`` (off)."""
    number = text.strip().lower().removesuffix("/s")
    try:
        rate = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a rate like 200/s", param_hint="--rate-limit") from None
    if rate < 0:
        raise click.BadParameter("must be >= 0", param_hint="--rate-limit")
    return rate


def as_dict(obj: DataclassInstance) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(obj)
