"""The layers of docs/ARCHITECTURE.md, checked: what each part of the package may import.

Read from the source (every import statement, relative ones resolved, those inside functions
too), so a lazy import cannot slip past: the pure core imports no I/O, the stores no engine or
face, the hub no device code, and no face another's insides.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import truthvault

PACKAGE = Path(truthvault.__file__).parent
#: the pure core: no I/O, no store, no engine, no face
CORE = {"truth", "clock", "model", "intake", "merge", "payload", "errors"}
#: what the pure core may import from outside the standard library
CORE_THIRD_PARTY = {"msgspec"}
#: modules that do I/O (or pull in a framework that does), never imported by the core
IO = {
    "sqlite3",
    "socket",
    "subprocess",
    "ssl",
    "httpx",
    "psycopg",
    "psycopg_pool",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "click",
    "rich",
    "platformdirs",
}
#: for each part of the package, the parts it must never import
FORBIDDEN = {
    "crypto": {"vault", "hub", "sync", "cli", "ai"},
    "vault": {"hub", "sync", "cli", "ai"},
    "hub": {"vault", "sync", "cli", "ai"},
    "sync": {"hub", "cli", "ai"},
    # the kernel is the library the vault, the hub and the faces call: it sees only the core
    # and crypto; each side plugs its own stores into the kernel's ports
    "kernel": {"vault", "hub", "sync", "cli", "ai"},
    # AI writers sit above the vault and the kernel (and may reach the hub through sync)
    "ai": {"hub", "cli"},
}


#: the faces: each calls the core and the public API of the library and kernel, never another
#: face, and never the private modules (a leading underscore) of any part but its own
FACES = {"cli", "shell", "agent", "web"}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if "migrations" in parts:
            continue  # Alembic's own files, run by Alembic
        found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, as absolute dotted names."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["truthvault", *package][: len(package) + 2 - node.level]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.add(module)
            # "from . import _search" imports a module, not a name
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


MODULES = _modules()


def test_the_package_is_read() -> None:
    names = {name for name, _ in MODULES}
    assert {"model", "merge", "vault._apply", "hub._base", "sync._syncer", "cli._sync_cmds"} <= names


@pytest.mark.parametrize(("name", "path"), [m for m in MODULES if m[0] in CORE], ids=lambda v: str(v))
def test_the_pure_core_imports_no_io_and_nothing_above_it(name: str, path: Path) -> None:
    for module in _imports(name, path):
        top = module.split(".")[0]
        if top == "truthvault":
            inner = module.split(".")[1] if "." in module else ""
            assert inner in CORE or inner == "", f"{name} imports {module}: the core imports only the core"
        else:
            assert top not in IO, f"{name} imports {module}: the core does no I/O"
            assert top in CORE_THIRD_PARTY or _stdlib(top), f"{name} imports {module}"


@pytest.mark.parametrize(
    ("name", "path"), [m for m in MODULES if m[0].split(".")[0] in FORBIDDEN], ids=lambda v: str(v)
)
def test_each_part_imports_only_what_lies_below_it(name: str, path: Path) -> None:
    banned = FORBIDDEN[name.split(".")[0]]
    for module in _imports(name, path):
        parts = module.split(".")
        if parts[0] == "truthvault" and len(parts) > 1:
            assert parts[1] not in banned, f"{name} imports {module}"


def _face_violations(name: str, path: Path) -> list[str]:
    """What face module ``name`` imports that it must not: another face, or a private module."""
    face, found = name.split(".")[0], []
    for module in sorted(_imports(name, path)):
        parts = module.split(".")
        if parts[0] != "truthvault" or len(parts) < 2 or parts[1] == face:
            continue
        if parts[1] in FACES:
            found.append(f"{name} imports {module}: faces never import each other")
        elif any(p.startswith("_") for p in parts[2:]):
            found.append(f"{name} imports {module}: a face uses the public API, not another part's insides")
    return found


@pytest.mark.parametrize(
    ("name", "path"), [m for m in MODULES if m[0].split(".")[0] in FACES], ids=lambda v: str(v)
)
def test_a_face_uses_only_the_public_api(name: str, path: Path) -> None:
    assert _face_violations(name, path) == []


def test_the_face_rule_catches_a_private_import_and_another_face(tmp_path: Path) -> None:
    source = tmp_path / "_fake.py"
    source.write_text("from ..vault._store import Vault\nfrom ..hub import Hub\nfrom ..cli import main\n")
    found = _face_violations("shell._fake", source)
    assert any("truthvault.vault._store" in v and "insides" in v for v in found)
    assert any("truthvault.cli" in v and "each other" in v for v in found)
    assert not any("truthvault.hub" in v for v in found)


def _stdlib(top: str) -> bool:
    import sys

    return top in sys.stdlib_module_names or top == "__future__"


def test_the_reader_resolves_relative_imports_and_finds_lazy_ones(tmp_path: Path) -> None:
    source = tmp_path / "_fake.py"
    source.write_text("from ..vault import Vault\nfrom . import _auth\n\ndef f():\n    import sqlite3\n")
    found = _imports("hub._fake", source)
    assert {"truthvault.vault", "truthvault.hub._auth", "sqlite3"} <= found
