"""Policy on Cedar: :class:`CedarPolicy` implements the kernel's :class:`~._ports.PolicyEngine`.

A request becomes a Cedar request (see :mod:`._policy_text` for what a policy sees), decided
against the built-in rules plus the tenant's policy. A decision names the policies that made
it and says why in words; a permit annotated
``@approval("pin"|"confirm"|"approve"|"two-devices")`` allows only after that approval. Decisions are cached per policy version: loading a new version
swaps the parsed policy and its cache together, so no decision outlives the policy it came
from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..truth import TruthLevel
from ._policy_compile import (
    CompiledPolicy,
    InvalidPolicy,
    PolicyRule,
    PolicyStore,
    PolicyVersion,
    _cedar,
    compile_policy,
)
from ._policy_text import APPROVAL_KINDS, DEFAULT_POLICY, HARD_VERBS
from ._ports import PolicyDecision, PolicyRequest
from ._types import Actor, Risk, Target

__all__ = ["CedarPolicy", "StoredPolicy", "cedar_request", "role_of"]

_ROLES = {TruthLevel.USER: "owner", TruthLevel.AUTOMATION: "automation"}
_RESOURCE = {"type": "Targets", "id": "request"}
#: decisions a policy version keeps at most (then the cache starts again)
CACHE_SIZE = 4096


def role_of(level: int) -> str:
    """The role a truth level plays in policy: owner (1), automation (2), assistant (3-5)."""
    return _ROLES.get(TruthLevel(level), "assistant")


def _channel(actor: Actor) -> str:
    return actor.source if actor.level is TruthLevel.USER else actor.level.prefix


def _targets(targets: tuple[Target, ...]) -> tuple[int, int, tuple[str, ...]]:
    """What policy sees of the targets: the lowest level held (0: none), count, types."""
    if not targets:
        return 0, 0, ()
    levels = [t.level for t in targets if t.level is not None]
    types = tuple(sorted({t.entity_type for t in targets if t.entity_type}))
    return (min(levels) if levels else 0), len(targets), types


def decision_key(request: PolicyRequest) -> str:
    """What a decision depends on, as text: the key under which a store may keep it across
    processes (for one policy version; entity ids are never part of it)."""
    actor = request.actor
    parts = [
        actor.source,
        actor.device_id,
        request.action,
        str(request.risk),
        list(_targets(request.targets)),
    ]
    return json.dumps(parts, separators=(",", ":"))


def cedar_request(
    request: PolicyRequest, hard: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Cedar request and entities for ``request`` (``hard``: more action names that destroy
    for good, beside those whose verb is one of HARD_VERBS)."""
    actor, name = request.actor, request.action
    domain, _, rest = name.partition(".")
    verb = rest.split(".", 1)[0]
    level, count, types = _targets(request.targets)
    principal = {"type": "Actor", "id": actor.source}
    entities = [
        {
            "uid": principal,
            "attrs": {
                "level": int(actor.level),
                "source": actor.source,
                "channel": _channel(actor),
                "device": actor.device_id,
            },
            "parents": [{"type": "Role", "id": role_of(actor.level)}],
        },
        {"uid": _RESOURCE, "attrs": {"level": level, "count": count, "types": list(types)}, "parents": []},
    ]
    context = {
        "domain": domain,
        "verb": verb,
        "risk": str(request.risk),
        "hard": verb in HARD_VERBS or name in hard or name.endswith(".hard"),
    }
    cedar = {"principal": principal, "action": {"type": "Action", "id": name}, "resource": _RESOURCE}
    return {**cedar, "context": context}, entities


def _said(rules: list[PolicyRule]) -> str:
    return "; ".join(f"{r.id}: {r.reason}" if r.reason else r.id for r in rules)


def _number(cedar_id: str) -> int:
    return int(cedar_id.removeprefix("policy"))


def _decision(request: PolicyRequest, result: Any, policy: CompiledPolicy) -> PolicyDecision:
    # in the order of the text (Cedar lists them in no fixed order)
    found = sorted((p for p in result.diagnostics.reasons if p in policy.by_cedar_id), key=_number)
    rules = [policy.by_cedar_id[p] for p in found]
    erred = result.diagnostics.errors
    note = f" ({len(erred)} policies could not be evaluated: {erred[0]})" if erred else ""
    who = f"{request.actor.source} running {request.action} ({request.risk})"
    if result.allowed:
        outright = [r for r in rules if r.approval is None]
        if outright:
            return PolicyDecision(True, None, tuple(r.id for r in outright), f"allowed by {_said(outright)}")
        # every permit that allowed it asks for an approval: any one of them will do
        kind = min((r.approval for r in rules if r.approval), key=APPROVAL_KINDS.index)
        return PolicyDecision(
            True, kind, tuple(r.id for r in rules), f"allowed after approval ({kind}), by {_said(rules)}"
        )
    forbids = [r for r in rules if r.effect == "forbid"]
    if forbids:
        return PolicyDecision(
            False, None, tuple(r.id for r in forbids), f"forbidden by {_said(forbids)}{note}"
        )
    return PolicyDecision(False, None, (), f"no policy permits {who}{note}")


