"""The CLI's own printing of text and tables matches Rich's, byte for byte, where it stands in
for Rich (output that is not a terminal), and leaves the rest to Rich."""

from __future__ import annotations

import io
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truthvault.cli._output import Grid, Output, Struck, _rich_console, escape

#: how Rich is told what it prints to: not a terminal (as the tests run), a colour terminal, a
#: terminal under NO_COLOR
MODES = {"plain": {}, "color": {"FORCE_COLOR": "1"}, "mono": {"FORCE_COLOR": "1", "NO_COLOR": "1"}}


def _environment(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for name, value in MODES[mode].items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def _not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, "plain")


def _printed(print_: object, monkeypatch: pytest.MonkeyPatch, columns: int = 80) -> str:
    """What ``print_()`` writes to a stdout that is not a terminal, ``columns`` wide."""
    monkeypatch.setenv("COLUMNS", str(columns))
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buffer)
    assert callable(print_)
    print_()
    return buffer.getvalue()


TEXTS = [
    "",
    "saved note [bold]01abc[/bold] (U1)",
    "[bold red]error:[/bold red] " + escape("a [bold] in a message [/] and \\[x] and C:\\ \\"),
    "plain [not markup] [/] [x=1] \\[bold]",
    "two\nlines\n",
    "a control \x1b[2J character, a bidi \u202e override, a DEL \x7f",
    "x" * 300,
    "trailing blanks   \n" + "y" * 100 + "    ",
    "wide 漢字 and emoji 🎉 and combining e\u0301",
    "[bold red]error:[/bold red] x [red](deleted)[/red] [bold]n1[/bold][italic][/italic] [strike]s[/strike]",
    "[bold]a\\[x]b[/bold] [bold]open to the end",
    "[red bold]order[/red bold] [blue]other[/blue] [bold][red]nested[/red][/bold]",
    "[bold]two\nlines[/bold]",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("markup", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_text_prints_as_rich_prints_it(
    text: str, markup: bool, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _environment(monkeypatch, mode)
    ours = _printed(lambda: Output(soft_wrap=True).print(text, markup=markup), monkeypatch)
    rich = _printed(
        lambda: _rich_console(stderr=False, soft_wrap=True).print(text, markup=markup), monkeypatch
    )
    assert ours == rich


@pytest.mark.parametrize(
    "message", ["[bold]x[/bold]", "a\\[b]", "[/]", "ends with \\", "\\\\[x]", "[link=http://x]y[/link]", "ok"]
)
def test_escape_and_markup_are_richs(message: str) -> None:
    from rich.markup import escape as rich_escape
    from rich.markup import render

    from truthvault.cli._output import _plain_markup

    assert escape(message) == rich_escape(message)
    assert _plain_markup(escape(message)) == render(escape(message)).plain


CELL = st.text(alphabet=st.sampled_from("ab Z09-:.…✓\ufffd\x07é"), max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(CELL, min_size=4, max_size=4), max_size=6),
    squeeze=st.integers(-1, 3),
    squeeze_width=st.integers(12, 40),
    columns=st.integers(20, 160),
    title=st.none() | st.text(alphabet="ab cd", max_size=40),
    struck=st.booleans(),
    mode=st.sampled_from(sorted(MODES)),
)
def test_a_table_prints_as_rich_prints_it(
    rows: list[list[str]],
    squeeze: int,
    squeeze_width: int,
    columns: int,
    title: str | None,
    struck: bool,
    mode: str,
) -> None:
    cells: list[list[str | Struck]] = [
        [Struck(c) if struck and n == 3 else c for n, c in enumerate(r)] for r in rows
    ]
    grid = Grid(
        ["id", "type", "level", "what"], cells, title=title, squeeze=squeeze, squeeze_width=squeeze_width
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        _environment(monkeypatch, mode)
        ours = _printed(lambda: Output(soft_wrap=True).print(grid), monkeypatch, columns)
        rich = _printed(
            lambda: _rich_console(stderr=False, soft_wrap=True).print(grid.to_rich()), monkeypatch, columns
        )
    assert ours == rich


def test_a_simple_table_is_drawn_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = Grid(["id", "what"], [["n1", "a note"], ["n2", Struck("deleted")]], squeeze=1, squeeze_width=12)
    assert grid.lines(80) is not None
    assert grid.lines(10) is None  # no room: Rich decides how to squeeze it
    assert Grid(["id"], [["漢字"]]).lines(80) is None  # wide characters: Rich measures them


def test_a_terminal_is_styled_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, "color")
    output = Output(soft_wrap=True)
    assert output.is_terminal
    printed = _printed(lambda: output.print("saved [bold]x[/bold]", markup=True), monkeypatch)
    assert printed == "saved \x1b[1mx\x1b[0m\n"
    assert output._rich is None


def test_a_dumb_terminal_is_left_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, "color")
    monkeypatch.setenv("TERM", "dumb")
    output = Output(soft_wrap=True)
    grid = Grid(["id"], [["n1"]])
    printed = _printed(lambda: output.print(grid), monkeypatch)
    assert output._rich is not None and printed == _printed(
        lambda: _rich_console(stderr=False, soft_wrap=True).print(grid.to_rich()), monkeypatch
    )
