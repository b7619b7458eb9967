"""Rule 4 of the delegation contract: who may start acting for a person.

A token a person holds without a key binding (an ID token or access token from their identity
provider) may be exchanged for an agent only if the person authorised that agent: the token's
``may_act`` claim (RFC 8693 §4.4) names it, or a configured grant (``delegation.grants``) does.
A grant may cap the scopes the agent can hold for the person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deputize.server.errors import InvalidGrantError
from deputize.server.settings import Settings
from deputize.server.subject_tokens import SubjectToken


def _may_act_names(may_act: Any, agent: str) -> bool:
    entries = may_act if isinstance(may_act, list) else [may_act]
    return any(isinstance(e, Mapping) and e.get("sub") == agent for e in entries)


def authorise(settings: Settings, subject: SubjectToken, agent: str) -> Sequence[str] | None:
    """Check that the person behind ``subject`` authorised ``agent``.

    Returns the scope cap (None: no cap beyond the usual attenuation); raises ``invalid_grant``
    if nothing authorises the agent.
    """
    if _may_act_names(subject.may_act, agent):
        return None
    person = subject.chain.subject
    matching = [
        grant
        for grant in settings.delegation_grants
        if grant.subject in ("*", person)
        and agent in grant.agents
        and grant.issuer in (None, subject.issuer)
    ]
    if not matching:
        raise InvalidGrantError(f"the user has not authorised {agent!r} to act for them")
    if any(grant.scopes is None for grant in matching):
        return None
    return list(dict.fromkeys(scope for grant in matching for scope in grant.scopes or ()))
