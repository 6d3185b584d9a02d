"""AI providers and their OpenAI-compatible client, end to end against a real HTTP server.

The server is a test double: a tiny OpenAI-compatible API (``http.server`` in a thread on
127.0.0.1) with fixed answers, recording the requests it gets. It claims another model than
it was asked for and even a "level" of its own: the source and level of what it writes must
come from our configuration alone. No mocks: real sockets, real files.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from truthvault.ai import Provider, ProviderError, Providers, chat, check_provider, list_models
from truthvault.cli import main
from truthvault.errors import ConflictState, InsecureKeyFile, InvalidInput, NotFound
from truthvault.truth import TruthLevel, level_of_source

KEY = "sk-test-0123456789abcdefSECRET"


class FakeOpenAI(ThreadingHTTPServer):
    """The test double: ``mode`` picks the answer (ok, 401, 429, 500, not-json, no-choices,
    no-models)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.requests: list[dict[str, object]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        mode = self.server.mode
        if mode == "401":
            # as OpenAI does, it echoes part of the key it refuses
            self._answer(401, {"error": {"message": f"Incorrect API key provided: {KEY[:12]}...{KEY[-4:]}."}})
        elif mode == "429":
            self._answer(429, {"error": {"message": "Rate limit\nreached"}}, {"Retry-After": "7"})
        elif mode == "500":
            self._answer(500, {"error": {"message": "the GPU\nfell over"}})
        elif mode == "not-json":
            self._answer(200, b"<html>hello</html>")
        elif mode == "no-choices":
            self._answer(200, {"object": "chat.completion", "choices": []})
        elif self.path == "/v1/models" and mode != "no-models":
            self._answer(200, {"object": "list", "data": [{"id": "claimed-gpt-9"}, {"id": "other"}]})
        elif self.path == "/v1/chat/completions":
            self._answer(
                200,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": "claimed-gpt-9",  # not what it was asked for
                    "level": 1,  # a level it claims: ignored
                    "origin_source": "user:cli",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "OK"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                },
            )
        else:
            self._answer(404, {"error": {"message": "no such path"}})

    do_GET = _handle
    do_POST = _handle


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    httpd = FakeOpenAI()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _provider(server: FakeOpenAI, where: str, **extra: object) -> Provider:
    return Provider.configure(name=f"p-{where}", url=server.url, model="llama3.1:8b", where=where, **extra)


# -- levels come from the configuration ------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "level", "source"),
    [
        ("local", TruthLevel.AI_LOCAL, "ai-local:llama3.1:8b"),
        ("lan", TruthLevel.AI_LAN, "ai-lan:llama3.1:8b"),
        ("cloud", TruthLevel.AI_CLOUD, "ai-cloud:acme/llama3.1:8b"),
    ],
)
def test_the_level_is_where_it_runs_whatever_the_server_claims(
    server: FakeOpenAI, where: str, level: TruthLevel, source: str
) -> None:
    provider = _provider(server, where, provider="acme", api_key=KEY)
    answer = chat(provider, [{"role": "user", "content": "hi"}], max_tokens=8)
    assert answer.text == "OK"
    assert answer.model_claimed == "claimed-gpt-9"  # recorded, for the record only
    assert (answer.source, answer.level) == (source, level)
    assert level_of_source(answer.source) == level
    assert answer.usage == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"] == {
        "model": "llama3.1:8b",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
        "stream": False,
    }
    headers = request["headers"]
    assert isinstance(headers, dict)
    assert headers["Authorization"] == f"Bearer {KEY}"


