"""The seals a device puts on the approval decisions it takes, and checks on those it redeems
(the kernel's :class:`~truthvault.kernel.ApprovalSealer`, see :mod:`truthvault.kernel._approval_seal`).

- A **local-first** tenant's devices seal under a key derived from the tenant keyring's current
  data key (every device of the tenant holds it, the hub never does), named by its key id: a
  decision sealed under a key rotated away since still checks (the keyring keeps every key).
- Before the vault holds the keyring (a vault joined to no hub, or not yet given the keyring)
  it seals under its own random key (``device``): only this device checks those, which is all
  it needs for the requests it asked and decided itself.
- A **cloud-first** tenant's devices share no key the hub lacks (the hub reads that tenant's
  data anyway): decisions are not sealed, and the hub's word is taken, as for its own actions.
"""

from __future__ import annotations

from ..crypto import approval_seal_key
from ..errors import ConflictState
from ..kernel import Approval, BrokerRequest, KeyedSeal, seal_key_id
from ._db import VaultDB
from ._input_key import DEVICE_KID, VaultKeys

__all__ = ["VaultApprovalSeal"]


class VaultApprovalSeal:
    """Seals and checks approval decisions with one vault's keys (see the module)."""

    __slots__ = ("_keyed", "_keys", "_version")

    def __init__(self, db: VaultDB) -> None:
        self._keys = VaultKeys(db)
        self._version = -1
        self._keyed: dict[str, KeyedSeal] = {}

    def seal(self, request: BrokerRequest) -> str | None:
        """The decided request's seal under the current key; None for a cloud-first tenant.
        ConflictState for another device's request before this one holds the tenant keyring:
        the asker could not check a seal under this device's own key."""
        sealer = self._current(request)
        return None if sealer is None else sealer.seal(request)

    def seal_approval(self, request: BrokerRequest, approval: Approval) -> str | None:
        """This device's ``approval`` of a request that needs several, sealed as :meth:`seal`."""
        sealer = self._current(request)
        return None if sealer is None else sealer.seal_approval(request, approval)

    def check_approval(self, request: BrokerRequest, approval: Approval) -> bool:
        """Does one device's approval carry a seal made under a key this vault holds?"""
        keys = self._fresh()
        if keys.cloud_first:
            return True
        sealer = self._held(keys, seal_key_id(approval.seal))
        return sealer is not None and sealer.check_approval(request, approval)

    def _current(self, request: BrokerRequest) -> KeyedSeal | None:
        keys = self._fresh()
        if keys.cloud_first:
            return None
        if keys.current == DEVICE_KID and request.device_id != keys.device_id:
            raise ConflictState(
                f"request {request.id} was asked on another device, and this one does not hold the "
                "tenant keyring yet: that device could not check a decision taken here",
                hint="run 'truthvault sync now' (the keyring comes from another device), then decide it",
            )
        sealer = self._sealer(keys.current)
        assert sealer is not None  # the current key and the device's own are always held
        return sealer

    def check(self, request: BrokerRequest) -> bool:
        """Does the decided request carry a seal made under a key this vault holds? (Always for
        a cloud-first tenant: there is no key to check it with.)"""
        keys = self._fresh()
        if keys.cloud_first:
            return True
        sealer = self._held(keys, seal_key_id(request.seal))
        return sealer is not None and sealer.check(request)

    def _held(self, keys: VaultKeys, kid: str | None) -> KeyedSeal | None:
        """The seal under the key named ``kid``, if this vault holds it."""
        if kid is None:
            return None
        sealer = self._sealer(kid)
        if sealer is None:
            keys.refresh()  # perhaps the key came in a moment ago (another process took it in)
            self._rebuilt(keys)
            sealer = self._sealer(kid)
        return sealer

    def _fresh(self) -> VaultKeys:
        keys = self._keys
        keys.fresh()
        self._rebuilt(keys)
        return keys

    def _rebuilt(self, keys: VaultKeys) -> None:
        if keys.version != self._version:
            self._keyed, self._version = {}, keys.version

    def _sealer(self, kid: str) -> KeyedSeal | None:
        sealer = self._keyed.get(kid)
        if sealer is None:
            secret = self._keys.secret(kid)
            if secret is None:
                return None
            sealer = self._keyed[kid] = KeyedSeal(approval_seal_key(*secret), kid)
        return sealer
