"""One decision: may this chain, acting for this person, take this action on this resource?

Checked in an order that makes the answer's ``rule`` the most useful one: a forbidden tier
first (it holds whatever else is true), then the person's roles, then each agent's profile and
each hand-off between agents, then the conditions, and only then a supervised tier — a request
that would be refused anyway is never sent to a person for approval.  Everything not allowed
is denied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from deputize.keys.policy.conditions import EvaluationError
from deputize.keys.policy.model import (
    AUTONOMOUS,
    FORBIDDEN,
    SUPERVISED,
    TIERS,
    Permission,
    Policy,
)
from deputize.keys.resources import Resource, ResourceError, normalize

ALLOW: Final = "allow"
DENY: Final = "deny"


@dataclass(frozen=True, slots=True)
class Question:
    person: str
    roles: Sequence[str] | None
    """The person's roles; None when no person stands behind the request (an agent acting
    for itself by client credentials), so only its profile and the tiers bound it."""
    action: str
    resource: str | Resource
    """As text, or already normalised (issuance asks about the policy's own patterns)."""
    chain: Sequence[str] = ()
    """The agents acting for the person, oldest first; empty when the person acts."""
    task: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    now: datetime | None = None
    pattern: bool = False
    """``resource`` may be a pattern (issuance); a decision for a concrete request says False."""


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str
    """``allow``, ``deny`` or ``supervised``."""
    tier: str
    rule: str
    """The rule that decided, as a key path of the policy (``profiles.analysis-agent.allow``)."""
    reason: str
    policy: str
    """The policy's hash: which version decided."""

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW

    def to_json(self) -> dict[str, str]:
        return {
            "decision": self.outcome,
            "tier": self.tier,
            "rule": self.rule,
            "reason": self.reason,
            "policy": self.policy,
        }


def decide(policy: Policy, question: Question) -> Decision:
    """The decision for ``question`` under ``policy``; never raises for hostile input.

    A decision that no applicable condition can change with time is remembered (a bounded
    cache that lives on the policy, so a reload starts afresh): an agent re-exchanging for the
    same person and scopes is answered without deciding again.
    """
    key = _cache_key(policy, question)
    if key is not None:
        cached: Decision | None = policy._decisions.get(key)
        if cached is not None:
            return cached
    decision = _decide(policy, question)
    if key is not None:
        cache = policy._decisions
        if len(cache) >= _CACHE_SIZE:
            del cache[next(iter(cache))]  # the oldest entry
        cache[key] = decision
    return decision


#: How many decisions a policy remembers (the questions come from requests: bounded).
_CACHE_SIZE: Final = 4096


def _cache_key(policy: Policy, q: Question) -> tuple[Any, ...] | None:
    """What the decision depends on, or None when it may depend on the time (a condition that
    reads ``now``) or on details too large to key on."""
    reads = policy.condition_inputs(q.action)
    if "now" in reads:
        return None
    key: tuple[Any, ...] = (
        q.person, None if q.roles is None else tuple(q.roles), q.action, q.resource,
        tuple(q.chain), q.pattern, q.task if "task" in reads else None,
    )  # fmt: skip
    if "details" in reads and q.details:
        text = repr(sorted(q.details.items()))
        if len(text) > 512:
            return None
        key += (text,)
    return key


def _decide(policy: Policy, question: Question) -> Decision:
    q = question

    def answer(outcome: str, tier: str, rule: str, reason: str) -> Decision:
        return Decision(outcome, tier, rule, reason, policy.hash)

    try:
        target = (
            q.resource
            if isinstance(q.resource, Resource)
            else normalize(q.resource, pattern=q.pattern)
        )
    except ResourceError as exc:
        return answer(DENY, FORBIDDEN, "resource", f"the resource has no single meaning: {exc}")
    action = q.action
    tier, tier_rule = _tier(policy, q, action, target)
    if q.chain and tier == FORBIDDEN:
        return answer(DENY, tier, tier_rule, f"{action} on {target} is never done by an agent")
    if q.roles is not None and not any(
        _grants(policy.roles[r].permissions, action, target) for r in q.roles if r in policy.roles
    ):
        return answer(DENY, tier, "roles", f"no role of {q.person} grants {action} on {target}")
    refusal = _agents(policy, q, action, target)
    if refusal is not None:
        return answer(DENY, tier, *refusal)
    context: dict[str, Any] | None = None
    for rule in policy.condition_rules(action):
        if not _touches(rule.permissions, action, target):
            continue
        if context is None:
            context = _context(q, target, policy.condition_inputs(action))
        try:
            held = rule.condition.holds(context)
        except EvaluationError as exc:
            return answer(DENY, tier, f"conditions.{rule.name}", f"could not be evaluated: {exc}")
        if not held:
            return answer(DENY, tier, f"conditions.{rule.name}", "the condition does not hold")
    if q.chain and tier == SUPERVISED:
        return answer(
            SUPERVISED, tier, tier_rule, f"{action} on {target} needs a person's approval"
        )
    return answer(ALLOW, tier, tier_rule, "allowed")


def _tier(policy: Policy, q: Question, action: str, target: Resource) -> tuple[str, str]:
    matched = [r for r in policy.tier_rules(action) if _touches(r.permissions, action, target)]
    if matched:
        strictest = max(matched, key=lambda r: TIERS.index(r.tier))
        return strictest.tier, f"tiers.{strictest.name}"
    profile = policy.profiles.get(q.chain[-1]) if q.chain else None
    if profile is not None and profile.default_tier is not None:
        return profile.default_tier, f"profiles.{profile.name}.default_tier"
    return (policy.default_tier, "tiers.default") if q.chain else (AUTONOMOUS, "tiers.default")


def _agents(policy: Policy, q: Question, action: str, target: Resource) -> tuple[str, str] | None:
    """The first refusal among the agents of the chain and their hand-offs, or None."""
    for depth, agent in enumerate(q.chain, start=1):
        profile = policy.profiles.get(agent)
        if profile is None:
            return "profiles", f"agent {agent!r} has no profile, so it may do nothing"
        where = f"profiles.{agent}"
        if depth > 1:  # the hand-off first: it is why this agent is here at all
            previous = q.chain[depth - 2]
            if agent not in policy.profiles[previous].delegate_to:
                return (
                    f"profiles.{previous}.delegate_to",
                    f"{previous} may not hand work to {agent}",
                )
            if previous not in profile.receive_from:
                return f"{where}.receive_from", f"{agent} may not receive work from {previous}"
        if _touches(profile.deny, action, target):
            return f"{where}.deny", f"{agent} is denied {action} on {target}"
        if not _grants(profile.allow, action, target):
            return f"{where}.allow", f"{agent} is not allowed {action} on {target}"
        if profile.max_depth is not None and depth > profile.max_depth:
            return f"{where}.max_depth", f"{agent} may act at most {profile.max_depth} deep"
    return None


# Loops rather than ``any(generator)``: these run for every rule of every new question, and
# the generators cost a fifth of a decision (bench/README.md).
def _grants(permissions: Sequence[Permission], action: str, target: Resource) -> bool:
    for permission in permissions:  # noqa: SIM110 (a loop: no generator per call)
        if permission.grants(action, target):
            return True
    return False


def _touches(permissions: Sequence[Permission], action: str, target: Resource) -> bool:
    for permission in permissions:  # noqa: SIM110 (a loop: no generator per call)
        if permission.touches(action, target):
            return True
    return False


def _context(q: Question, target: Resource, reads: frozenset[str]) -> dict[str, Any]:
    """The variables the applicable conditions read (only those: building the rest is waste)."""
    context: dict[str, Any] = {}
    if "person" in reads:
        context["person"] = {"id": q.person, "roles": list(q.roles or ())}
    if "chain" in reads:
        context["chain"] = list(q.chain)
    if "agent" in reads:
        context["agent"] = q.chain[-1] if q.chain else ""
    if "task" in reads:
        context["task"] = q.task
    if "action" in reads:
        context["action"] = q.action
    if "resource" in reads:
        context["resource"] = {
            "namespace": target.prefix.rstrip(":"),
            "path": "/" + "/".join(target.segments),
            "segments": list(target.segments),
            "text": str(target),
        }
    if "details" in reads:
        context["details"] = dict(q.details)
    if "now" in reads:
        context["now"] = q.now or datetime.now(UTC)
    return context
