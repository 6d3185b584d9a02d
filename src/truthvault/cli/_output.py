"""Where the CLI prints: its text and simple tables written directly, Rich for the rest.

Rich costs a third of an everyday command's start-up to import and to lay out a table. A line
of text (with the CLI's own markup: bold, italic, strike, red) or a table of one-line,
one-cell-per-character values prints byte for byte as Rich would print it, without Rich,
unstyled when the output is not a terminal and styled (in colour unless $NO_COLOR) when it
is; a test checks the two against each other. Anything else goes through Rich: other tables,
other markup, a dumb terminal, progress bars.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console, HighlighterType, JustifyMethod, OverflowMethod
    from rich.style import Style
    from rich.table import Table
    from rich.text import Text

__all__ = ["UNPRINTABLE", "Grid", "Output", "Struck", "escape"]

#: Control characters (C0 but tab and newline, DEL, C1) and the bidirectional overrides, each shown
#: as U+FFFD: text synced from any device of the tenant must never drive the user's terminal
#: (an escape sequence can set the title, clear the screen or, on some terminals, write the
#: clipboard) nor reorder what the user reads.
UNPRINTABLE = {
    code: "\ufffd"
    for code in [
        *range(0x00, 0x09),
        *range(0x0B, 0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
}

#: Rich's markup tags (rich.markup.RE_TAGS)
_TAGS = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")

_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")

#: characters one terminal cell wide by Rich's measure (rich.cells' single-cell ranges, and the
#: few more this CLI prints): text of these only is laid out here; anything else, by Rich
_NARROW = frozenset(
    chr(c)
    for start, end in ((0x20, 0x7E), (0xA0, 0xAC), (0xAE, 0x2FF), (0x370, 0x482), (0x2500, 0x25FC))
    for c in range(start, end + 1)
) | {"\u2026", "\u2713", "\ufffd"}


class Struck:
    """A table cell shown struck through (a deleted entity)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


Cell = str | Struck


