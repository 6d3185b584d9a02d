"""The device's HTTP transport to a hub: one method per endpoint, errors as TruthvaultError."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import msgspec

from .. import errors, kernel
from ..crypto import DeviceKeys, sign_request
from ..model import PullResponse, PushRequest, PushResponse, Record, Refused, SyncItem, decode_pull, encode
from ._tls import cert_fingerprint, pinned_context, presented_fingerprint

__all__ = ["HubClient", "SigningAuth", "check_hub_url", "enroll"]

_T = TypeVar("_T")

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
        errors.HubReset,
        errors.PayloadTooLarge,
        errors.StorageError,
        errors.BadSignature,
        errors.StaleRequest,
        errors.ReplayedRequest,
        errors.MissingCredentials,
        errors.UnknownDevice,
        errors.TokenExpired,
        errors.InvalidEnrolCode,
        errors.DeviceRevoked,
        errors.RateLimited,
        errors.CertificateChanged,
        # a hub action's structured errors (see truthvault.kernel)
        kernel.ValidationFailed,
        kernel.ActionForbidden,
        kernel.ActionNotFound,
        kernel.ActionConflict,
        kernel.ApprovalRequired,
        kernel.AuditBatchTaken,
    )
}

_push_response = msgspec.json.Decoder(PushResponse)
_records = msgspec.json.Decoder(list[Record])


class _Resolved(msgspec.Struct):
    record: Record
    item: SyncItem | None = None


_resolved = msgspec.json.Decoder(_Resolved)


def check_hub_url(url: str) -> str:
    """``url`` without a trailing slash, once it is an http:// or https:// URL with a host.

    Without a scheme, ``127.0.0.1:8787`` would fail only when first used, as a hub that
    cannot be reached; the mistake is in the URL, so say so at once.
    """
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise errors.InvalidInput(
            f"the hub URL {url!r} needs http:// or https://",
            hint=f"e.g. http://{(rest if sep else url).rstrip('/') or '127.0.0.1:8787'}",
        )
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as exc:
        raise errors.InvalidInput(f"the hub URL {url!r} is not valid: {exc}") from None
    if not host:
        raise errors.InvalidInput(f"the hub URL {url!r} names no host", hint="e.g. http://127.0.0.1:8787")
    return url.rstrip("/")


class SigningAuth(httpx.Auth):
    """Signs every request as one device (method, path, raw query, body, time, nonce)."""

    requires_request_body = True

    def __init__(self, keys: DeviceKeys, device_id: str) -> None:
        self.keys = keys
        self.device_id = device_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        headers = sign_request(
            self.keys,
            self.device_id,
            request.method,
            url.path,
            url.query.decode("ascii"),
            request.content,
            time.time(),
        )
        request.headers.update(headers)
        yield request


class HubClient:
    """Talks to one hub as one device: signing with ``keys`` (an enrolled device) or with a
    bearer ``token``. ``transport`` lets tests pass an ASGI transport."""

    #: The longest this client waits in all on one request the hub answers 429.
    RATE_LIMIT_PATIENCE_S = 30.0

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        keys: DeviceKeys | None = None,
        device_id: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        cert_pem: str | None = None,
    ) -> None:
        self.url = check_hub_url(url)
        self.cert_pem = cert_pem
        verify: ssl.SSLContext | bool = True
        if cert_pem:
            verify = pinned_context(cert_pem, httpx.URL(self.url).host)
        elif self.url.lower().startswith("http://"):
            # No TLS to a plain-HTTP hub (redirects are not followed): loading the CA bundle for
            # it took 40-110 ms of every sync command's start-up on the project's VM.
            verify = False
        headers = {"user-agent": "truthvault"}
        auth: httpx.Auth | None = None
        if keys is not None:
            if not device_id:
                raise errors.InvalidInput("signing requests needs the device id")
            auth = SigningAuth(keys, device_id)
        elif token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, auth=auth, timeout=timeout, transport=transport, verify=verify
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # A 429 is the hub asking this device to slow down, not a failure of the sync: wait as
        # long as Retry-After says and send again (every request here is safe to repeat: a
        # push is idempotent, and signing gives the new attempt a fresh nonce), but give up
        # once the waits would pass RATE_LIMIT_PATIENCE_S, so a hub that keeps refusing is
        # reported, not waited on forever.
        waited = 0.0
        while True:
            try:
                return self._send(method, path, **kwargs)
            except errors.RateLimited as exc:
                if waited + exc.retry_after_s > self.RATE_LIMIT_PATIENCE_S:
                    raise
                time.sleep(exc.retry_after_s)
                waited += exc.retry_after_s

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise errors.HubUnavailable(
                f"the hub at {self.url} did not answer in time", hint="is it running? try again"
            ) from None
        except httpx.TransportError as exc:
            if self.cert_pem and _cert_refused(exc):
                raise self._cert_error() from None
            raise errors.HubUnavailable(
                f"cannot reach the hub at {self.url} ({type(exc).__name__})",
                hint="start it with 'truthvault hub serve' or check the URL",
            ) from None
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _cert_error(self) -> errors.TruthvaultError:
        """Why the pinned certificate refused the hub: another certificate, or this one is unfit."""
        assert self.cert_pem is not None
        pinned = cert_fingerprint(self.cert_pem)
        now = presented_fingerprint(self.url)
        if now == pinned:
            return errors.HubUnavailable(
                f"the hub at {self.url} presents the pinned certificate, but TLS refused it "
                "(expired, or not valid for this host name)",
                hint="ask the hub's operator to renew it",
            )
        return errors.CertificateChanged(
            f"the hub's certificate changed: pinned SHA256 {pinned}, the hub at {self.url} "
            f"presents {now or 'nothing readable'}; refusing to talk to it",
            hint="someone may be intercepting the connection; if the hub's operator replaced the "
            "certificate, get its fingerprint from them ('hub serve' prints it) and run "
            "'truthvault hub repin FINGERPRINT'",
        )

    def _error(self, response: httpx.Response) -> errors.TruthvaultError:
        try:
            body = response.json()["error"]
            code, message, hint = body["code"], body["message"], body.get("hint")
        except (ValueError, KeyError, TypeError):
            return errors.HubUnavailable(f"the hub answered {response.status_code} without an error body")
        cls = _BY_CODE.get(code, errors.TruthvaultError)
        exc = cls(f"hub: {message}", hint=hint)
        if isinstance(body.get("item"), int):
            exc.item = body["item"]
        if isinstance(exc, kernel.ActionError):
            exc.field, exc.request_id = body.get("field"), body.get("request_id")
        if cls is errors.TruthvaultError:
            exc.code, exc.status = code, response.status_code
        if isinstance(exc, kernel.AuditBatchTaken):
            next_seq, held = body.get("next_seq"), body.get("held")
            exc.next_seq = next_seq if isinstance(next_seq, int) else 0
            exc.held = tuple(i for i in held if isinstance(i, int)) if isinstance(held, list) else ()
        if isinstance(exc, errors.RateLimited):
            exc.retry_after_s = float(response.headers.get("retry-after") or 1)
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

    def pull(
        self,
        since: int,
        limit: int = 1000,
        wait: float = 0,
        tag: str | None = None,
        refused: list[Refused] | None = None,
        tag_seq: int | None = None,
    ) -> PullResponse:
        """A page of changes after ``since``; ``tag`` is the tag of the latest commit this device
        knows of, given for sequence number ``tag_seq`` (by default ``since``). What of the page
        cannot be taken in is left out and added to ``refused`` (given: it must be kept aside,
        see :func:`truthvault.model.decode_pull`); without ``refused`` such a page fails."""
        params: dict[str, Any] = {"since": since, "limit": limit}
        if wait:
            params["wait"] = wait
        if tag:
            params["tag"] = tag
            if tag_seq is not None:
                params["tag_seq"] = tag_seq
        timeout = httpx.Timeout(max(30.0, wait + 30.0))
        response = self._request("GET", "/v1/sync/pull", params=params, timeout=timeout)
        page, bad = decode_pull(response.content)
        if bad and refused is None:
            raise errors.InvalidInput(
                f"the hub sent {len(bad)} item(s) that cannot be taken in: {bad[0].reason}"
            )
        if refused is not None:
            refused.extend(bad)
        return page

    def contracts(self, since: int = 0) -> dict[str, Any]:
        """The tenant's entity contract versions after marker ``since`` (``GET /v1/contracts``)."""
        result: dict[str, Any] = self._request("GET", "/v1/contracts", params={"since": since}).json()
        return result

    def add_contract(self, entity_type: str, schema: Any, *, major: bool, source: str) -> dict[str, Any]:
        """Add the next version of a type's contract (``POST /v1/contracts/{type}``)."""
        body = {"schema": schema, "major": major, "source": source}
        result: dict[str, Any] = self._request("POST", f"/v1/contracts/{entity_type}", json=body).json()
        return result

    def report_contract_use(
        self, held: dict[str, list[int]], status: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Tell the hub the contract versions this device writes under (``PUT /v1/contract-use``),
        with ``status`` what else it reports (``app_version``, ``last_sync_at``, ``pending``,
        ``parked``)."""
        body = {"held": held, **{k: v for k, v in (status or {}).items() if v is not None}}
        result: dict[str, Any] = self._request("PUT", "/v1/contract-use", json=body).json()
        return result

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

    def events(
        self, since: int = 0, limit: int = 100, type: str | None = None, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"since": since, "limit": limit}
        if type:
            params["type"] = type
        if newest_first:
            params["order"] = "newest"
        result: list[dict[str, Any]] = self._request("GET", "/v1/events", params=params).json()
        return result

    # -- devices -------------------------------------------------------------------
    def enroll(self, code: str, device_name: str, keys: DeviceKeys) -> dict[str, Any]:
        """Register this device's public keys with a one-time code (needs no credentials)."""
        bundle = keys.public_bundle()
        body = {
            "code": code,
            "device_name": device_name,
            "sign_public": bundle["sign"],
            "box_public": bundle["box"],
        }
        result: dict[str, Any] = self._request("POST", "/v1/enroll", json=body).json()
        return result

    def recovery_for_code(self, code: str) -> dict[str, Any]:
        """The recovery envelope of an unspent enrolment code's tenant (needs no credentials;
        the code stays unspent): tenant_name and blob (None when no passphrase is set)."""
        result: dict[str, Any] = self._request("POST", "/v1/enroll/recovery", json={"code": code}).json()
        return result

    def devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/v1/devices").json()
        return result

    def revoke_device(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", "/v1/devices/revoke", json={"name": name}).json()
        return result

    def rotate_key(self, new_keys: DeviceKeys, grace_s: float) -> dict[str, Any]:
        """Register new keys (this request is signed with the current ones)."""
        bundle = new_keys.public_bundle()
        body = {"sign_public": bundle["sign"], "box_public": bundle["box"], "grace_seconds": grace_s}
        result: dict[str, Any] = self._request("POST", "/v1/devices/rotate-key", json=body).json()
        return result

    def access_token(self) -> dict[str, str]:
        """A short-lived bearer token for this device (the request must be signed)."""
        result: dict[str, str] = self._request("POST", "/v1/auth/token").json()
        return result


def _cert_refused(exc: BaseException) -> bool:
    """Whether a transport error comes from TLS refusing the server's certificate."""
    cause: BaseException | None = exc
    for _ in range(8):  # httpx wraps httpcore wraps ssl; a bound guards against a cycle
        if cause is None:
            return False
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def pages(
    client: HubClient,
    since: int,
    limit: int = 1000,
    wait: float = 0,
    mark: tuple[int, str] | None = None,
    then: Callable[[PullResponse, list[Refused]], _T] | None = None,
) -> Iterator[tuple[PullResponse, list[Refused], _T | None]]:
    """Pull pages from ``since`` with ``client.pull`` until one says the hub has no more; each
    with what of it could not be decoded (to keep aside) and what ``then`` made of the two.

    Each next page is fetched, and given to ``then``, in a thread while the caller works on
    the current one, so a device's checking and applying overlap the hub's reading and the
    transfer. A caller that stops early waits for the one fetch in flight.
    """

    def fetch(
        cursor: int, wait: float, tag: str | None, tag_seq: int | None
    ) -> tuple[PullResponse, list[Refused], _T | None]:
        refused: list[Refused] = []
        page = client.pull(cursor, limit, wait, tag, refused, tag_seq)
        return page, refused, None if then is None else then(page, refused)

    with ThreadPoolExecutor(1, thread_name_prefix="truthvault-pull") as ahead:
        current = fetch(since, wait, None, None) if mark is None else fetch(since, wait, mark[1], mark[0])
        while True:
            page = current[0]
            following = ahead.submit(fetch, page.cursor, 0, page.tag, None) if page.has_more else None
            yield current
            if following is None:
                return
            current = following.result()


def enroll(url: str, code: str, device_name: str, keys: DeviceKeys, **kwargs: Any) -> dict[str, Any]:
    """Enrol a device at the hub at ``url``: tenant_id, tenant_name, vault_mode, device_id."""
    with HubClient(url, **kwargs) as client:
        return client.enroll(code, device_name, keys)
