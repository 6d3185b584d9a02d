"""Approval seals: a decision a device can check was taken by one of the user's devices.

A request asked on one device may be decided on another and travels through the hub. Without a
seal the asking device takes the hub's word that the user approved (and that a PIN was checked):
a hub operator could approve an AI's or a voice actor's destructive action. A decision therefore
carries a **seal**, ``<key id>:<64 hex>``: HMAC-SHA256 under a key only the tenant's devices hold
(derived from the tenant keyring's data key, see :func:`~truthvault.crypto.approval_seal_key`)
over :func:`seal_message`, the request's fixed fields and the decision. The asking device checks
it before it redeems the approval.

What is sealed: what was asked (id, kind, action, risk, asker, tenant, input hash, why and on
which targets, so that the hub cannot show the deciding device another reason than the one
asked) and the decision (approved or denied, by whom, on which device, when, and a denial's
reason). Not the expiry: the hub caps a decided request's expiry, and the redeeming device
enforces its own window from the sealed ``decided_at``.

A request that needs approvals from several devices (``needed`` > 1, policy's
``@approval("two-devices")``) carries one seal per approval, each made on the approving device
over :func:`approval_message`: what was asked, how many approvals it needs, and that approval's
approver, **device id** and time. The hub therefore cannot add an approval, nor replay one under
another device's id: the redeeming device counts only approvals whose seals check, from distinct
devices. Such a request's denial is sealed as any decision is, over :func:`seal_message`, which
then includes ``needed`` too.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Protocol

import msgspec

if TYPE_CHECKING:
    from ._broker_store import Approval, BrokerRequest

__all__ = ["ApprovalSealer", "KeyedSeal", "approval_message", "seal_key_id", "seal_message"]

_encode = msgspec.json.Encoder().encode
#: what a seal is over, so that it never equals a MAC of anything else under the same key
_LABEL = "truthvault approval seal v1"
_LABEL_ONE_OF = "truthvault approval seal v1: one device's approval of several"


class ApprovalSealer(Protocol):
    """Seals the decisions a device takes and checks the ones it redeems or takes in."""

    def seal(self, request: BrokerRequest) -> str | None:
        """The seal of a decided request (None where decisions are not sealed: cloud-first)."""
        ...

    def check(self, request: BrokerRequest) -> bool:
        """Does the decided request's seal check here (True where decisions are not sealed)?"""
        ...

    def seal_approval(self, request: BrokerRequest, approval: Approval) -> str | None:
        """The seal of one device's ``approval`` of a request that needs several (None where
        decisions are not sealed)."""
        ...

    def check_approval(self, request: BrokerRequest, approval: Approval) -> bool:
        """Does ``approval.seal`` check here for ``request`` (True where nothing is sealed)?"""
        ...


def seal_message(request: BrokerRequest) -> bytes:
    """The canonical bytes a decision's seal is over (a JSON list; see the module).

    A used or expired approval was approved: its seal is over "approved". The expiry is not in
    it (the hub caps it), nor the request's status beyond the decision."""
    decision = "denied" if request.status == "denied" else "approved"
    sealed = [
        _LABEL,
        *_asked(request),
        decision,
        request.decided_by,
        request.decided_device,
        request.decided_at,
        request.deny_reason if decision == "denied" else None,
    ]
    if request.is_multi:  # only then: a single approval's seal stays what it always was
        sealed.append(request.needed)
    return _encode(sealed)


def _asked(request: BrokerRequest) -> list[object]:
    """What was asked, as every seal names it."""
    return [
        request.id,
        request.kind,
        request.action,
        request.risk,
        request.source,
        request.device_id,
        request.tenant_id,
        request.input_hash,
        request.reason,
        [[t.entity_id, t.entity_type, t.version, t.level] for t in request.targets],
    ]


def approval_message(request: BrokerRequest, approval: Approval) -> bytes:
    """The canonical bytes one device's approval of a request that needs several is sealed
    over: what was asked, how many approvals it needs, and the approver, its device and when."""
    return _encode(
        [
            _LABEL_ONE_OF,
            *_asked(request),
            request.needed,
            "approved",
            approval.by,
            approval.device,
            approval.at,
        ]
    )


def seal_key_id(seal: str | None) -> str | None:
    """The id of the key a seal names; None for no seal or a malformed one."""
    if not seal:
        return None
    kid, sep, mac = seal.rpartition(":")
    return kid if sep and kid and len(mac) == 64 else None


class KeyedSeal:
    """HMAC-SHA256 seals under ``key`` (32 bytes), named ``kid`` (its inner and outer states
    made once, as :class:`~._input_hash.KeyedInputHash` does)."""

    __slots__ = ("_inner", "_outer", "kid")

    def __init__(self, key: bytes, kid: str) -> None:
        if len(key) != 32 or not kid or ":" in kid:
            raise ValueError("a seal key is 32 bytes with an id without ':'")
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self.kid = kid

    def __repr__(self) -> str:
        return f"KeyedSeal(kid={self.kid!r})"  # never the key

    def _mac(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return f"{self.kid}:{outer.hexdigest()}"

    def seal(self, request: BrokerRequest) -> str:
        """``<kid>:<hex HMAC>`` of the decided request."""
        return self._mac(seal_message(request))

    def check(self, request: BrokerRequest) -> bool:
        """Is ``request.seal`` this key's seal of the request (in constant time)?"""
        return request.seal is not None and hmac.compare_digest(request.seal, self.seal(request))

    def seal_approval(self, request: BrokerRequest, approval: Approval) -> str:
        """``<kid>:<hex HMAC>`` of one device's approval of ``request``."""
        return self._mac(approval_message(request, approval))

    def check_approval(self, request: BrokerRequest, approval: Approval) -> bool:
        """Is ``approval.seal`` this key's seal of it (in constant time)?"""
        return approval.seal is not None and hmac.compare_digest(
            approval.seal, self.seal_approval(request, approval)
        )
