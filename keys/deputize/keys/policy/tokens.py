"""Deciding for a token: what it carries must cover the action, and the policy must allow it.

A resource server (``Verifier.decide``) and a gateway asking ``/decide`` hold a verified
token, not a question: the person is its ``sub``, the agents its ``act`` chain, the person's
roles its ``roles`` claim (RFC 9068 §2.2.3.1, put there at issuance under the policy).  The
answer is ``allow`` only if the token itself grants the action on the resource — through its
``authorization_details`` when it has them, else through a scope the policy gives meaning to —
and :func:`deputize.keys.policy.decide` allows it now (tiers and conditions may have changed
since the token was issued, and conditions look at the time).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from deputize.keys.chain import AttenuationError, parse_chain, scope_list
from deputize.keys.details import allows, parse_details
from deputize.keys.errors import JoseError
from deputize.keys.policy.decide import DENY, Decision, Question, decide
from deputize.keys.policy.model import AUTONOMOUS, Permission, Policy
from deputize.keys.resources import ResourceError, normalize

_SHORT: Final = re.compile(r"([a-z][a-z0-9+.\-]{0,62}):([A-Za-z0-9_\-]+|\*)")


def scope_permissions(policy: Policy, scope: str) -> tuple[Permission, ...] | None:
    """What ``scope`` stands for: the policy's ``scopes`` section, else a scope written
    ``namespace:action`` (``documents:read`` is read on ``documents:/**``); None for a scope the
    policy does not govern (``openid``)."""
    if scope in policy.scopes:
        return policy.scopes[scope]
    cache = policy._scope_cache
    if scope in cache:
        return cache[scope]
    match = _SHORT.fullmatch(scope)
    found = None
    if match is not None:
        pattern = normalize(f"{match.group(1)}:/**", pattern=True)
        found = (Permission(frozenset({match.group(2)}), (pattern,), scope),)
    if len(cache) < 1024:  # scopes can come from the network (/decide's claims): bounded
        cache[scope] = found
    return found


def decide_for_token(
    policy: Policy,
    claims: Mapping[str, Any],
    action: str,
    resource: str,
    *,
    profile_of: Callable[[str], str] = str,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Decision:
    """The decision for the holder of verified ``claims``; never raises for hostile claims.

    ``profile_of`` maps an agent's client_id to the profile it answers to (the server knows
    ``clients[].profile``; a resource server passes its own mapping, default: the same name).
    """

    def refuse(rule: str, reason: str) -> Decision:
        return Decision(DENY, AUTONOMOUS, rule, reason, policy.hash)

    try:
        chain = parse_chain(claims)
        scopes = scope_list(claims)
    except JoseError as exc:
        return refuse("token", f"the token's claims are malformed: {exc}")
    covered = _covers(policy, claims, scopes, action, resource)
    if covered is not None:
        return refuse("token", covered)
    roles_claim = claims.get("roles")
    roles = tuple(roles_claim) if isinstance(roles_claim, list) else ()
    if not all(isinstance(r, str) for r in roles):
        return refuse("token", "the token's roles claim is malformed")
    agents = tuple(profile_of(a) for a in chain.actors)
    person: tuple[str, ...] | None = roles
    if not agents and claims.get("client_id") == chain.subject:
        agents, person = (profile_of(chain.subject),), None  # a client acting for itself
    question = Question(
        person=chain.subject,
        roles=person,
        action=action,
        resource=resource,
        chain=agents,
        task=str(claims.get("task") or ""),
        details=details or {},
        now=now,
    )
    return decide(policy, question)


def _covers(
    policy: Policy, claims: Mapping[str, Any], scopes: list[str], action: str, resource: str
) -> str | None:
    """None if the token grants ``action`` on ``resource``; else why not."""
    try:
        target = normalize(resource)
    except ResourceError as exc:
        return f"the resource has no single meaning: {exc}"
    if "authorization_details" in claims:
        try:
            entries = parse_details(claims["authorization_details"], policy.types)
        except AttenuationError as exc:
            return f"the token's authorization_details do not parse: {exc.description}"
        if allows(entries, action, resource):
            return None
        return f"the token's authorization_details do not grant {action} on {target}"
    for scope in scopes:
        for permission in scope_permissions(policy, scope) or ():
            if permission.grants(action, target):
                return None
    return f"no scope of the token grants {action} on {target}"
