"""The public Python API: what ``from truthvault import ...`` offers, checked as httpx does."""

from __future__ import annotations

import subprocess
import sys

import truthvault


def test_exported_members() -> None:
    for name in truthvault.__all__:
        member = getattr(truthvault, name)
        if name == "__version__":
            assert isinstance(member, str)
            continue
        assert member.__module__.startswith("truthvault."), (name, member.__module__)
        assert not name.startswith("_"), name


def test_every_lazy_name_is_exported() -> None:
    assert set(truthvault._LAZY) <= set(truthvault.__all__)
    assert dir(truthvault) == sorted(truthvault.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        truthvault.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")


def test_importing_the_package_loads_no_io_or_framework() -> None:
    # every command of the CLI imports the package first: it must stay nearly free
    code = (
        "import sys, truthvault\n"
        "heavy = {'sqlite3', 'httpx', 'msgspec', 'cryptography', 'rich', 'click', 'alembic', 'sqlalchemy'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
