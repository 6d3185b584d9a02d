"""A small client of the OpenAI-compatible chat API (``POST /chat/completions``, ``GET /models``).

httpx, JSON in and out, no SDK: the API surface used is two calls, and every OpenAI-compatible
server (llama.cpp, Ollama, vLLM, LM Studio, the clouds) speaks them. What a server answers
about itself (its model name, any "level" it claims) is recorded as ``model_claimed`` and
never changes the source or the level of what the answer becomes: those come from the
provider's configuration (:class:`~truthvault.ai.Provider`).

Every failure is one line naming the provider and what went wrong (unreachable, timed out,
refused the key, rate limited and for how long, failed, answered something that is not the
API), and never holds the API key: a server's own error message is shown shortened, with the
key blotted out should it echo it.

A provider on this device or the LAN is reached directly, never through a proxy set in the
environment (``HTTPS_PROXY``): what is sent to an L3 provider must not leave the device. And
no redirect is followed: it could send the text and the key elsewhere.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from ..errors import InvalidInput, TruthvaultError
from ..truth import TruthLevel
from ._providers import Provider
from ._redact import redact

__all__ = ["ChatAnswer", "ProviderCheck", "ProviderError", "chat", "check_provider", "list_models"]

_ROLES = frozenset({"system", "user", "assistant"})
_MAX_DETAIL = 160


class ProviderError(TruthvaultError):
    """An AI provider could not be used; ``reason`` says why: unreachable, timeout, unauthorized,
    rate_limited (``retry_after_s`` says when to try again), refused, server_error, malformed."""

    code = "provider_error"
    status = 502

    def __init__(
        self, message: str, *, reason: str, hint: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ChatAnswer:
    """A provider's answer: its text, and the source and level it writes at (from the
    provider's configuration; ``model_claimed`` is what the server said, for the record only)."""

    text: str
    source: str
    level: TruthLevel
    model_claimed: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    #: what was redacted out of the messages before they left (kind -> count; never a value)
    redacted: dict[str, int] = field(default_factory=dict)
    #: whether the messages went as they were (a LAN or local provider, or ``allow_raw``)
    raw: bool = True


@dataclass(frozen=True)
class ProviderCheck:
    """What ``check_provider`` found: the models the server lists (None: it lists none), a tiny
    chat's answer, and how long each took."""

    provider: str
    source: str
    level: TruthLevel
    models: list[str] | None
    answer: ChatAnswer
    models_ms: float | None
    chat_ms: float

    def to_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "source": self.source,
            "level": int(self.level),
            "level_name": self.level.short,
            "models": self.models,
            "model_claimed": self.answer.model_claimed,
            "answer": self.answer.text,
            "models_ms": self.models_ms,
            "chat_ms": self.chat_ms,
        }


def chat(
    provider: Provider,
    messages: Sequence[Mapping[str, str]],
    *,
    max_tokens: int = 512,
    temperature: float | None = None,
    allow_raw: bool = False,
) -> ChatAnswer:
    """Send ``messages`` (``{"role": "system"|"user"|"assistant", "content": ...}``) to
    ``provider``'s model; its answer, at the provider's configured level.

    To a cloud provider (C5) every message goes redacted (:func:`~._redact.redact`: secrets,
    keys, tokens, e-mail addresses, phone numbers, card numbers and IBANs replaced by their
    kind) unless ``allow_raw``: the user allowed raw text for this request. The answer says
    what was redacted, by kind and count."""
    if not messages:
        raise InvalidInput("messages: at least one message")
    for i, message in enumerate(messages):
        if message.get("role") not in _ROLES or not isinstance(message.get("content"), str):
            raise InvalidInput(f"messages[{i}]: a role (system, user or assistant) and a string content")
    if not 1 <= max_tokens <= 1_000_000:
        raise InvalidInput("max_tokens: between 1 and 1000000")
    redacted: Counter[str] = Counter()
    raw = allow_raw or provider.where != "cloud"
    sent = []
    for m in messages:
        content = m["content"]
        if not raw:
            cleaned = redact(content)
            content = cleaned.text
            redacted.update(cleaned.counts)
        sent.append({"role": m["role"], "content": content})
    body: dict[str, object] = {
        "model": provider.model,
        "messages": sent,
        "max_tokens": max_tokens,
        "stream": False,
    }
    if temperature is not None:
        body["temperature"] = temperature
    data = _call(provider, "POST", "/chat/completions", body)
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    said = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(said, dict) or "content" not in said:
        raise _malformed(provider, "no choices[0].message.content")
    text = said["content"]
    if not isinstance(text, str):
        raise _malformed(provider, "choices[0].message.content is not text")
    claimed = data.get("model")
    usage = data.get("usage")
    finish = choice.get("finish_reason")
    return ChatAnswer(
        text=text,
        source=provider.source,
        level=provider.level,
        model_claimed=claimed if isinstance(claimed, str) else None,
        usage={k: v for k, v in usage.items() if isinstance(k, str) and type(v) is int}
        if isinstance(usage, dict)
        else {},
        finish_reason=finish if isinstance(finish, str) else None,
        redacted=dict(redacted),
        raw=raw,
    )


