"""The hub as a library: open its database, get its ASGI app, serve it in this process."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from .store import HubStore, open_store

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ._serve import HubServer
    from .app import HubSettings

__all__ = ["Hub"]

#: the port ``truthvault hub serve`` listens on unless told otherwise
DEFAULT_PORT = 8787


class Hub:
    """A hub: its store (tenants, devices, sync) and the HTTP face devices reach it by.

    >>> with Hub.open("hub.db", create=True) as hub:          # doctest: +SKIP
    ...     hub.store.add_tenant("family", "local_first")
    ...     hub.serve(port=8787)                              # until Ctrl-C
    """

    def __init__(self, store: HubStore, settings: HubSettings | None = None) -> None:
        """A hub over an open store; ``settings`` (limits, retention, rate limits) as
        :class:`~truthvault.hub.app.HubSettings` says, its defaults when None."""
        self.store = store
        self.settings = settings

    @classmethod
    def open(cls, url: str, *, create: bool = False, settings: HubSettings | None = None) -> Hub:
        """Open the hub whose database ``url`` names: a SQLite file path (or ``sqlite:///path``)
        or ``postgresql://...``. A database that holds no hub yet becomes one only with
        ``create``; otherwise NotFound, so a mistyped path does not become a new, empty hub."""
        return cls(open_store(url, create=create), settings)

    def app(self) -> FastAPI:
        """The hub's ASGI app (FastAPI), to serve with any ASGI server or test in process."""
        from .app import create_app

        return create_app(self.store, self.settings)

    def server(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        tls: tuple[str, str] | None = None,
        log_level: str = "warning",
    ) -> HubServer:
        """A server for this hub on ``host``:``port``, checked (the TLS files, the address) but not
        running: ``.run()`` serves in the foreground, ``.start()`` / ``with`` in a thread.
        ``tls`` is (PEM certificate file, its unencrypted PEM key file) to serve HTTPS. The
        default address is reachable from this machine only; ``0.0.0.0`` exposes the hub."""
        from ._serve import HubServer

        return HubServer(self.app(), host, port, tls=tls, log_level=log_level)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        tls: tuple[str, str] | None = None,
        log_level: str = "warning",
    ) -> None:
        """Serve the hub in this process until Ctrl-C or SIGTERM (see :meth:`server`)."""
        self.server(host, port, tls=tls, log_level=log_level).run()

    def close(self) -> None:
        """Close the store (a server must have stopped first)."""
        self.store.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
