"""'truthvault import' as the governed action entity.import: policy decides, the truth rule holds
for who imports, one bounded audit entry names what was imported."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from truthvault.kernel import ActionForbidden, ApprovalRequired, ValidationFailed, decode_entry
from truthvault.vault import Vault, _actions, payload_of

AI = "ai-local:llama3"


def _line(entity_id: str, level: int = 1, source: str = "user:import", **extra: Any) -> str:
    item = {
        "entity_type": "note",
        "entity_id": entity_id,
        "tenant_id": "elsewhere",
        "truth_level": level,
        "origin_source": source,
        "last_modified_at": "2026-01-01T00:00:00.000Z-0000",
        "device_id": "importer",
        "version": 2,
        "payload": {"t": f"text of {entity_id}"},
        **extra,
    }
    return json.dumps(item)


def _entries(vault: Vault) -> list[Any]:
    rows = vault._db.conn.execute("SELECT entry FROM audit_outbox ORDER BY id").fetchall()
    return [decode_entry(bytes(r[0])) for r in rows]


def test_an_import_is_one_audit_entry_naming_what_it_wrote(vault: Vault) -> None:
    data = "\n".join([_line("a"), _line("b"), "", _line("c", 5, "ai-cloud:x/y")]) + "\n"
    assert vault.import_jsonl(io.StringIO(data)) == 3
    [entry] = _entries(vault)
    assert (entry.action, entry.decision, entry.source) == ("entity.import", "allowed", "user:cli")
    assert entry.targets == [("a", 2), ("b", 2), ("c", 2)]
    assert vault.count() == 3


def test_a_large_import_names_its_first_targets_and_a_digest_of_all(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_actions, "MAX_AUDIT_TARGETS", 3)
    ids = [f"n{n}" for n in range(10)]
    assert vault.import_jsonl(io.StringIO("\n".join(_line(i) for i in ids))) == 10
    [entry] = _entries(vault)
    digest = hashlib.sha256("".join(f"{i} 2\n" for i in ids).encode()).hexdigest()
    assert entry.targets == [("n0", 2), ("n1", 2), (f"sha256:{digest}", 10)]


def test_an_automation_cannot_import_user_truth(vault: Vault) -> None:
    mine = vault.put("note", {"t": "mine"}, entity_id="a").item
    data = _line("b", 2, "automation:r1") + "\n" + _line("a") + "\n"
    with pytest.raises(ActionForbidden, match=r"line 2: automation:nightly .* level-1") as refused:
        vault.import_jsonl(io.StringIO(data), source="automation:nightly")
    assert refused.value.code == "FORBIDDEN"
    assert vault.get("a") == mine and vault.count() == 1  # nothing of the file
    *_, failed = _entries(vault)
    assert (failed.action, failed.decision, failed.reason) == ("entity.import", "failed", "FORBIDDEN")
    # accepted by the user is user truth (the upgrade rule): refused alike
    user = {"level": 1, "source": "user:mobile", "at": "2026-01-01T00:00:00.000Z-0000"}
    accepted = _line("c", 3, AI, accepted_by_user=True, origin_chain=[user])
    with pytest.raises(ActionForbidden, match="line 1"):
        vault.import_jsonl(io.StringIO(accepted), source="automation:nightly")


def test_an_ai_import_waits_for_the_user_and_lands_as_suggestions(vault: Vault) -> None:
    mine = vault.put("note", {"t": "mine"}, entity_id="a").item
    ai = vault.actor(AI)
    params = {
        "lines": [_line("a", 3, AI, last_modified_at="2026-01-02T00:00:00.000Z-0000"), _line("z", 3, AI)]
    }
    with pytest.raises(ApprovalRequired) as asked:
        vault.kernel.run("entity.import", params, actor=ai)
    rid = asked.value.request_id
    assert rid is not None
    vault.kernel.run("approval.decide", {"id": rid, "decision": "approve"}, actor=vault.actor("user:cli"))
    out = vault.kernel.run("entity.import", params, actor=ai, approval=rid)
    assert out.model_dump() == {"imported": 2}
    assert vault.get("a") == mine  # the user's entity stays; the AI's version is a suggestion
    [suggestion] = vault.suggestions()
    assert payload_of(suggestion.item) == {"t": "text of a"}
    assert vault.get("z").truth_level == 3
    entry = _entries(vault)[-1]
    assert (entry.decision, entry.approved_by, entry.source) == ("approved", "user:cli", AI)
    # an approval is of one input: other lines need another
    other = {"lines": [_line("y", 1)]}
    with pytest.raises(ApprovalRequired):
        vault.kernel.run("entity.import", other, actor=ai)


def test_an_ai_cannot_import_user_truth_even_when_approved(vault: Vault) -> None:
    ai = vault.actor(AI)
    params = {"lines": [_line("u", 1)]}
    with pytest.raises(ApprovalRequired) as asked:
        vault.kernel.run("entity.import", params, actor=ai)
    rid = asked.value.request_id
    vault.kernel.run("approval.decide", {"id": rid, "decision": "approve"}, actor=vault.actor("user:cli"))
    with pytest.raises(ActionForbidden, match=r"line 1: ai-local:llama3 .* level-1"):
        vault.kernel.run("entity.import", params, actor=ai, approval=rid)
    assert vault.count() == 0


def test_the_action_takes_a_path_or_the_lines(vault: Vault, tmp_path: Path) -> None:
    me = vault.actor()
    path = tmp_path / "in.jsonl"
    path.write_text(_line("p1") + "\n" + _line("p2") + "\n")
    assert vault.kernel.run("entity.import", {"path": str(path)}, actor=me).model_dump() == {"imported": 2}
    out = vault.kernel.run("entity.import", {"lines": [_line("l1")], "queue_for_push": False}, actor=me)
    assert out.model_dump() == {"imported": 1}
    assert {i.entity_id for i in vault.list()} == {"p1", "p2", "l1"}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "lines", "give the lines to import, or the path"),
        ({"path": "x", "lines": []}, "lines", "not both"),
        ({"path": ""}, "path", "at least 1 character"),
        ({"lines": "{}"}, "lines", "valid list"),
        ({"lines": [1]}, "lines.0", "valid string"),
        ({"lines": [], "bogus": 1}, "bogus", "Extra inputs"),
        ({"path": "/no/such/file.jsonl"}, "path", "cannot read /no/such/file.jsonl"),
        ({"lines": [_line("ok"), "{broken"]}, "lines", "line 2: "),
        ({"lines": [_line("ok", 1, "automation:r1")]}, "lines", "line 1: origin_source"),
        ({"lines": [], "sha256": "0" * 64}, "sha256", "give it with path"),
        ({"path": "x", "sha256": "XYZ"}, "sha256", "should match pattern"),
    ],
)
def test_bad_input_is_a_validation_error_naming_the_field(
    vault: Vault, params: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        vault.kernel.run("entity.import", params, actor=vault.actor())
    assert refused.value.field == field and message in refused.value.message, refused.value.to_dict()
    assert vault.count() == 0


def test_a_bad_line_of_a_file_names_the_path_field(vault: Vault, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(_line("p1") + "\nnot json\n")
    with pytest.raises(ValidationFailed, match="line 2") as refused:
        vault.kernel.run("entity.import", {"path": str(path)}, actor=vault.actor())
    assert refused.value.field == "path" and vault.count() == 0


def test_the_command_line_runs_the_action(tmp_path: Path) -> None:
    env = {"TRUTHVAULT_HOME": str(tmp_path / "home"), "NO_COLOR": "1", "PATH": ""}
    source = tmp_path / "in.jsonl"
    source.write_text(_line("c1") + "\n")
    tv = [sys.executable, "-m", "truthvault"]
    subprocess.run([*tv, "init"], env=env, check=True, capture_output=True)
    subprocess.run([*tv, "import", str(source)], env=env, check=True, capture_output=True)
    run = subprocess.run(
        [*tv, "action", "run", "entity.import", "--input", json.dumps({"lines": [_line("c2")]})],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert json.loads(run.stdout) == {"imported": 1}
    with Vault.open(tmp_path / "home") as vault:
        assert [(e.action, e.targets) for e in _entries(vault)] == [
            ("entity.import", [("c1", 2)]),
            ("entity.import", [("c2", 2)]),
        ]


def test_an_approved_import_by_path_and_sha256_is_of_that_content(vault: Vault, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(_line("s1", 3, AI) + "\n")
    params = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    ai = vault.actor(AI)
    with pytest.raises(ApprovalRequired) as asked:
        vault.kernel.run("entity.import", params, actor=ai)
    rid = asked.value.request_id
    vault.kernel.run("approval.decide", {"id": rid, "decision": "approve"}, actor=vault.actor("user:cli"))
    path.write_text(_line("s1", 3, AI) + "\n" + _line("s2", 3, AI) + "\n")  # changed after the approval
    with pytest.raises(ValidationFailed, match=r"sha256: .* not the one given") as refused:
        vault.kernel.run("entity.import", params, actor=ai, approval=rid)
    assert refused.value.field == "sha256" and vault.count() == 0
    path.write_text(_line("s1", 3, AI) + "\n")
    me = vault.actor()
    assert vault.kernel.run("entity.import", params, actor=me).model_dump() == {"imported": 1}
