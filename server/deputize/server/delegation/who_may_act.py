"""Rule 4 of the delegation contract: who may start acting for a person.

A person's own token — an unbound token from their identity provider, or the token Deputize
issued them at sign-in — may pass to an agent only if the person authorised that agent:
- the token's ``may_act`` claim (RFC 8693 §4.4) names it (external tokens);
- a configured grant (``delegation.grants``) does;
- a live consent the person gave at sign-in does (people who sign in at Deputize only): the
  agent is the client they consented to, or one of the agents named by the consent they gave
  the very client whose token is being delegated — a consent given at one app does not let
  another app hand the person's token to the agents it names.
A grant or consent caps the scopes the agent can hold for the person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deputize.server.errors import InvalidRequestError
from deputize.server.settings import Settings
from deputize.server.storage import consents
from deputize.server.storage.request_store import RequestStore
from deputize.server.tokens.subject_tokens import SubjectToken


def _may_act_names(may_act: Any, agent: str) -> bool:
    entries = may_act if isinstance(may_act, list) else [may_act]
    return any(isinstance(e, Mapping) and e.get("sub") == agent for e in entries)


async def authorise(
    store: RequestStore, settings: Settings, subject: SubjectToken, agent: str, now: int
) -> Sequence[str] | None:
    """Check that the person behind ``subject`` authorised ``agent``.

    Returns the scope cap (None: no cap beyond the usual attenuation); raises
    ``invalid_request`` if nothing authorises the agent: RFC 8693 §2.2.2, the subject token is
    "unacceptable based on policy" for this actor.  Consents read here stay share-locked until
    the exchange commits, so withdrawing one waits for it and then revokes what it minted.
    (They need the ordinary transaction: on PostgreSQL's hot path, ``store.conn`` sends the
    request there.)
    """
    if _may_act_names(subject.may_act, agent):
        return None
    person = subject.chain.subject
    caps: list[Sequence[str] | None] = [
        grant.scopes
        for grant in settings.delegation_grants
        if grant.subject in ("*", person)
        and agent in grant.agents
        and grant.issuer in (None, subject.issuer)
    ]
    if subject.issuer == settings.issuer:  # consents speak for Deputize's own users only
        caps += [
            consent.scopes
            for consent in await consents.for_user(store.conn, person, now, lock=True)
            if consent.client_id == agent
            or (agent in consent.agents and consent.client_id == subject.client_id)
        ]
    if not caps:
        raise InvalidRequestError(f"the user has not authorised {agent!r} to act for them")
    if any(cap is None for cap in caps):
        return None
    return list(dict.fromkeys(scope for cap in caps for scope in cap or ()))
