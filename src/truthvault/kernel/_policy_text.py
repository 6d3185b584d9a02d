"""The Cedar text of policy: the built-in rules no tenant policy can override, and the default
tenant policy used until a tenant sets its own.

What a policy sees of a request (see :func:`~._policy.cedar_request`):

- ``principal``: ``Actor::"<source>"``, in ``Role::"owner"`` (level 1), ``Role::"automation"``
  (level 2) or ``Role::"assistant"`` (levels 3-5); attributes ``level`` (1-5), ``source``
  (``user:voice``, ``automation:r1``, ``ai-cloud:openai/gpt``), ``channel`` (the source for a
  user, ``user:voice``; the source's kind for the others, ``automation``, ``ai-cloud``) and
  ``device`` (the device id, ``""`` on the hub).
- ``action``: ``Action::"<name>"`` (``notes.create``).
- ``resource``: ``Targets::"request"``, what the action touches: ``level`` (the lowest truth
  level any target holds, so 1 if any is user truth; 0 when none holds one yet), ``count`` and
  ``types`` (a set of entity types).
- ``context``: ``domain`` and ``verb`` of the action name, ``risk`` (read, write, destructive,
  security) and ``hard`` (the action destroys for good: a purge, not a tombstone).
"""

from __future__ import annotations

__all__ = [
    "APPROVAL_KINDS",
    "BUILTIN_POLICY",
    "DEFAULT_POLICY",
    "HARD_VERBS",
    "SECURITY_DOMAINS",
]

#: the approvals a permit can ask for, weakest first: ``confirm`` (a fresh confirmation on the
#: device that asks), ``approve`` (a level-1 decision from any of the user's devices), ``pin``
#: (the user's PIN), ``two-devices`` (level-1 approvals from two different devices of the user,
#: each sealed on its device; the asking device may be one of them)
APPROVAL_KINDS = ("confirm", "approve", "pin", "two-devices")

#: action domains that are security whatever their risk: devices, keys, the tenant and its
#: members, policy, and approval decisions
SECURITY_DOMAINS = ("device", "keys", "tenant", "member", "policy", "approval")

#: verbs of actions that destroy for good (a plain ``delete`` leaves a tombstone and, from a
#: lower level against user truth, becomes a suggestion)
HARD_VERBS = ("purge", "destroy", "erase", "hard_delete")

_SECURITY = 'context.risk == "security" || ' + "[{}].contains(context.domain)".format(
    ", ".join(f'"{d}"' for d in SECURITY_DOMAINS)
)

#: Always in force, before any tenant policy: Cedar's forbid beats every permit. One permit
#: too: the user may always set the policy, so that a policy that permits too little (a tenant
#: forbid can still say otherwise, on purpose) never locks the user out of fixing it.
BUILTIN_POLICY = f"""\
@id("builtin.ai-no-security")
@reason("AI (levels 3-5) never runs a security action (devices, keys, tenant, members, policy, approvals)")
forbid (principal, action, resource)
when {{ principal.level >= 3 && ({_SECURITY}) }};

@id("builtin.automation-no-security")
@reason("automations (level 2) never change membership or security")
forbid (principal, action, resource)
when {{ principal.level == 2 && ({_SECURITY}) }};

@id("builtin.automation-no-hard-delete-user")
@reason("automations (level 2) never hard-delete your (level-1) entities")
forbid (principal, action, resource)
when {{ principal.level == 2 && context.hard && resource.level == 1 }};

@id("builtin.owner-sets-policy")
@reason("you (level 1) may always set the policy: no policy locks you out of changing it")
permit (principal, action == Action::"policy.set", resource)
when {{ principal.level == 1 && !["user:voice", "user:mobile"].contains(principal.channel) }};

@id("builtin.only-user-decides-approvals")
@reason("only you (level 1) decide an approval")
forbid (principal, action, resource)
when {{ context.domain == "approval" && ["decide", "approve", "deny"].contains(context.verb) }}
unless {{ principal.level == 1 }};
"""

#: The policy of a tenant that has not set one: three roles a person can read at a glance.
DEFAULT_POLICY = """\
// truthvault's default policy. Roles: owner (you, level 1), automation (level 2) and
// assistant (AI, levels 3-5). The built-in rules ('truthvault policy show') apply on top.
// Deciding an approval is never itself held for one: the broker checks the PIN of a PIN
// request and the freshness of a confirmation.

@id("owner.all")
@reason("you (level 1) may run any action")
permit (principal in Role::"owner", action, resource)
unless {
  ["destructive", "security"].contains(context.risk) &&
  ["user:voice", "user:mobile"].contains(principal.channel) &&
  context.domain != "approval"
};

@id("owner.voice-pin")
@approval("pin")
@reason("a destructive or security action by voice needs your PIN")
permit (principal in Role::"owner", action, resource)
when {
  principal.channel == "user:voice" && ["destructive", "security"].contains(context.risk) &&
  context.domain != "approval"
};

@id("owner.mobile-confirm")
@approval("confirm")
@reason("a destructive or security action from mobile needs a fresh confirmation")
permit (principal in Role::"owner", action, resource)
when {
  principal.channel == "user:mobile" && ["destructive", "security"].contains(context.risk) &&
  context.domain != "approval"
};

@id("automation.work")
@reason("automations may read, write and delete (a delete of your entities becomes a suggestion)")
permit (principal in Role::"automation", action, resource)
when { ["read", "write", "destructive"].contains(context.risk) };

@id("assistant.propose")
@reason("AI may read and propose (its writes to your entities become suggestions)")
permit (principal in Role::"assistant", action, resource)
when { ["read", "write"].contains(context.risk) };

@id("assistant.delete-approved")
@approval("approve")
@reason("AI may delete only once you approve")
permit (principal in Role::"assistant", action, resource)
when { context.risk == "destructive" };
"""
