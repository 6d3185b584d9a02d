"""AI providers: where each runs, and so the truth level it writes at; and where their keys live.

A provider's level comes from its configuration (``where``: on this device, on the LAN, in the
cloud), never from anything its server says: a server may claim any model name or level, and
the source it writes as is derived here from ``where`` alone (``ai-local:<model>`` L3,
``ai-lan:<model>`` LN4, ``ai-cloud:<provider>/<model>`` C5). A ``where cloud`` provider can
never write at L3.

The providers are device-local configuration, kept in the vault's folder as
``ai-providers.json``, not in a vault table: a table would sync, and a provider's URL
(``http://127.0.0.1:11434``, a box on this LAN) means something on this device only; a
provider that is "local" here is in the cloud for the phone it would sync to. Their API keys
are kept apart in ``ai-keys.json``, written as the device key is (atomically, mode 0600) and
refused when group or others can read it; never in the vault's synced data, events or logs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..crypto import read_private, write_private
from ..errors import ConflictState, InvalidInput, NotFound
from ..truth import TruthLevel, level_of_source

__all__ = ["PROVIDERS_FILE", "PROVIDER_KEYS_FILE", "Provider", "Providers", "Where"]

PROVIDERS_FILE = "ai-providers.json"
PROVIDER_KEYS_FILE = "ai-keys.json"
_FORMAT, _KEYS_FORMAT, _VERSION = "tv_ai_providers", "tv_ai_keys", 1

Where = Literal["local", "lan", "cloud"]
#: where a provider runs -> the level it writes at: the one place this is decided
_LEVEL_OF_WHERE: dict[str, TruthLevel] = {
    "local": TruthLevel.AI_LOCAL,
    "lan": TruthLevel.AI_LAN,
    "cloud": TruthLevel.AI_CLOUD,
}
_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,39}\Z")
_LABEL_RE = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,31}\Z")
# what an origin source's detail allows, less room for the cloud label in front of it
_MODEL_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,94}\Z")
_KEY_RE = re.compile(r"\A[\x21-\x7e]{1,4096}\Z")  # printable, no spaces: it goes in a header


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def _is_public_ip(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_global
    return False


def _is_private_ip(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return not ipaddress.ip_address(host).is_global
    return False


class Provider(BaseModel):
    """One configured provider: an OpenAI-compatible chat API at ``url`` serving ``model``.

    ``api_key`` travels with the provider (so that a client needs nothing else) but is never
    part of its dump, its repr or the providers file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="How you call it: lower-case letters, digits, '-' and '_'.")
    url: str = Field(description="The API's base URL, e.g. http://127.0.0.1:11434/v1.")
    model: str = Field(description="The model the server is asked for.")
    where: Where = Field(description="Where it runs: on this device, on the LAN, or in the cloud.")
    provider: str | None = Field(
        default=None, description="A cloud provider's label in its source (default: the name)."
    )
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @classmethod
    def configure(cls, **fields: object) -> Provider:
        """A provider from its fields, or InvalidInput naming the first bad one (never quoting
        it: it may be the key)."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise _invalid(exc) from None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("a name is 1-40 of a-z, 0-9, '-' and '_', starting with a letter or digit")
        return value

    @field_validator("provider")
    @classmethod
    def _check_label(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL_RE.match(value):
            raise ValueError("a provider label is 1-32 of a-z, 0-9, '.', '-' and '_'")
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        if not _MODEL_RE.match(value):
            raise ValueError("a model is 1-95 of A-Z, a-z, 0-9 and . _ : / @ + -")
        return value

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _KEY_RE.match(value.get_secret_value()):
            # the message never quotes the key
            raise ValueError("an API key is 1-4096 printable characters without spaces")
        return value

    @model_validator(mode="after")
    def _check_where(self) -> Self:
        parts = urlsplit(self.url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError("url: an http:// or https:// URL with a host")
        if parts.username or parts.password or parts.query or parts.fragment:
            # a key in a URL ends up in logs and error messages
            raise ValueError("url: no user, password, query or fragment (give the key as an API key)")
        if self.where == "local" and not _is_loopback(host):
            raise ValueError(
                f"url: a 'where local' provider runs on this device, so its host is localhost or a "
                f"loopback address, not {host!r} (use --where lan or cloud)"
            )
        if self.where == "lan" and _is_public_ip(host):
            raise ValueError(f"url: {host} is a public address, not the LAN (use --where cloud)")
        if (
            parts.scheme == "http"
            and self.where == "cloud"
            and not (_is_loopback(host) or _is_private_ip(host))
        ):
            # its key and the text sent would cross the internet in the clear
            raise ValueError("url: a cloud provider is reached over https")
        level_of_source(self.source)  # the project's own check of what it derives
        return self

    @property
    def level(self) -> TruthLevel:
        """The truth level this provider writes at: from ``where``, whatever its server claims."""
        return _LEVEL_OF_WHERE[self.where]

    @property
    def source(self) -> str:
        """The origin source of what it writes: ``ai-local:<model>``, ``ai-lan:<model>`` or
        ``ai-cloud:<provider>/<model>``, from the configuration alone."""
        level = self.level
        detail = f"{self.provider or self.name}/{self.model}" if level == TruthLevel.AI_CLOUD else self.model
        return f"{level.prefix}:{detail}"

    @property
    def base_url(self) -> str:
        """The URL without a trailing slash, to which API paths are appended."""
        return self.url.rstrip("/")

    def to_dict(self) -> dict[str, object]:
        """The provider as JSON, with its source and level, and whether it has a key (never the key)."""
        return {
            **self.model_dump(exclude_none=True),
            "source": self.source,
            "level": int(self.level),
            "level_name": self.level.short,
            "has_api_key": self.api_key is not None,
        }


def _invalid(exc: ValidationError) -> InvalidInput:
    """A pydantic error as one line naming the field (never the input: it may be a key)."""
    first = exc.errors(include_input=False)[0]
    field = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return InvalidInput(f"{field}: {message}" if field else message)


class Providers:
    """The providers configured in a vault's folder, with their keys (see the module docstring)."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = Path(home)

    def __repr__(self) -> str:
        return f"Providers({str(self.home)!r})"

    @property
    def path(self) -> Path:
        return self.home / PROVIDERS_FILE

    @property
    def keys_path(self) -> Path:
        return self.home / PROVIDER_KEYS_FILE

    # -- reading -------------------------------------------------------------------
    def list(self) -> list[Provider]:
        """Every provider, by name, each with its key (masked in its repr and dumps)."""
        keys = self._read_keys()
        return [self._build(raw, keys.get(name)) for name, raw in sorted(self._read().items())]

    def get(self, name: str) -> Provider:
        """The provider called ``name``, with its key; NotFound if there is none."""
        raw = self._read().get(name)
        if raw is None:
            raise NotFound(f"no AI provider called {name!r}", hint="see 'truthvault ai provider list'")
        return self._build(raw, self._read_keys().get(name))

    # -- changing ------------------------------------------------------------------
    def add(self, provider: Provider) -> Provider:
        """Keep ``provider`` (and its key, apart); ConflictState if the name is taken."""
        with self._locked():
            return self._add(provider)

    def _add(self, provider: Provider) -> Provider:
        providers = self._read()
        if provider.name in providers:
            raise ConflictState(
                f"an AI provider called {provider.name!r} already exists",
                hint="remove it first, or choose another name",
            )
        keys = self._read_keys()
        if provider.api_key is not None:
            keys[provider.name] = provider.api_key.get_secret_value()
            self._write(self.keys_path, {_KEYS_FORMAT: _VERSION, "keys": keys})
        elif keys.pop(provider.name, None) is not None:  # a stale key of an earlier one
            self._write(self.keys_path, {_KEYS_FORMAT: _VERSION, "keys": keys})
        providers[provider.name] = provider.model_dump(exclude_none=True)
        self._write(self.path, {_FORMAT: _VERSION, "providers": providers})
        return provider

    def remove(self, name: str) -> None:
        """Forget provider ``name`` and its key; NotFound if there is none."""
        with self._locked():
            self._remove(name)

    def _remove(self, name: str) -> None:
        providers = self._read()
        if providers.pop(name, None) is None:
            raise NotFound(f"no AI provider called {name!r}", hint="see 'truthvault ai provider list'")
        keys = self._read_keys()
        if keys.pop(name, None) is not None:  # the secret first: should we stop half-way
            self._write(self.keys_path, {_KEYS_FORMAT: _VERSION, "keys": keys})
        self._write(self.path, {_FORMAT: _VERSION, "providers": providers})

    # -- files ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Changes take turns (a lock file beside them): two ``add`` at once both land."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.home / ".ai-providers.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX: no lock
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _build(raw: dict[str, object], key: str | None) -> Provider:
        return Provider.configure(**raw, api_key=key) if key else Provider.configure(**raw)

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"{self.path} is not valid JSON") from None
        if (
            not isinstance(data, dict)
            or data.get(_FORMAT) != _VERSION
            or not isinstance(data.get("providers"), dict)
        ):
            raise InvalidInput(f"{self.path} is not a truthvault AI providers file (version {_VERSION})")
        providers = {str(k): dict(v) for k, v in data["providers"].items() if isinstance(v, dict)}
        if any("api_key" in raw for raw in providers.values()):
            # a key here would sit in a file no one checks the mode of: refuse to use it
            raise InvalidInput(
                f"{self.path} holds an API key",
                hint=f"remove it from there, and add the provider again so its key goes in {PROVIDER_KEYS_FILE}",
            )
        return providers

    def _read_keys(self) -> dict[str, str]:
        """The keys file, refused (as a device key is) when group or others can access it."""
        target = self.keys_path
        raw = read_private(
            target,
            "AI key file",
            hint=f"chmod 600 {target}, and rotate the keys in it if others may have read them",
        )
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"AI key file {target} is damaged (not JSON)") from None
        keys = data.get("keys") if isinstance(data, dict) and data.get(_KEYS_FORMAT) == _VERSION else None
        if not isinstance(keys, dict):
            raise InvalidInput(f"{target} is not a truthvault AI key file (version {_VERSION})")
        return {str(k): v for k, v in keys.items() if isinstance(v, str)}

    @staticmethod
    def _write(target: Path, data: dict[str, object]) -> None:
        """Write ``data`` to ``target`` atomically, mode 0600 from creation (as a device key is)."""
        write_private(target, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