class _State:
    """A policy version and the decisions made under it: swapped as one."""

    __slots__ = ("cache", "policy")

    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy
        self.cache: dict[tuple[Any, ...], PolicyDecision] = {}


class CedarPolicy:
    """The kernel's policy engine on Cedar, for one tenant: the built-in rules plus ``text``
    (the default policy when None) at ``version``.

    ``hard_actions`` names actions that destroy for good beyond those whose verb is one of
    :data:`HARD_VERBS` (purge, destroy, erase, hard_delete) or whose name ends in ``.hard``.
    """

    def __init__(
        self,
        text: str | None = None,
        *,
        version: int = 0,
        hard_actions: Iterable[str] = (),
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._hard = frozenset(hard_actions)
        self._cache_size = cache_size
        self._state = _State(compile_policy(DEFAULT_POLICY if text is None else text, version))

    @property
    def policy(self) -> CompiledPolicy:
        """The policy in force."""
        return self._state.policy

    @property
    def version(self) -> int:
        return self._state.policy.version

    def load(self, text: str, version: int) -> None:
        """Put ``text`` (as ``version``) in force; InvalidPolicy (and the old one kept) if bad.

        The parsed policy and an empty cache replace the old pair at once, so a decision made
        under the old version is never served under the new one.
        """
        current = self._state.policy
        if current.version == version and current.text == text:
            return
        self._state = _State(compile_policy(text, version))

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        """May ``request.actor`` run the action on its targets? (cached per policy version)"""
        state = self._state
        actor = request.actor
        key = (actor.source, actor.device_id, request.action, request.risk, _targets(request.targets))
        found = state.cache.get(key)
        if found is not None:
            return found
        decision = self.evaluate(request, state.policy)
        if len(state.cache) >= self._cache_size:
            state.cache.clear()
        state.cache[key] = decision
        return decision

    def evaluate(self, request: PolicyRequest, policy: CompiledPolicy | None = None) -> PolicyDecision:
        """Decide ``request`` with Cedar, bypassing the cache."""
        policy = policy or self._state.policy
        cedar, entities = cedar_request(request, self._hard)
        result = _cedar().is_authorized(cedar, policy.policy_set, entities)
        return _decision(request, result, policy)

    def cached(self) -> int:
        """How many decisions the cache holds for the version in force."""
        return len(self._state.cache)


class StoredPolicy:
    """A :class:`CedarPolicy` that follows a :class:`PolicyStore`: :meth:`refresh` reads the
    version in force (call it once per request or command, not per decision)."""

    def __init__(self, store: PolicyStore, *, hard_actions: Iterable[str] = ()) -> None:
        self.store = store
        current = store.current()
        self.engine = CedarPolicy(current.text, version=current.version, hard_actions=hard_actions)

    def refresh(self) -> PolicyVersion:
        current = self.store.current()
        self.engine.load(current.text, current.version)
        return current

    def set(self, text: str, set_by: str) -> PolicyVersion:
        """Store ``text`` as a new version (InvalidPolicy: nothing stored) and put it in force."""
        stored = self.store.set(text, set_by)
        self.engine.load(stored.text, stored.version)
        return stored

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        return self.engine.decide(request)


#: the requests a new policy is tried on before it is stored: every kind of actor, risk and
#: target level, so that a rule Cedar cannot evaluate (an attribute no request has, a type
#: error) is refused when it is set instead of refusing every action later
_PROBE_SOURCES = (
    "user:cli", "user:voice", "user:mobile", "automation:probe", "ai-local:probe", "ai-lan:probe",
    "ai-cloud:probe",
)  # fmt: skip
_PROBE_TARGETS: tuple[tuple[Target, ...], ...] = (
    (),
    (Target("probe", "note", 1, 1),),
    (Target("probe", "note", 1, 3),),
)


def probe_policy(policy: CompiledPolicy) -> None:
    """InvalidPolicy naming the first tenant rule that Cedar cannot evaluate for some ordinary
    request (it would leave every such request to the other rules: with the tenant's only permit
    erring, every action but setting the policy is refused)."""
    for source in _PROBE_SOURCES:
        actor = Actor(source, "probe-device", "probe-tenant")
        for risk in Risk:
            for targets in _PROBE_TARGETS:
                request = PolicyRequest(actor, "entity.delete", risk, targets)
                cedar, entities = cedar_request(request, frozenset())
                result = _cedar().is_authorized(cedar, policy.policy_set, entities)
                for error in result.diagnostics.errors:
                    text = str(error)
                    rule = next((r for cid, r in policy.by_cedar_id.items() if f"`{cid}`" in text), None)
                    name = rule.id if rule else "a rule"
                    raise InvalidPolicy(
                        f"{name} cannot be evaluated for {source} ({risk}): {text}",
                        hint="a rule may read only the attributes 'truthvault policy show' lists",
                    )
