"""The delegation policy at issuance: what a token for an agent may carry.

Every token issued to an agent, while a policy is configured, carries at most
parent ∩ the person's roles ∩ each agent's profile, minus forbidden, minus supervised, subject
to the conditions (docs/policy.md).  That is decided here, one permission at a time, with
:func:`deputize.keys.policy.decide` — the function ``/decide`` and ``Verifier.decide`` use:

- a **scope** that stands for permissions (the policy's ``scopes`` section, or a scope written
  ``namespace:action``) is decided on its resources as a pattern; other scopes (``openid``) are
  not the policy's business.  A scope the client asked for and the policy refuses is
  ``invalid_scope`` naming the rule; one it did not ask for is left out.
- **authorization_details** (RFC 9396) are parsed against the policy's types, must stay inside
  the parent token's (``deputize.keys.details``), and each action on each resource pattern must
  be allowed: anything else is ``invalid_authorization_details`` naming the rule.  Without a
  request, the parent's details are inherited — and decided again for the new agent.

A supervised permission is refused naming the tier: it is never placed in an agent's token
without a person's approval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deputize.keys.chain import AttenuationError
from deputize.keys.details import Detail, check_attenuation, parse_details
from deputize.keys.policy import Decision, Permission, Policy, Question, decide
from deputize.keys.policy.model import ALL_ACTIONS
from deputize.keys.policy.tokens import scope_permissions
from deputize.keys.resources import Resource
from deputize.server.delegation.signin_details import normalised, parse_param
from deputize.server.errors import (
    InvalidAuthorizationDetailsError,
    InvalidRequestError,
    InvalidScopeError,
)
from deputize.server.settings import ClientConfig
from deputize.server.storage.request_store import RequestStore
from deputize.server.storage.tokens import USER
from deputize.server.tokens.subject_tokens import SubjectToken


@dataclass(frozen=True, slots=True)
class Person:
    """Who stands behind the chain, and the roles the policy sees for them."""

    sub: str | None
    """None: nobody (an agent acting for itself); then only profiles and tiers apply."""
    roles: tuple[str, ...] | None


async def person_of(store: RequestStore, subject: SubjectToken) -> Person:
    """The person a subject token acts for, with their roles: from the user store for a
    person's own token from sign-in here; from the token otherwise — a trusted issuer's claim
    through ``trusted_issuers[].roles``, or the ``roles`` claim Deputize put in the parent
    token at the first hop.  A token that states none gives none: nothing is granted."""
    sub = subject.chain.subject
    if subject.kind == USER:
        return Person(sub, await store.roles(sub))
    return Person(sub, subject.roles or ())


def profile_of(client: ClientConfig | None, client_id: str) -> str:
    """The agent profile ``client_id`` answers to: ``clients[].profile``, else its client_id."""
    return client.profile or client.client_id if client is not None else client_id


@dataclass(frozen=True, slots=True)
class Allowed:
    roles: tuple[str, ...] | None
    """The person's roles, for the new token's ``roles`` claim (RFC 9068 §2.2.3.1)."""
    scopes: list[str]
    details: list[dict[str, Any]] | None
    """The token's ``authorization_details`` (normalised), None when it carries none."""
    policy: str
    """The policy's hash, for the audit entry."""


def allow(
    policy: Policy,
    person: Person,
    agents: Sequence[str],
    *,
    scopes: list[str],
    explicit_scopes: bool,
    requested_details: str | None,
    parent_details: Any,
    task: str | None,
) -> Allowed:
    """What the token for the last of ``agents`` (profile names, oldest first) may carry; with
    no agent, what a person signing in to an app may hand it (``authorization_details`` only:
    their roles and the conditions decide)."""
    ask = _Asker(policy, person, tuple(agents), task or "")
    kept: list[str] = []
    for scope in scopes:
        refusal = ask.permissions(scope_permissions(policy, scope) or ())
        if refusal is None:
            kept.append(scope)
        elif explicit_scopes:
            raise InvalidScopeError(f"scope {scope}: {_said(refusal)}")
    details = _details(policy, ask, requested_details, parent_details)
    return Allowed(person.roles, kept, details, policy.hash)


def _details(
    policy: Policy, ask: _Asker, requested: str | None, parent_claim: Any
) -> list[dict[str, Any]] | None:
    try:
        parent = None if parent_claim is None else parse_details(parent_claim, policy.types)
        entries = parent if requested is None else parse_param(requested, policy)
        if entries is None:
            return None
        if parent is not None:
            check_attenuation(parent, entries, policy.types)
    except AttenuationError as exc:
        raise InvalidAuthorizationDetailsError(exc.description) from None
    for entry in entries:
        refusal = ask.detail(entry)
        if refusal is not None:
            raise InvalidAuthorizationDetailsError(
                f"{entry.type} {'/'.join(sorted(entry.actions))}: {_said(refusal)}"
            )
    return normalised(entries, policy)


def _said(decision: Decision) -> str:
    """The refusal as the client (and the audit entry) reads it: the rule and the policy."""
    where = f"(rule {decision.rule}, policy {decision.policy})"
    if decision.outcome == "supervised":
        return f"tier supervised: {decision.reason} {where}"
    return f"{decision.reason} {where}"


class _Asker:
    """One issuance's questions; the first refusal answers."""

    __slots__ = ("_agents", "_person", "_policy", "_task")

    def __init__(self, policy: Policy, person: Person, agents: tuple[str, ...], task: str) -> None:
        if not agents and person.sub is None:
            raise InvalidRequestError("the delegation policy decides for agents and people")
        self._policy, self._person, self._agents, self._task = policy, person, agents, task

    def _decide(self, action: str, resource: Resource, details: Mapping[str, Any]) -> Decision:
        return decide(
            self._policy,
            Question(
                person=self._person.sub or self._agents[0],
                roles=self._person.roles if self._person.sub is not None else None,
                action=action,
                resource=resource,
                chain=self._agents,
                task=self._task,
                details=details,
                pattern=True,
            ),
        )

    def permissions(self, permissions: Sequence[Permission]) -> Decision | None:
        for permission in permissions:
            actions = sorted(permission.actions)
            for action in [ALL_ACTIONS] if ALL_ACTIONS in permission.actions else actions:
                for resource in permission.resources:
                    decision = self._decide(action, resource, {})
                    if decision.outcome != "allow":
                        return decision
        return None

    def detail(self, entry: Detail) -> Decision | None:
        as_json = entry.to_json(self._policy.types[entry.type])
        for action in sorted(entry.actions):
            for resource in entry.resources:
                decision = self._decide(action, resource, as_json)
                if decision.outcome != "allow":
                    return decision
        return None
