"""Zero leak to the cloud double: what a cloud (C5) provider is sent is redacted, whatever the
messages hold; a LAN or local provider, or a request the user allowed raw, gets the text as is.
The cloud here is a test double: the tiny OpenAI-compatible server of test_providers, which
records every request body it gets."""

from __future__ import annotations

import json
from pathlib import Path

from truthvault.ai import Provider, ai_summarize, chat
from truthvault.kernel import decode_entry
from truthvault.truth import TruthLevel
from truthvault.vault import Vault

from .secrets_corpus import SECRETS
from .test_providers import FakeOpenAI, server  # noqa: F401 (the server fixture)

PROSE = "\n".join(prose for _, _, prose in SECRETS)


def _sent(double: FakeOpenAI) -> str:
    """What the last request carried: the whole body, and each message's content as it is."""
    body = double.requests[-1]["body"]
    assert isinstance(body, dict)
    contents = [str(m["content"]) for m in body["messages"]]
    return "\n".join([json.dumps(body, ensure_ascii=False), *contents])


def test_nothing_of_the_corpus_reaches_the_cloud(server: FakeOpenAI) -> None:  # noqa: F811
    cloud = Provider.configure(name="gpt", url=server.url, model="gpt-4o", where="cloud", provider="openai")
    answer = chat(cloud, [{"role": "system", "content": "Summarize."}, {"role": "user", "content": PROSE}])
    sent = _sent(server)
    leaked = [secret for _, secret, _ in SECRETS if secret in sent or secret[:12] in sent]
    assert leaked == []
    assert not answer.raw and sum(answer.redacted.values()) >= len(SECRETS)
    assert answer.redacted["EMAIL"] >= 5 and answer.redacted["PRIVATE_KEY"] >= 1
    assert "[EMAIL]" in sent and "Summarize." in sent  # the rest of the text still goes


def test_a_lan_provider_or_a_raw_request_gets_the_text_as_is(server: FakeOpenAI) -> None:  # noqa: F811
    lan = Provider.configure(name="box", url=server.url, model="qwen", where="lan")
    assert chat(lan, [{"role": "user", "content": PROSE}]).raw
    assert SECRETS[0][1] in _sent(server)
    cloud = Provider.configure(name="gpt", url=server.url, model="gpt-4o", where="cloud")
    answer = chat(cloud, [{"role": "user", "content": PROSE}], allow_raw=True)
    assert answer.raw and answer.redacted == {} and SECRETS[0][1] in _sent(server)


def test_a_summary_by_a_cloud_provider_is_its_suggestion_and_its_call_is_audited_without_the_text(
    server: FakeOpenAI,  # noqa: F811
    tmp_path: Path,
) -> None:
    vault = Vault.open(tmp_path / "v", source="user:cli")
    try:
        note = vault.put("note", {"text": "Ask ada.lovelace@example.com about the engine drawings."}).item
        cloud = Provider.configure(
            name="gpt", url=server.url, model="gpt-4o", where="cloud", provider="openai"
        )
        done = ai_summarize(vault, note.entity_id, provider=cloud)
        assert done.outcome == "suggestion" and done.written == {"summary": "OK"}  # the double's answer
        [record] = vault.records(kind="suggestion", entity_id=note.entity_id)
        assert (
            record.item.origin_source == "ai-cloud:openai/gpt-4o"
            and record.item.truth_level == TruthLevel.AI_CLOUD
        )
        assert "ada.lovelace" not in _sent(server) and "[EMAIL]" in _sent(server)
        local = Provider.configure(name="here", url=server.url, model="phi", where="local")
        ai_summarize(vault, note.entity_id, provider=local)  # a local call is not an ai.call entry
        entries = [decode_entry(e) for _, batch in vault.audit.seal("t", "d") for e in batch]
        calls = [e for e in entries if e.action == "ai.call"]
        assert len(calls) == 1 and calls[0].source == "ai-cloud:openai/gpt-4o" and calls[0].level == 5
        assert calls[0].targets == [(note.entity_id, note.version)]
        assert "redacted EMAIL 1" in (calls[0].reason or "") and "characters sent" in (calls[0].reason or "")
        assert all("ada.lovelace" not in json.dumps(e.reason) for e in entries)
    finally:
        vault.close()
