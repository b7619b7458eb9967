"""What a loaded policy is: permissions on resources, roles, agent profiles, tier rules and
conditions, all normalised and compiled (see ``load.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from deputize.keys.details import DetailType
from deputize.keys.policy.conditions import Condition
from deputize.keys.resources import Resource, covers, overlaps

AUTONOMOUS: Final = "autonomous"
SUPERVISED: Final = "supervised"
FORBIDDEN: Final = "forbidden"
#: Tiers from least to most restrictive; when several rules apply the strictest wins.
TIERS: Final = (AUTONOMOUS, SUPERVISED, FORBIDDEN)

#: Stands for every action in a permission (``documents:*``).
ALL_ACTIONS: Final = "*"


@dataclass(frozen=True, slots=True)
class Permission:
    """Actions on resources: ``documents:read`` is ``read`` on ``documents:/**``."""

    actions: frozenset[str]
    resources: tuple[Resource, ...]
    text: str
    """How the policy wrote it, for messages and ``policy show``."""

    def grants(self, action: str, resource: Resource) -> bool:
        """Whether this permission covers ``action`` on ``resource`` (a pattern or not).
        ``action`` ``*`` (every action, as a scope ``documents:*`` asks) needs ``*`` here."""
        if ALL_ACTIONS not in self.actions and action not in self.actions:
            return False
        for granted in self.resources:  # noqa: SIM110 (a loop: no generator per call)
            if covers(granted, resource):
                return True
        return False

    def touches(self, action: str, resource: Resource) -> bool:
        """Whether ``action`` on some resource ``resource`` names falls under this permission,
        case-folded: how deny rules and tiers match, so no spelling slips past them.  Asking
        for every action (``*``) touches every permission on an overlapping resource."""
        if action != ALL_ACTIONS and ALL_ACTIONS not in self.actions and action not in self.actions:
            return False
        for named in self.resources:  # noqa: SIM110 (a loop: no generator per call)
            if overlaps(named, resource, fold=True):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    permissions: tuple[Permission, ...]
    """Its own and those of every role it extends (flattened at load)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """What an agent may do whoever it acts for, and whom it may work with."""

    name: str
    allow: tuple[Permission, ...]
    deny: tuple[Permission, ...] = ()
    default_tier: str | None = None
    """The tier of what no tier rule names, for this agent (else the policy's default)."""
    max_depth: int | None = None
    delegate_to: frozenset[str] = frozenset()
    receive_from: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TierRule:
    name: str
    tier: str
    permissions: tuple[Permission, ...]


@dataclass(frozen=True, slots=True)
class ConditionRule:
    name: str
    permissions: tuple[Permission, ...]
    condition: Condition


@dataclass(frozen=True, slots=True)
class Policy:
    roles: Mapping[str, Role]
    profiles: Mapping[str, Profile]
    tiers: tuple[TierRule, ...] = ()
    conditions: tuple[ConditionRule, ...] = ()
    scopes: Mapping[str, tuple[Permission, ...]] = field(default_factory=dict)
    """What a scope stands for (``documents:read`` → read on ``documents:/**``)."""
    types: Mapping[str, DetailType] = field(default_factory=dict)
    """The ``authorization_details`` types (RFC 9396) the server accepts."""
    default_tier: str = AUTONOMOUS
    hash: str = ""
    """sha-256 (hex, first 16) of the document: in every decision and audit entry."""
    _tiers_by_action: dict[str, tuple[TierRule, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _conditions_by_action: dict[str, tuple[ConditionRule, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _scope_cache: dict[str, tuple[Permission, ...] | None] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _decisions: dict[tuple[Any, ...], Any] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _inputs_by_action: dict[str, frozenset[str]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def condition_inputs(self, action: str) -> frozenset[str]:
        """The variables the conditions that can apply to ``action`` read."""
        found = self._inputs_by_action.get(action)
        if found is None:
            found = frozenset(
                name for rule in self.condition_rules(action) for name, _ in rule.condition.names
            )
            if len(self._inputs_by_action) < _INDEX_LIMIT:
                self._inputs_by_action[action] = found
        return found

    def tier_rules(self, action: str) -> tuple[TierRule, ...]:
        """The tier rules that can apply to ``action`` (an index built on first use: a decision
        skips the rules about other actions without looking at them)."""
        return _indexed(self._tiers_by_action, self.tiers, action)

    def condition_rules(self, action: str) -> tuple[ConditionRule, ...]:
        """The conditions that can apply to ``action`` (indexed like :meth:`tier_rules`)."""
        return _indexed(self._conditions_by_action, self.conditions, action)


R = TypeVar("R", "TierRule", "ConditionRule")

#: Bound on the per-action indexes: actions come from requests, so a flood of made-up ones must
#: not grow them without end (past it, decisions still work, only unindexed).
_INDEX_LIMIT: Final = 1024


def _indexed(index: dict[str, tuple[R, ...]], rules: tuple[R, ...], action: str) -> tuple[R, ...]:
    """The ``rules`` that can apply to ``action``, remembered in ``index`` (bounded: actions
    come from requests)."""
    found = index.get(action)
    if found is None:
        found = tuple(r for r in rules if _mentions(r.permissions, action))
        if len(index) < _INDEX_LIMIT:
            index[action] = found
    return found


def _mentions(permissions: tuple[Permission, ...], action: str) -> bool:
    return any(
        action == ALL_ACTIONS or ALL_ACTIONS in p.actions or action in p.actions
        for p in permissions
    )