class Grid:
    """A table as the CLI draws them: a bold header, one line a row, and one column (``squeeze``)
    cut short with an ellipsis past ``squeeze_width`` so that the table fits the terminal."""

    __slots__ = ("headers", "rows", "squeeze", "squeeze_width", "title")

    def __init__(
        self,
        headers: list[str],
        rows: list[list[Cell]],
        *,
        title: str | None = None,
        squeeze: int = -1,
        squeeze_width: int = 0,
    ) -> None:
        self.headers = headers
        self.rows = rows
        self.title = title
        self.squeeze = squeeze
        self.squeeze_width = squeeze_width

    def to_rich(self) -> Table:
        """The same table as a Rich Table."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.title, header_style="bold")
        for n, header in enumerate(self.headers):
            if n == self.squeeze:
                table.add_column(header, overflow="ellipsis", no_wrap=True, max_width=self.squeeze_width)
            else:
                table.add_column(header, no_wrap=True)
        for row in self.rows:
            table.add_row(*(Text(c.text, style="strike") if isinstance(c, Struck) else c for c in row))
        return table

    def lines(self, width: int, color: bool | None = None) -> list[str] | None:
        """The table as Rich draws it in ``width`` columns: unstyled (``color`` None) or styled for a
        terminal, in colour or not; None when it would take more than this simple layout (wide or
        control characters, a cell of several lines, no room)."""
        cells = [
            [c.text if isinstance(c, Struck) else c.translate(UNPRINTABLE) for c in row] for row in self.rows
        ]
        texts = [self.headers, *cells]
        if not all(_NARROW.issuperset(t) for row in texts for t in row):
            return None
        # a column is as wide as its widest cell, padded by a space each side (Rich's measure)
        widths = [max(len(row[n]) for row in texts) + 2 for n in range(len(self.headers))]
        if 0 <= self.squeeze < len(widths):
            widths[self.squeeze] = min(widths[self.squeeze], self.squeeze_width + 2)
        # the borders take one character per column and one more
        if sum(widths) + len(widths) + 1 > width:
            return None
        if self.title and not _NARROW.issuperset(self.title):
            return None

        def style(text: str, codes: str) -> str:
            return text if color is None else _sgr(text, codes)

        def row_line(
            values: list[str], edge: str, header: bool = False, row: list[Cell] | None = None
        ) -> str:
            parts = []
            for n, (value, w) in enumerate(zip(values, widths, strict=True)):
                if len(value) > w - 2:  # only the squeezed column: cut short with an ellipsis
                    value = value[: w - 3] + "\u2026"
                if header:  # the padding is styled apart
                    parts.append(style(" ", "1") + style(value.ljust(w - 2), "1") + style(" ", "1"))
                elif row is not None and isinstance(row[n], Struck):
                    parts.append(" " + style(value.ljust(w - 2), "9") + " ")
                else:
                    parts.append(" " + value.ljust(w - 2) + " ")
            return edge + edge.join(parts) + edge

        lines = []
        if self.title:  # as it is: a soft-wrapping console does not centre it
            lines.append(style(self.title, "3"))
        lines.append("┏" + "┳".join("━" * w for w in widths) + "┓")
        lines.append(row_line(self.headers, "┃", header=True))
        lines.append("┡" + "╇".join("━" * w for w in widths) + "┩")
        lines += [row_line(values, "│", row=row) for values, row in zip(cells, self.rows, strict=True)]
        lines.append("└" + "┴".join("─" * w for w in widths) + "┘")
        return lines


def escape(text: str) -> str:
    """``text`` with what would read as console markup escaped (as rich.markup.escape does)."""
    text = _ESCAPE.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


#: the SGR codes of the styles the CLI's own messages use, attributes before colours (as Rich)
_ATTRIBUTES = {"bold": "1", "italic": "3", "strike": "9"}
_COLORS = {"red": "31"}


def _sgr(text: str, codes: str) -> str:
    """``text`` in the style of SGR ``codes``, as Rich writes a styled segment."""
    return f"\x1b[{codes}m{text}\x1b[0m" if text and codes else text


def _styled_markup(text: str, color: bool) -> str | None:
    """What Rich prints of console markup at a terminal (in colour or not), for markup of one
    level of the CLI's own styles; None for anything else (Rich prints that)."""
    pieces: list[tuple[str, str]] = []  # (codes, text)
    codes, position = "", 0

    def add(piece: str) -> None:
        if pieces and pieces[-1][0] == codes:  # one segment for text of one style, as Rich
            pieces[-1] = (codes, pieces[-1][1] + piece)
        else:
            pieces.append((codes, piece))

    open_tag: str | None = None
    for match in _TAGS.finditer(text):
        whole, escapes, tag = match.groups()
        start, end = match.span()
        if start > position:
            add(text[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            add("\\" * backslashes)
            if escaped:
                add(whole[len(escapes) :].replace("\\[", "["))
                continue
        if tag.startswith("/"):
            name = tag[1:].strip().lower()
            if open_tag is None or (name and name != open_tag):
                return None
            open_tag, codes = None, ""
            continue
        if open_tag is not None:
            return None
        words = tag.strip().lower().split()
        if (
            not words
            or not all(w in _ATTRIBUTES or w in _COLORS for w in words)
            or len(set(words)) < len(words)
        ):
            return None
        open_tag = " ".join(words)
        codes = ";".join(
            [
                _ATTRIBUTES[w]
                for w in sorted((w for w in words if w in _ATTRIBUTES), key=_ATTRIBUTES.__getitem__)
            ]
            + ([_COLORS[w] for w in words if w in _COLORS] if color else [])
        )
        if open_tag != tag:  # Rich normalises the tag's spelling; keep to what it writes as given
            return None
    add(text[position:].replace("\\[", "["))
    if any("\n" in piece for c, piece in pieces if c):
        return None
    return "".join(_sgr(piece, c) for c, piece in pieces)


def _plain_markup(text: str) -> str:
    """What Rich prints of console markup when it prints no style: the text without its tags."""
    if "[" not in text:
        return text
    parts, position = [], 0
    for match in _TAGS.finditer(text):
        whole, escapes, _ = match.groups()
        start, end = match.span()
        if start > position:
            parts.append(text[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            parts.append("\\" * backslashes)
            if escaped:
                parts.append(whole[len(escapes) :].replace("\\[", "["))
    parts.append(text[position:].replace("\\[", "["))
    return "".join(parts)


def _rich_console(*, stderr: bool, soft_wrap: bool) -> Console:
    """A Rich console that takes no markup from text unless asked (``markup=True``, for the
    CLI's own messages) and shows no control character: what it prints comes from other devices."""
    from rich.console import Console

    class _Console(Console):
        def render_str(
            self,
            text: str,
            *,
            style: str | Style = "",
            justify: JustifyMethod | None = None,
            overflow: OverflowMethod | None = None,
            emoji: bool | None = None,
            markup: bool | None = None,
            highlight: bool | None = None,
            highlighter: HighlighterType | None = None,
        ) -> Text:
            return super().render_str(
                text.translate(UNPRINTABLE),
                style=style,
                justify=justify,
                overflow=overflow,
                emoji=emoji,
                markup=markup,
                highlight=highlight,
                highlighter=highlighter,
            )

    # emoji off: rich would turn ":AB:" in a certificate fingerprint (or any id) into a picture.
    # markup off: "[/]" in a note would break every listing; the few styled lines say markup=True
    # and put only ids (which hold no brackets) into the markup.
    return _Console(stderr=stderr, soft_wrap=soft_wrap, highlight=False, emoji=False, markup=False)


class Output:
    """Standard output or standard error, printed to as a Rich console is (``print``, ``width``,
    ``is_terminal``); Rich itself is loaded only for what needs it."""

    def __init__(self, *, stderr: bool = False, soft_wrap: bool = False) -> None:
        self._stderr = stderr
        self._soft_wrap = soft_wrap
        self._rich: Console | None = None

    def rich(self) -> Console:
        """The Rich console behind this output (for Rich objects that take one)."""
        if self._rich is None:
            self._rich = _rich_console(stderr=self._stderr, soft_wrap=self._soft_wrap)
        return self._rich

    @property
    def file(self) -> TextIO:
        # looked up at each print, as Rich does: tests swap sys.stdout
        return sys.stderr if self._stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        """Whether this output is a terminal, by Rich's rules (TTY_COMPATIBLE, FORCE_COLOR, isatty)."""
        if self._rich is not None:
            return self._rich.is_terminal
        compatible = os.environ.get("TTY_COMPATIBLE", "")
        if compatible in ("0", "1"):
            return compatible == "1"
        force = os.environ.get("FORCE_COLOR")
        if force is not None:
            return force != ""
        isatty = getattr(self.file, "isatty", None)
        try:
            return False if isatty is None else bool(isatty())
        except ValueError:
            return False

    @property
    def width(self) -> int:
        """The width Rich gives this output: $COLUMNS, else the terminal's, else 80."""
        columns = os.environ.get("COLUMNS")
        fixed = int(columns) if columns is not None and columns.isdigit() else None
        lines = os.environ.get("LINES")
        if not (fixed is not None and lines is not None and lines.isdigit()) and self._dumb():
            return 80
        if fixed is not None:
            return fixed
        for fd in (0, 1, 2):
            try:
                size = os.get_terminal_size(fd).columns
            except (AttributeError, ValueError, OSError):
                continue
            return size or 80
        return 80

    def _dumb(self) -> bool:
        return self.is_terminal and os.environ.get("TERM", "").lower() in ("dumb", "unknown")

    def _mode(self) -> str | None:
        """How Rich would style this output: "plain" (not a terminal: no style), "color" or "mono"
        (a terminal, with colours or under $NO_COLOR); None where Rich must decide itself (a dumb
        terminal, an encoding that cannot draw boxes)."""
        if not (getattr(self.file, "encoding", None) or "utf-8").lower().startswith("utf"):
            return None
        if not self.is_terminal:
            return "plain"
        if self._dumb():
            return None
        return "mono" if os.environ.get("NO_COLOR", "") != "" else "color"

    def print(
        self,
        what: object = "",
        *,
        markup: bool = False,
        soft_wrap: bool | None = None,
        highlight: bool = False,
    ) -> None:
        """Print text (console markup only with ``markup=True``), a Grid, or any Rich renderable."""
        wrap = not (self._soft_wrap if soft_wrap is None else soft_wrap)
        mode = self._mode()
        if mode is not None:
            color = None if mode == "plain" else mode == "color"
            if isinstance(what, str) and not wrap:
                text: str | None = what.translate(UNPRINTABLE)
                if markup and text is not None:
                    text = _plain_markup(text) if color is None else _styled_markup(text, color)
                if text is not None and "\t" not in text:  # Rich expands tabs
                    self.file.write(text + "\n")
                    return
            elif isinstance(what, Grid):
                lines = what.lines(self.width, color)
                if lines is not None:
                    self.file.write("".join(line + "\n" for line in lines))
                    return
        renderable = what.to_rich() if isinstance(what, Grid) else what
        self.rich().print(renderable, markup=markup, soft_wrap=soft_wrap, highlight=highlight)
