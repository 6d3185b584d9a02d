"""The device's HTTP transport to a hub: one method per endpoint, errors as TruthvaultError."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from .. import errors
from ..model import PullResponse, PushRequest, PushResponse, Record, SyncItem, encode

__all__ = ["HubClient"]

_BY_CODE: dict[str, type[errors.TruthvaultError]] = {
    cls.code: cls
    for cls in (
        errors.InvalidInput,
        errors.InvalidSource,
        errors.NotFound,
        errors.Unauthorized,
        errors.Forbidden,
        errors.ConflictState,
        errors.ResyncRequired,
        errors.PayloadTooLarge,
        errors.StorageError,
    )
}

_push_response = msgspec.json.Decoder(PushResponse)
_pull_response = msgspec.json.Decoder(PullResponse)
_records = msgspec.json.Decoder(list[Record])


class _Resolved(msgspec.Struct):
    record: Record
    item: SyncItem | None = None


_resolved = msgspec.json.Decoder(_Resolved)


class HubClient:
    """Talks to one hub as one device. ``transport`` lets tests pass an ASGI transport."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {token}", "user-agent": "truthvault"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise errors.HubUnavailable(
                f"the hub at {self.url} did not answer in time", hint="is it running? try again"
            ) from None
        except httpx.TransportError as exc:
            raise errors.HubUnavailable(
                f"cannot reach the hub at {self.url} ({type(exc).__name__})",
                hint="start it with 'truthvault hub serve' or check the URL",
            ) from None
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> errors.TruthvaultError:
        try:
            body = response.json()["error"]
            code, message, hint = body["code"], body["message"], body.get("hint")
        except (ValueError, KeyError, TypeError):
            return errors.HubUnavailable(f"the hub answered {response.status_code} without an error body")
        cls = _BY_CODE.get(code, errors.TruthvaultError)
        exc = cls(f"hub: {message}", hint=hint)
        if cls is errors.TruthvaultError:
            exc.code, exc.status = code, response.status_code
        return exc

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/healthz").json()
        return result

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/v1/whoami").json()
        return result

    def push(self, batch: PushRequest) -> PushResponse:
        response = self._request(
            "POST", "/v1/sync/push", content=encode(batch), headers={"content-type": "application/json"}
        )
        return _push_response.decode(response.content)

    def pull(self, since: int, limit: int = 1000, wait: float = 0) -> PullResponse:
        params: dict[str, Any] = {"since": since, "limit": limit}
        if wait:
            params["wait"] = wait
        timeout = httpx.Timeout(max(30.0, wait + 30.0))
        response = self._request("GET", "/v1/sync/pull", params=params, timeout=timeout)
        return _pull_response.decode(response.content)

    def conflicts(self, status: str = "open") -> list[Record]:
        return _records.decode(self._request("GET", "/v1/conflicts", params={"status": status}).content)

    def suggestions(self, status: str = "open") -> list[Record]:
        return _records.decode(self._request("GET", "/v1/suggestions", params={"status": status}).content)

    def resolve_conflict(self, conflict_id: str, resolution: str) -> tuple[Record, SyncItem | None]:
        response = self._request(
            "POST",
            "/v1/sync/conflict-resolve",
            json={"conflict_id": conflict_id, "resolution": resolution},
        )
        resolved = _resolved.decode(response.content)
        return resolved.record, resolved.item

    def events(self, since: int = 0, limit: int = 100, type: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"since": since, "limit": limit}
        if type:
            params["type"] = type
        result: list[dict[str, Any]] = self._request("GET", "/v1/events", params=params).json()
        return result