def list_models(provider: Provider) -> list[str]:
    """The model ids the provider's server lists (``GET /models``)."""
    data = _call(provider, "GET", "/models", None)
    entries = data.get("data")
    if not isinstance(entries, list):
        raise _malformed(provider, "no data list in its /models answer")
    return [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]


def check_provider(provider: Provider) -> ProviderCheck:
    """Try ``provider``: list its models (a server that lists none is not a failure) and send a
    tiny chat; ProviderError when the chat fails."""
    start = time.monotonic()
    models: list[str] | None
    try:
        models = list_models(provider)
        models_ms: float | None = (time.monotonic() - start) * 1000
    except ProviderError as exc:
        if exc.reason not in ("refused", "malformed"):  # unreachable, the key refused: say so
            raise
        models, models_ms = None, None
    start = time.monotonic()
    answer = chat(provider, [{"role": "user", "content": "Reply with the word OK."}], max_tokens=5)
    chat_ms = (time.monotonic() - start) * 1000
    return ProviderCheck(provider.name, provider.source, provider.level, models, answer, models_ms, chat_ms)


def _call(provider: Provider, method: str, path: str, body: object) -> dict[str, object]:
    """One request to the provider's API, its JSON object answer, or a one-line ProviderError."""
    headers = {"Accept": "application/json"}
    key = provider.api_key.get_secret_value() if provider.api_key is not None else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    where = f"AI provider {provider.name!r} ({provider.base_url})"
    try:
        # trust_env only for the cloud: a local or LAN provider is never reached through a proxy
        with httpx.Client(
            timeout=provider.timeout_s, follow_redirects=False, trust_env=provider.where == "cloud"
        ) as client:
            response = client.request(method, provider.base_url + path, json=body, headers=headers)
    except httpx.TimeoutException:
        raise ProviderError(
            f"{where} did not answer within {provider.timeout_s:g} s",
            reason="timeout",
            hint="is the model still loading? a longer timeout may help",
        ) from None
    except httpx.HTTPError as exc:
        raise ProviderError(
            f"{where} cannot be reached: {_clean(type(exc).__name__ + ': ' + str(exc), key)}",
            reason="unreachable",
            hint="is its server running, and the URL right?",
        ) from None
    status = response.status_code
    if status >= 300:
        detail = _server_message(response, key)
        suffix = f": {detail}" if detail else ""
        if status in (401, 403):
            raise ProviderError(
                f"{where} refused the API key (HTTP {status}){suffix}",
                reason="unauthorized",
                hint="add the provider again with the right key",
            )
        if status == 429:
            retry = _retry_after(response)
            raise ProviderError(
                f"{where} is rate limiting us (HTTP 429)"
                + (f"; retry after {retry:g} s" if retry is not None else "")
                + suffix,
                reason="rate_limited",
                retry_after_s=retry,
            )
        if status >= 500:
            raise ProviderError(f"{where} failed (HTTP {status}){suffix}", reason="server_error")
        raise ProviderError(f"{where} refused the request (HTTP {status}){suffix}", reason="refused")
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        raise _malformed(provider, "its answer is not JSON") from None
    if not isinstance(data, dict):
        raise _malformed(provider, "its answer is not a JSON object")
    return data


def _malformed(provider: Provider, what: str) -> ProviderError:
    return ProviderError(
        f"AI provider {provider.name!r} ({provider.base_url}) answered something that is not the "
        f"OpenAI-compatible API: {what}",
        reason="malformed",
        hint="is the URL the API's base (often ending in /v1)?",
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


def _server_message(response: httpx.Response, key: str | None) -> str:
    """The server's own error message (OpenAI's ``{"error": {"message": ...}}``), shortened."""
    try:
        data = json.loads(response.content[:65_536])
    except (ValueError, UnicodeDecodeError):
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return _clean(message, key) if isinstance(message, str) else ""


def _clean(text: str, key: str | None) -> str:
    """``text`` as one short line, with the key (or its longer pieces) blotted out."""
    if key:
        text = text.replace(key, "***")
        # a server may echo part of the key ("sk-abc...xyz"): blot any 8-character run of it
        if len(key) >= 8:
            pieces = {re.escape(key[i : i + 8]) for i in range(len(key) - 7)}
            text = re.sub("|".join(sorted(pieces)), "***", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"