def test_a_cloud_provider_never_writes_at_l3(server: FakeOpenAI) -> None:
    cloud = _provider(server, "cloud")
    assert cloud.level == TruthLevel.AI_CLOUD
    assert cloud.source == "ai-cloud:p-cloud/llama3.1:8b"  # the label defaults to the name
    # a model named like another kind's source still yields a cloud source
    sly = Provider.configure(name="sly", url=server.url, model="ai-local:x", where="cloud")
    assert level_of_source(sly.source) == TruthLevel.AI_CLOUD
    # the level cannot be set: it is derived
    with pytest.raises(InvalidInput, match="level"):
        Provider.configure(name="x", url=server.url, model="m", where="cloud", level=3)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"model": "has space"}, "model"),
        ({"where": "moon"}, "where"),
        ({"provider": "a/b"}, "provider"),
        ({"url": "ftp://x/v1"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/v1"}, "url"),
        ({"url": "http://127.0.0.1/v1?key=abc"}, "url"),
        ({"url": "http://api.example.com/v1", "where": "local"}, "url"),  # local means loopback
        ({"url": "http://8.8.8.8/v1", "where": "lan"}, "url"),  # a public address is not the LAN
        ({"url": "http://api.example.com/v1", "where": "cloud"}, "url"),  # the cloud over https
        ({"timeout_s": 0}, "timeout_s"),
        ({"api_key": "has a space " + KEY}, "api_key"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_field(fields: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"name": "ok", "url": "http://127.0.0.1:1/v1", "model": "m", "where": "local"}
    with pytest.raises(InvalidInput) as caught:
        Provider.configure(**{**base, **fields})
    message = str(caught.value)
    assert message.startswith(field) and "\n" not in message
    assert KEY not in message


# -- the store and its key file ----------------------------------------------------------------------
def test_providers_are_kept_apart_from_their_keys(tmp_path: Path, server: FakeOpenAI) -> None:
    store = Providers(tmp_path)
    store.add(_provider(server, "cloud", api_key=KEY))
    store.add(_provider(server, "local"))
    assert [p.name for p in store.list()] == ["p-cloud", "p-local"]
    assert [p.api_key is not None for p in store.list()] == [True, False]
    got = store.get("p-cloud")
    assert got.api_key is not None and got.api_key.get_secret_value() == KEY
    assert store.get("p-local").api_key is None
    assert KEY not in repr(got) and KEY not in str(got.to_dict()) and KEY not in got.model_dump_json()
    assert KEY not in store.path.read_text()
    assert KEY in store.keys_path.read_text()
    assert stat.S_IMODE(os.stat(store.keys_path).st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    with pytest.raises(ConflictState, match="already exists"):
        store.add(_provider(server, "local"))
    store.remove("p-cloud")
    assert KEY not in store.keys_path.read_text()
    with pytest.raises(NotFound, match="no AI provider called 'p-cloud'"):
        store.get("p-cloud")
    with pytest.raises(NotFound):
        store.remove("p-cloud")


def test_a_key_file_others_can_read_is_refused(tmp_path: Path, server: FakeOpenAI) -> None:
    store = Providers(tmp_path)
    store.add(_provider(server, "cloud", api_key=KEY))
    os.chmod(store.keys_path, 0o644)
    with pytest.raises(InsecureKeyFile, match="0644"):
        store.get("p-cloud")
    os.chmod(store.keys_path, 0o600)
    assert store.get("p-cloud").api_key is not None


def test_a_key_put_in_the_providers_file_is_refused(tmp_path: Path, server: FakeOpenAI) -> None:
    store = Providers(tmp_path)
    store.add(_provider(server, "local"))
    data = json.loads(store.path.read_text())
    data["providers"]["p-local"]["api_key"] = KEY
    store.path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match="holds an API key") as caught:
        store.list()
    assert KEY not in str(caught.value)


# -- the client's errors: one line each, never the key ----------------------------------------------
@pytest.mark.parametrize(
    ("mode", "reason", "words"),
    [
        ("401", "unauthorized", "refused the API key (HTTP 401)"),
        ("429", "rate_limited", "retry after 7 s"),
        ("500", "server_error", "failed (HTTP 500): the GPU fell over"),
        ("not-json", "malformed", "not JSON"),
        ("no-choices", "malformed", "no choices[0].message.content"),
    ],
)
def test_errors_are_one_line_without_the_key(server: FakeOpenAI, mode: str, reason: str, words: str) -> None:
    server.mode = mode
    with pytest.raises(ProviderError) as caught:
        chat(_provider(server, "cloud", api_key=KEY), [{"role": "user", "content": "hi"}])
    error = caught.value
    assert error.reason == reason
    assert words in error.message and "\n" not in error.message
    assert KEY not in str(error) and KEY[:12] not in str(error)
    if mode == "429":
        assert error.retry_after_s == 7


def test_an_unreachable_provider_is_one_line() -> None:
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        provider = Provider.configure(name="gone", url=url, model="m", where="local", api_key=KEY)
        with pytest.raises(ProviderError) as caught:
            chat(provider, [{"role": "user", "content": "hi"}])
    assert caught.value.reason == "unreachable"
    assert "cannot be reached" in caught.value.message and "\n" not in str(caught.value)
    assert KEY not in str(caught.value)


def test_models_and_check(server: FakeOpenAI) -> None:
    provider = _provider(server, "lan")
    assert list_models(provider) == ["claimed-gpt-9", "other"]
    check = check_provider(provider)
    assert check.models == ["claimed-gpt-9", "other"]
    assert (check.level, check.source) == (TruthLevel.AI_LAN, "ai-lan:llama3.1:8b")
    assert check.answer.model_claimed == "claimed-gpt-9"
    assert all("Authorization" not in r["headers"] for r in server.requests)  # type: ignore[operator]


def test_a_server_that_lists_no_models_still_checks(server: FakeOpenAI) -> None:
    server.mode = "no-models"
    check = check_provider(_provider(server, "local"))
    assert check.models is None and check.models_ms is None
    assert check.answer.text == "OK" and check.level == TruthLevel.AI_LOCAL


def test_bad_messages_are_refused_before_any_request(server: FakeOpenAI) -> None:
    provider = _provider(server, "local")
    with pytest.raises(InvalidInput, match=r"messages\[0\]"):
        chat(provider, [{"role": "robot", "content": "hi"}])
    with pytest.raises(InvalidInput, match="at least one"):
        chat(provider, [])
    assert server.requests == []


# -- the command line ---------------------------------------------------------------------------------
def tv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_add_list_test_remove(
    tmp_path: Path, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TRUTHVAULT_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    code, out, err = tv(
        capsys, "ai", "provider", "add", "gpt", "--url", server.url, "--model", "gpt-4o",
        "--where", "cloud", "--provider", "openai", "--api-key-file", str(key_file),
    )  # fmt: skip
    assert code == 0, err
    assert "writes at C5 as ai-cloud:openai/gpt-4o" in out and KEY not in out

    monkeypatch.setenv("TRUTHVAULT_AI_API_KEY", "sk-from-the-environment-1")
    code, out, err = tv(
        capsys, "ai", "provider", "add", "box", "--url", server.url, "--model", "qwen", "--where", "lan"
    )
    assert code == 0 and "with an API key" in out, err
    monkeypatch.delenv("TRUTHVAULT_AI_API_KEY")
    code, out, err = tv(
        capsys, "ai", "provider", "add", "here", "--url", server.url, "--model", "phi", "--where", "local"
    )
    assert code == 0 and "without an API key" in out

    code, out, err = tv(capsys, "ai", "provider", "list")
    assert code == 0
    assert "ai-cloud:openai/gpt-4o" in out and "LN4" in out and "ai-local:phi" in out
    code, out, err = tv(capsys, "ai", "provider", "list", "--json")
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["gpt"]["level"] == 5 and listed["gpt"]["has_api_key"] is True
    assert listed["here"]["level_name"] == "L3"
    for path in home.iterdir():
        if path.name != "ai-keys.json":
            assert KEY.encode() not in path.read_bytes(), path

    code, out, err = tv(capsys, "ai", "provider", "test", "gpt")
    assert code == 0, err
    assert "claimed-gpt-9" in out and "writes at C5 as ai-cloud:openai/gpt-4o" in out and KEY not in out
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"  # type: ignore[index]

    server.mode = "401"
    code, out, err = tv(capsys, "ai", "provider", "test", "gpt")
    assert code == 1 and "refused the API key" in err and KEY not in err and KEY[:12] not in err
    assert err.startswith("error:") and len([x for x in err.splitlines() if x.startswith("error:")]) == 1

    code, out, err = tv(
        capsys, "ai", "provider", "add", "gpt", "--url", server.url, "--model", "m", "--where", "local"
    )
    assert code == 1 and "already exists" in err
    code, out, err = tv(
        capsys,
        "ai",
        "provider",
        "add",
        "x",
        "--url",
        "http://example.com/v1",
        "--model",
        "m",
        "--where",
        "local",
    )
    assert code == 1 and err.startswith("error: url:")

    code, out, err = tv(capsys, "ai", "provider", "remove", "gpt")
    assert code == 0 and "removed" in out
    code, out, err = tv(capsys, "ai", "provider", "test", "gpt")
    assert code == 1 and "no AI provider called 'gpt'" in err


def test_adds_at_the_same_time_all_land(tmp_path: Path, server: FakeOpenAI) -> None:
    store = Providers(tmp_path)
    errors: list[BaseException] = []

    def add(n: int) -> None:
        try:
            Providers(tmp_path).add(
                Provider.configure(name=f"p{n}", url=server.url, model="m", where="lan", api_key=f"{KEY}{n}")
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in store.list()) == [f"p{n}" for n in range(8)]
    assert {p.name: p.api_key.get_secret_value() for p in store.list() if p.api_key} == {
        f"p{n}": f"{KEY}{n}" for n in range(8)
    }
