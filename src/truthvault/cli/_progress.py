"""Progress bars for long work (sync, import), shown on stderr when it is a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ._common import err_console

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(label: str, unit: str = "changes") -> Iterator[Callable[..., None]]:
    """Yield ``advance(done, total=None)``; draws a bar only on an interactive terminal."""
    if not err_console.is_terminal:
        yield lambda done, total=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn(f"{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console.rich(), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=max(total, done) if total else None)

        yield advance
