"""The CLI is thin: its commands call the library's public API, typed, and share only public names.

Read from the source, as tests/test_layers.py reads imports: no module of ``truthvault.cli``
imports a private name (a leading underscore) from another, so what a command needs from
another lives in the library or in a helper's public names; and no annotation in the CLI says
``Any``, so nothing untyped passes between the CLI and the library. The table of which module
adds which command (``truthvault.cli.COMMANDS``, what lets a command load only its own module)
is checked against what the modules register.
"""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

import truthvault.cli
from truthvault.cli import COMMANDS, cli, load_commands

CLI = Path(truthvault.cli.__file__).parent
MODULES = sorted(CLI.glob("*.py"))


def _private_imports(path: Path) -> list[str]:
    """Private names ``path`` takes from another CLI module: imported, or read off an imported one."""
    tree = ast.parse(path.read_text(), str(path))
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                if node.module is None:  # from . import _vault_cmds: a module, used by its names
                    modules.add(alias.asname or alias.name)
                elif alias.name.startswith("_"):
                    found.append(f"{path.name} imports {alias.name} from .{node.module}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
        ):
            found.append(f"{path.name} uses {node.value.id}.{node.attr}")
    return found


def _any_annotations(path: Path) -> list[str]:
    """Every annotation in ``path`` that names ``Any`` (typing.Any, or Any imported)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def names_any(annotation: ast.expr | None) -> bool:
        if annotation is None:
            return False
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            return names_any(ast.parse(annotation.value, mode="eval").body)  # a quoted annotation
        return any(
            (isinstance(n, ast.Name) and n.id == "Any") or (isinstance(n, ast.Attribute) and n.attr == "Any")
            for n in ast.walk(annotation)
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            args += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
            for arg in args:
                if names_any(arg.annotation):
                    found.append(f"{path.name}:{node.lineno} {node.name}({arg.arg}: Any)")
            if names_any(node.returns):
                found.append(f"{path.name}:{node.lineno} {node.name}() -> Any")
        elif isinstance(node, ast.AnnAssign) and names_any(node.annotation):
            found.append(f"{path.name}:{node.lineno} a variable annotated Any")
        elif isinstance(node, ast.ImportFrom) and any(a.name == "Any" for a in node.names):
            found.append(f"{path.name}:{node.lineno} imports Any")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_cli_module_takes_another_ones_private_names(path: Path) -> None:
    assert _private_imports(path) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_nothing_in_the_cli_is_typed_any(path: Path) -> None:
    assert _any_annotations(path) == []


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    source = tmp_path / "_fake.py"
    source.write_text(
        "from typing import Any\n"
        "from ._hub_cmds import _store, serve_hub\n"
        "from . import _sync_cmds\n"
        "def f(vault: Any, n: 'list[Any]') -> Any:\n"
        "    x: dict[str, Any] = {}\n"
        "    return _sync_cmds._make(vault), _sync_cmds.register\n"
    )
    assert _private_imports(source) == [
        "_fake.py imports _store from ._hub_cmds",
        "_fake.py uses _sync_cmds._make",
    ]
    found = _any_annotations(source)
    assert len(found) == 5, found  # the import, two arguments, the return, the variable


def test_the_command_table_matches_what_each_module_registers() -> None:
    registered: dict[str, set[str]] = {}
    for module in sorted({m for modules, _ in COMMANDS.values() for m in modules}):
        group = click.Group()
        if module == "_device_cmds":
            group.add_command(click.Group("hub"))  # 'hub repin' joins the hub group
        loaded = __import__(f"truthvault.cli.{module}", fromlist=["register"])
        loaded.register(group)
        if module == "_device_cmds":
            loaded.register_repin(group)
        for name in group.commands:
            registered.setdefault(name, set()).add(module)
    assert {name: set(modules) for name, (modules, _) in COMMANDS.items()} == registered


def test_the_command_table_gives_each_ones_help() -> None:
    load_commands()
    for name, (_, summary) in COMMANDS.items():
        command = cli.commands[name]
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert summary == first, f"COMMANDS[{name!r}] says {summary!r}; the command's help begins {first!r}"


@pytest.mark.parametrize("width", [40, 80, 100, 200])
def test_help_lists_the_commands_as_click_would(width: int) -> None:
    ctx = click.Context(cli, info_name="truthvault", terminal_width=width)
    ours, clicks = ctx.make_formatter(), ctx.make_formatter()
    cli.format_commands(ctx, ours)
    click.Group.format_commands(cli, ctx, clicks)  # looks every command up
    assert ours.getvalue() == clicks.getvalue()


def test_help_loads_no_command_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from truthvault.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('truthvault.cli.')), file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "Commands:" in run.stdout and "search" in run.stdout
    assert run.stderr.strip() == "[]"


def test_a_command_loads_only_its_own_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from truthvault.cli import cli, load_commands\n"
        "load_commands('note')\n"
        "print(sorted(m for m in sys.modules if m.startswith('truthvault.cli.')))\n"
        "print(sorted(m for m in ('rich', 'httpx', 'cryptography', 'sqlalchemy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    modules, heavy = out.splitlines()
    assert modules == "['truthvault.cli._common', 'truthvault.cli._output', 'truthvault.cli._vault_cmds']"
    assert heavy == "[]"
