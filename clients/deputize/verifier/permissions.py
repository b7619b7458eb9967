"""Actions on resources, decided locally: what ``requires(action=..., resource=...)`` and
:meth:`Verifier.decide <deputize.verifier.verifier.Verifier.decide>` answer.

With the server's delegation policy (``delegation_policy=``, the same document Deputize loads,
read with :func:`deputize.keys.policy.load_policy`), the answer is exactly ``/decide``'s: the
token must grant the action on the resource (its ``authorization_details``, or a scope the
policy gives meaning to) and the policy must allow it now — tiers and conditions included.
Without one, only the token's ``authorization_details`` entries (``actions`` on ``locations``)
can grant an action; a token without them grants none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from deputize.keys.policy import AUTONOMOUS, Decision, Policy, decide_for_token
from deputize.keys.resources import ResourceError, covers, normalize
from deputize.verifier.principal import Principal


def decide(
    principal: Principal,
    action: str,
    resource: str,
    *,
    policy: Policy | None,
    profile_of: Callable[[str], str] = str,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Decision:
    """``allow``, ``deny`` or ``supervised`` for ``principal`` taking ``action`` on ``resource``."""
    if policy is not None:
        return decide_for_token(
            policy, principal.claims, action, resource, profile_of=profile_of, details=details,
            now=now,
        )  # fmt: skip
    if _details_grant(principal.claims.get("authorization_details"), action, resource):
        return Decision("allow", AUTONOMOUS, "token", "allowed", "")
    return Decision(
        "deny", AUTONOMOUS, "token", f"the token does not grant {action} on {resource}", ""
    )


def _details_grant(entries: Any, action: str, resource: str) -> bool:
    try:
        target = normalize(resource)
    except ResourceError:
        return False
    if not isinstance(entries, list):
        return False
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        actions, where = entry.get("actions"), entry.get("locations")
        if not isinstance(actions, list) or action not in actions or not isinstance(where, list):
            continue
        for pattern in where:
            try:
                if covers(normalize(pattern, pattern=True), target):
                    return True
            except ResourceError:
                continue
    return False
