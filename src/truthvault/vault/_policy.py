"""The tenant's policy as this vault holds it: versioned, set here (before joining a hub) or
synced from the hub (after), so every device of a tenant decides with the same rules."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import Forbidden
from ..kernel import DEFAULT_POLICY, PolicyVersion, StoredPolicy, check_policy
from ..truth import TruthLevel, level_of_source
from ._db import VaultDB

if TYPE_CHECKING:
    from ._vault import Vault

__all__ = ["VaultPolicies", "check_setter", "vault_policies"]

_COLUMNS = "version, text, set_by, set_at"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_setter(set_by: str) -> None:
    """Only the user (level 1) sets a policy; Forbidden for anyone else."""
    if level_of_source(set_by) is not TruthLevel.USER:
        raise Forbidden(f"{set_by} may not set the policy: only the user (level 1) can")


class VaultPolicies:
    """The policy versions of this vault's tenant (a :class:`~truthvault.kernel.PolicyStore`)."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db

    @property
    def tenant_id(self) -> str:
        return self._db.meta_str("tenant_id")

    def current(self) -> PolicyVersion:
        """The tenant's newest version, else the default policy (version 0)."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM policy_versions WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1",
                (self.tenant_id,),
            ).fetchone()
        return PolicyVersion(0, DEFAULT_POLICY) if row is None else PolicyVersion(*row)

    def history(self) -> list[PolicyVersion]:
        """Every version this vault held of the tenant's policy, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM policy_versions WHERE tenant_id = ? ORDER BY seq", (self.tenant_id,)
            ).fetchall()
        return [PolicyVersion(*row) for row in rows]

    def set(self, text: str, set_by: str) -> PolicyVersion:
        """Store ``text`` as the next version (a vault that has not joined a hub; a joined one
        takes the version the hub gave, see :meth:`adopt`). InvalidPolicy or Forbidden: nothing
        stored."""
        check_setter(set_by)
        check_policy(text)
        with self._db.tx() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM policy_versions WHERE tenant_id = ?", (self.tenant_id,)
            ).fetchone()
            stored = PolicyVersion(int(row[0]) + 1, text, set_by, _now())
            self._insert(stored, "local")
        return stored

    def adopt(self, version: PolicyVersion) -> bool:
        """Take the hub's version in force unless it is the one held; True if it changed.

        Checked first (InvalidPolicy: nothing stored), so a version this device cannot read
        never replaces the one it decides with.
        """
        if self._holds(version):
            return False
        check_policy(version.text, evaluate=False)  # the hub's version stands: evaluated where it was set
        with self._db.tx():
            if self._holds(version):
                return False
            self._insert(version, "hub")
        return True

    def _holds(self, version: PolicyVersion) -> bool:
        held = self.current()
        return (held.version, held.text) == (version.version, version.text)

    def _insert(self, version: PolicyVersion, origin: str) -> None:
        self._db.local_epoch += 1
        self._db.conn.execute(
            "INSERT INTO policy_versions (tenant_id, version, text, set_by, set_at, origin) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self.tenant_id, version.version, version.text, version.set_by, version.set_at, origin),
        )

    def engine(self) -> StoredPolicy:
        """A policy engine that follows this vault's policy (``refresh()`` after a sync)."""
        return StoredPolicy(self)


def vault_policies(vault: Vault) -> VaultPolicies:
    """The policy versions of ``vault``'s tenant."""
    return VaultPolicies(vault._db)
