"""Real processes: a `truthvault hub serve` and vaults in separate folders, driven by the CLI."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from truthvault.hub.store import open_store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
#: An end-to-end test runs up to some fifty commands, each a process with its own 120 s limit
#: (which is what catches a hang). On a loaded 2-core machine a command can take seconds, and
#: the suite's 300 s cap for a whole test once fired on a story that had not hung: these tests
#: get a cap that fits their length instead.
E2E_TIMEOUT_S = 1200


#: The stories start real processes, dozens of commands each, and are most of the suite's time.
#: A story marked ``both_backends`` runs on SQLite and on PostgreSQL every time; every other one
#: on one backend, the same every run, half of them each (by a hash of its name), so both
#: backends run stories in every run and the in-process hub tests cover both in full.
#: TRUTHVAULT_E2E_BOTH=1 runs every story on both.
BACKEND_PARAMS = ("hub_db", "hub_url")


def _backend(item: pytest.Item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return next((str(params[p]) for p in BACKEND_PARAMS if p in params), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [item for item in items if here in item.path.parents]
    for item in mine:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))
    if os.environ.get("TRUTHVAULT_E2E_BOTH") == "1":
        return
    variants: dict[tuple[Path, str], set[str]] = {}
    for item in mine:
        backend = _backend(item)
        if backend is not None:
            variants.setdefault((item.path, item.originalname), set()).add(backend)  # type: ignore[attr-defined]
    dropped = []
    for item in mine:
        backend = _backend(item)
        name = item.originalname  # type: ignore[attr-defined]
        if (
            backend is None
            or item.get_closest_marker("both_backends")
            or len(variants[(item.path, name)]) < 2
        ):
            continue
        if backend != ("sqlite", "postgresql")[zlib.crc32(f"{item.path.name}::{name}".encode()) % 2]:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


class Cli:
    """The truthvault command line with its own $TRUTHVAULT_HOME."""

    def __init__(self, home: Path, hub_db: str | None = None) -> None:
        self.home = home
        self.env = {**os.environ, "TRUTHVAULT_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
        if hub_db:
            self.env["TRUTHVAULT_HUB_DB"] = hub_db

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "truthvault", *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"truthvault {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def run_at_terminal(self, *args: str, answers: str) -> subprocess.CompletedProcess[str]:
        """Run with stdin a terminal (a pseudo-terminal) that has ``answers`` typed ahead."""
        controller, terminal = pty.openpty()
        try:
            # typed ahead: the terminal holds the lines until the command reads them
            os.write(controller, answers.encode())
            return subprocess.run(
                [sys.executable, "-m", "truthvault", *args],
                env=self.env,
                stdin=terminal,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            os.close(terminal)
            os.close(controller)

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def sync(self) -> Any:
        return self.json("sync", "now")


class HubProc:
    """A hub process on a free loopback port, over a hub database made for it."""

    def __init__(self, db: str, home: Path, *serve_args: str) -> None:
        self.db = db
        self.serve_args = serve_args
        self.admin = Cli(home, hub_db=db)
        # as 'truthvault hub init' would (in this process, as it costs no start-up): neither
        # 'hub serve' nor the admin commands make a hub database they do not find
        open_store(db, create=True).close()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.log = home / "hub.log"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "truthvault",
                    "hub",
                    "serve",
                    "--db",
                    self.db,
                    "--port",
                    str(self.port),
                    *self.serve_args,
                ],
                env=self.admin.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("hub did not start in 30 s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(15)
        self.proc = None

    def device(self, tenant: str, name: str) -> dict[str, Any]:
        return dict(self.admin.json("hub", "device", "add", "--tenant", tenant, "--name", name))


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh hub database URL on each backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "hub.db")
        return
    name = f"tv_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def hub(hub_db: str, tmp_path: Path) -> Iterator[HubProc]:
    """A running hub with tenant 'family'."""
    proc = HubProc(hub_db, tmp_path / "hub-home")
    # token devices cannot receive a wrapped data key: these stories sync plaintext (cloud_first)
    proc.admin.run("hub", "tenant", "add", "family", "--mode", "cloud_first")
    proc.start()
    yield proc
    proc.stop()


def _device(hub: HubProc, tmp_path: Path, name: str) -> Cli:
    token = hub.device("family", name)["token"]
    cli = Cli(tmp_path / name)
    cli.run("init", "--hub", hub.url, "--tenant", "family", "--token", "-", stdin=token + "\n")
    return cli


@pytest.fixture
def laptop(hub: HubProc, tmp_path: Path) -> Cli:
    return _device(hub, tmp_path, "laptop")


@pytest.fixture
def phone(hub: HubProc, tmp_path: Path) -> Cli:
    return _device(hub, tmp_path, "phone")
