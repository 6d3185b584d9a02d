"""The workflow engine's system database and the processes that use it.

A SQLite system database is a file kept readable by its owner alone; a client never makes an
empty one. Each process that launches an engine is a DBOS executor of its own
(``host/pid/start``) and, at its launch, takes up the pending workflows of the executors that
are gone, never those of a live process (see docs/workflows.md, "Several processes on one
system database").
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["executor_id", "no_sqlite_file", "private_file", "shown", "take_up_orphans"]


def private_file(url: str) -> None:
    """A SQLite system database is made readable by its owner only (0600) before DBOS opens
    it: it holds workflows' inputs and outputs, as the vault's own file is kept."""
    if not url.startswith("sqlite:///"):
        return
    import os

    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)


def _start_ticks(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot (Linux), or "" where unknown:
    with the pid it tells a process from a later one given the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command's name


def executor_id() -> str:
    """This process as a DBOS executor: ``host/pid/start``. Each process launching an engine
    over one system database is an executor of its own, so that at its launch it takes up only
    the workflows of processes that are gone (:func:`take_up_orphans`), never those a live one
    is running (DBOS's default, one executor ``local`` for all, took up every pending workflow:
    a second process could run a workflow the first was still running)."""
    import os
    import socket

    return f"{socket.gethostname()}/{os.getpid()}/{_start_ticks(os.getpid())}"


def _gone(executor: str) -> bool:
    """Is ``executor`` a process of this host that has ended (or DBOS's shared ``local``)? One
    of another host is never taken for gone: its own host's next launch takes up its work, or
    ``workflow resume ID`` does."""
    import os
    import socket

    host, _, rest = executor.partition("/")
    pid_text, _, start = rest.partition("/")
    if not pid_text:
        return executor == "local"  # (before each process was an executor of its own)
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return start != _start_ticks(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return bool(start) and _start_ticks(pid) != start  # the pid was given to a later process


def take_up_orphans(workflow_name: str) -> None:
    """Resume the pending workflows of executors that are gone (a process killed mid-way): DBOS
    puts each on its internal queue, from which one live executor takes it."""
    from dbos import DBOS

    try:
        pending = DBOS.list_workflows(status="PENDING", name=workflow_name)
        gone = sorted({w.executor_id for w in pending if w.executor_id and _gone(w.executor_id)})
        if gone:
            DBOS._recover_pending_workflows(gone)
    except Exception:  # logged: the engine runs; a workflow left waits for the next launch
        import logging

        logging.getLogger("truthvault.kernel").exception("could not take up the workflows of ended processes")


def no_sqlite_file(url: str) -> bool:
    """Is ``url`` a SQLite system database that does not exist yet (or is an empty file)?"""
    if not url.startswith("sqlite:///"):
        return False
    path = Path(url.removeprefix("sqlite:///"))
    return not path.exists() or path.stat().st_size == 0


def shown(url: str) -> str:
    """A database URL without its password."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':', 1)[0]}@{tail}"
