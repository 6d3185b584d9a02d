"""Every command has help text, and docs/CLI.md is the generated reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from truthvault.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "scripts" / "cli_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_command_has_help() -> None:
    gen = _generator()
    for path, command in gen.walk(cli, ["truthvault"]):  # type: ignore[attr-defined]
        assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and param.name not in ("help",):
                assert param.help or param.is_flag or param.type is not None, f"{path}: {param.name}"


def test_docs_cli_md_is_current() -> None:
    gen = _generator()
    expected = gen.render() + "\n"  # type: ignore[attr-defined]
    actual = (ROOT / "docs" / "CLI.md").read_text()
    assert actual == expected, "docs/CLI.md is stale: run .venv/bin/python scripts/cli_docs.py > docs/CLI.md"
