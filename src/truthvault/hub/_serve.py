"""Serving a hub in this process: checks made before anything is announced (the TLS files, the
address), and a uvicorn server run in the foreground or in a thread of its own."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, StorageError

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

__all__ = ["LOOPBACK", "HubServer", "check_port", "check_tls"]

#: the addresses only this machine reaches
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_tls(cert_file: str, key_file: str) -> str:
    """The certificate's SHA-256 fingerprint (``AB:CD:...``), once it and its key are readable
    and match; InvalidInput saying what is wrong otherwise."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
        with open(cert_file, encoding="ascii", errors="replace") as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
    except (ssl.SSLError, ValueError) as exc:
        if isinstance(exc, ValueError):
            reason = "not a PEM certificate"
        elif "KEY_VALUES_MISMATCH" in str(exc):
            reason = "the key does not match the certificate"
        else:
            reason = str(exc)
        raise InvalidInput(
            f"cannot use {cert_file} and {key_file} for TLS: {reason}",
            hint="--tls-cert takes a PEM certificate, --tls-key its unencrypted PEM private key",
        ) from None
    except OSError as exc:  # after ssl.SSLError, which is one
        raise InvalidInput(
            f"cannot read the TLS files: {exc.strerror or exc}: {exc.filename or cert_file}"
        ) from None
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def check_port(host: str, port: int) -> None:
    """Refuse, in one line and before announcing anything, an address this hub cannot listen on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            # as uvicorn binds: a port left in TIME_WAIT by a hub that just stopped is free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise InvalidInput(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="is another hub running there? pick another --port",
        ) from None


class HubServer:
    """A hub's app behind uvicorn on one address, checked and ready to run.

    :meth:`run` serves in the foreground until Ctrl-C (or SIGTERM); :meth:`start` serves in a
    thread of its own until :meth:`stop` (for tests, or a program that does more than serve).
    """

    #: the certificate's fingerprint once it and its key are usable (see :func:`check_tls`)
    check_tls = staticmethod(check_tls)

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 8787,
        *,
        tls: tuple[str, str] | None = None,
        log_level: str = "warning",
    ) -> None:
        import uvicorn

        self.fingerprint = check_tls(*tls) if tls else None
        check_port(host, port)
        self.host, self.port = host, port
        self.url = f"{'https' if tls else 'http'}://{host if ':' not in host else f'[{host}]'}:{port}"
        #: False when the address is reachable from other machines
        self.loopback = host in LOOPBACK
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self.server: uvicorn.Server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until Ctrl-C or SIGTERM; a Ctrl-C ends it cleanly (no KeyboardInterrupt)."""
        # What is loaded by now lives as long as the server: keep the collector from rescanning it.
        gc.collect()
        gc.freeze()
        # uvicorn shuts down gracefully, then re-raises the Ctrl-C it caught: a clean stop
        with contextlib.suppress(KeyboardInterrupt):
            self.server.run()

    def start(self, timeout: float = 30.0) -> HubServer:
        """Serve in a thread of its own; return once the server accepts connections (with port 0,
        on a free port the system picked: :attr:`port` and :attr:`url` then name it)."""
        # (uvicorn listens to signals in the main thread only: stop() ends this one)
        self._thread = threading.Thread(target=self.server.run, name="truthvault-hub", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise StorageError(f"the hub did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        if self.port == 0:
            # port 0 asked the system for a free one: say which it gave
            self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
            self.url = self.url.rsplit(":", 1)[0] + f":{self.port}"
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server :meth:`start` began, letting open requests finish."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
