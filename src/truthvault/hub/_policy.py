"""The hub's store of tenant policies: every version of each tenant's Cedar policy (text, who
set it, from which device, when), and one policy engine per tenant that follows it.

Portable SQL over :class:`~._sql.SqlDatabase`; a new version is numbered under the tenant
row's lock, so two hub processes setting a policy at once make two versions, never one twice.
"""

from __future__ import annotations

import threading
import time

from ..errors import Forbidden
from ..kernel import DEFAULT_POLICY, CedarPolicy, PolicyVersion, check_policy
from ..truth import TruthLevel, level_of_source
from ._auth import insert_security_event, iso_s
from ._sql import SqlDatabase
from .store import DeviceContext

__all__ = ["HubPolicies"]

_COLUMNS = "version, text, set_by, set_at"


class HubPolicies:
    """Tenant policies, versioned; :meth:`engine` gives a tenant's policy engine."""

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database
        self._engines: dict[str, CedarPolicy] = {}
        self._lock = threading.Lock()

    def current(self, tenant_id: str) -> PolicyVersion:
        """The tenant's newest version, else the default policy (version 0)."""
        pk = self._db.tenant_pk(tenant_id)
        with self._db.read() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM policy_versions WHERE tenant_pk = ? ORDER BY version DESC LIMIT 1",
                (pk,),
            ).fetchone()
        return PolicyVersion(0, DEFAULT_POLICY) if row is None else PolicyVersion(int(row[0]), *row[1:])

    def history(self, tenant_id: str) -> list[PolicyVersion]:
        """Every stored version of the tenant's policy, oldest first."""
        pk = self._db.tenant_pk(tenant_id)
        with self._db.read() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM policy_versions WHERE tenant_pk = ? ORDER BY version", (pk,)
            ).fetchall()
        return [PolicyVersion(int(r[0]), *r[1:]) for r in rows]

    def set(self, ctx: DeviceContext, text: str, set_by: str) -> PolicyVersion:
        """Store ``text`` as the tenant's next version, set by source ``set_by`` (level 1 only)
        from the device ``ctx``. InvalidPolicy (naming the line) or Forbidden: nothing stored."""
        if level_of_source(set_by) is not TruthLevel.USER:
            raise Forbidden(f"source: {set_by} may not set the policy: only the user (level 1) can")
        check_policy(text)
        pk, at = self._db.tenant_pk(ctx.tenant_id), iso_s(time.time())
        with self._db.write() as db:
            db.execute("SELECT pk FROM tenants WHERE pk = ?" + self._db.lock_clause, (pk,))
            row = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM policy_versions WHERE tenant_pk = ?", (pk,)
            ).fetchone()
            version = int(row[0]) + 1
            db.execute(
                "INSERT INTO policy_versions (tenant_pk, version, text, set_by, set_device, set_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (pk, version, text, set_by, ctx.device_id, at),
            )
            detail = {"version": version, "set_by": set_by}
            insert_security_event(db, "POLICY_SET", pk, ctx.device_id, detail, at)
        return PolicyVersion(version, text, set_by, at)

    def engine(self, tenant_id: str) -> CedarPolicy:
        """The tenant's policy engine with its current version in force (one read; the
        parsed policy and its decision cache are kept while the version stays)."""
        current = self.current(tenant_id)
        with self._lock:
            engine = self._engines.get(tenant_id)
            if engine is None:
                engine = self._engines[tenant_id] = CedarPolicy(current.text, version=current.version)
        engine.load(current.text, current.version)
        return engine
