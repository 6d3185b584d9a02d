"""``truthvault policy show|set|test`` on a real vault file, in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from truthvault.cli import main


def tv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.setenv("TRUTHVAULT_HOME", str(tmp_path / "home"))
    assert tv(capsys, "init")[0] == 0
    return tmp_path


def test_show_set_and_test_a_policy(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = tv(capsys, "policy", "show")
    assert code == 0 and out.startswith("policy version 0 (the default policy)")
    assert "builtin.ai-no-security: AI (levels 3-5) never runs a security action" in out
    assert '@id("owner.voice-pin")' in out

    code, out, _ = tv(
        capsys,
        "policy",
        "test",
        "--actor",
        "user:voice",
        "--action",
        "notes.delete",
        "--risk",
        "destructive",
        "--json",
    )
    assert code == 0 and json.loads(out) == {
        "decision": "approval",
        "allowed": True,
        "approval": "pin",
        "policies": ["owner.voice-pin"],
        "reason": "allowed after approval (pin), by owner.voice-pin: a destructive or security action by voice needs your PIN",
        "version": 0,
    }

    policy = home / "p.cedar"
    policy.write_text('@id("everything")\n@reason("anything goes")\npermit (principal, action, resource);\n')
    code, out, _ = tv(capsys, "policy", "set", str(policy))
    assert (code, out) == (0, "policy version 1 is in force\n")

    code, out, _ = tv(
        capsys,
        "policy",
        "test",
        "--actor",
        "automation:nightly",
        "--action",
        "entity.purge",
        "--risk",
        "destructive",
        "--target-level",
        "1",
    )
    assert code == 0 and out.splitlines() == [
        "forbidden by builtin.automation-no-hard-delete-user: automations (level 2) never hard-delete your (level-1) entities",
        "policies: builtin.automation-no-hard-delete-user",
    ]
    code, out, _ = tv(
        capsys, "policy", "test", "--actor", "user:voice", "--action", "notes.delete", "--risk", "destructive"
    )
    assert out.splitlines() == ["allowed by everything: anything goes", "policies: everything"]
    shown = json.loads(tv(capsys, "policy", "show", "--json")[1])
    assert (shown["version"], shown["set_by"]) == (1, "user:cli") and len(shown["builtin"]) == 5


def test_a_bad_policy_is_one_line_and_changes_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = home / "bad.cedar"
    bad.write_text("permit (principal, action, resource);\n\npermit (principal,\n  action resource);\n")
    code, out, err = tv(capsys, "policy", "set", str(bad))
    assert code == 1 and out == ""
    assert err.splitlines()[0] == "error: line 4: unexpected token `resource`"
    assert json.loads(tv(capsys, "policy", "show", "--json")[1])["version"] == 0
    code, _, err = tv(capsys, "policy", "test", "--actor", "robot", "--action", "notes.create")
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) <= 2
    code, _, err = tv(capsys, "policy", "test", "--actor", "user:cli", "--action", "nodots")
    assert code == 1 and "--action" in err
