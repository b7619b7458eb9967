"""Reading a policy document: every error names the key path at fault, nothing is guessed.

The document is a mapping (YAML or JSON):

.. code-block:: yaml

    roles:
      viewer: {permissions: ["documents:read"]}
      admin: {extends: [viewer], permissions: ["documents:*", "users:*"]}
    profiles:
      scheduling-agent:
        allow: ["documents:*"]
        deny: ["documents:purge"]
        max_depth: 2
        delegate_to: [analysis-agent]
      analysis-agent: {allow: ["documents:read"], receive_from: [scheduling-agent]}
    types:                      # RFC 9396 authorization_details types
      documents: {actions: [read, update, delete]}
      payment: {actions: [initiate], resource_field: creditors, limits: [max_amount]}
    tiers:
      default: autonomous
      rules:
        - {name: deletes-wait-for-a-person, tier: supervised, permissions: ["documents:delete"]}
        - {name: users-never-for-agents, tier: forbidden, permissions: ["users:*"]}
    conditions:
      - name: weekdays-only
        permissions: ["documents:update"]
        when: now.getDayOfWeek() >= 1 && now.getDayOfWeek() <= 5

A permission is ``namespace:action`` (``documents:read``; ``documents:*`` for every action),
meaning that action on ``namespace:/**``, or ``{actions: [...], resources: [patterns]}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from deputize.keys.details import DetailType
from deputize.keys.policy.conditions import ConditionError, compile_condition
from deputize.keys.policy.model import (
    ALL_ACTIONS,
    AUTONOMOUS,
    TIERS,
    ConditionRule,
    Permission,
    Policy,
    Profile,
    Role,
    TierRule,
)
from deputize.keys.resources import ResourceError, normalize

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_SHORT = re.compile(r"([a-z][a-z0-9+.\-]{0,62}):([A-Za-z0-9_\-]+|\*)")
_SECTIONS = frozenset({"version", "types", "roles", "profiles", "tiers", "conditions", "scopes"})


class PolicyError(ValueError):
    """A policy that cannot be used; ``path`` names the key (``policy.roles.admin.extends``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def load_policy(document: object, *, root: str = "policy") -> Policy:
    """Validate ``document``, compile its conditions, flatten its roles; or :class:`PolicyError`."""
    doc = _mapping(document, root)
    _only(doc, _SECTIONS, root)
    roles = _roles(_mapping(doc.get("roles", {}), f"{root}.roles"), f"{root}.roles")
    profiles = {
        name: _profile(name, body, f"{root}.profiles.{name}")
        for name, body in _mapping(doc.get("profiles", {}), f"{root}.profiles").items()
    }
    for profile in profiles.values():
        for other in sorted(profile.delegate_to | profile.receive_from):
            if other not in profiles:
                raise PolicyError(
                    f"{root}.profiles.{profile.name}", f"names agent profile {other!r}, not defined"
                )
    tiers = _mapping(doc.get("tiers", {}), f"{root}.tiers")
    _only(tiers, {"default", "rules"}, f"{root}.tiers")
    default_tier = _tier(tiers.get("default", AUTONOMOUS), f"{root}.tiers.default")
    rules = tuple(
        _tier_rule(rule, f"{root}.tiers.rules[{i}]")
        for i, rule in enumerate(_list(tiers.get("rules", []), f"{root}.tiers.rules"))
    )
    conditions = tuple(
        _condition(rule, f"{root}.conditions[{i}]")
        for i, rule in enumerate(_list(doc.get("conditions", []), f"{root}.conditions"))
    )
    _unique([r.name for r in rules] + [c.name for c in conditions], f"{root}.tiers/conditions")
    scopes = {
        str(scope): _permissions(perms, f"{root}.scopes.{scope}")
        for scope, perms in _mapping(doc.get("scopes", {}), f"{root}.scopes").items()
    }
    types = {
        name: _detail_type(name, body, f"{root}.types.{name}")
        for name, body in _mapping(doc.get("types", {}), f"{root}.types").items()
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return Policy(
        roles=roles,
        profiles=profiles,
        tiers=rules,
        conditions=conditions,
        scopes=scopes,
        types=types,
        default_tier=default_tier,
        hash=hashlib.sha256(canonical.encode()).hexdigest()[:16],
    )


def _roles(section: Mapping[str, Any], path: str) -> dict[str, Role]:
    own: dict[str, tuple[Permission, ...]] = {}
    parents: dict[str, list[str]] = {}
    for name, body in section.items():
        where = f"{path}.{name}"
        _named(name, where)
        spec = _mapping(body, where)
        _only(spec, {"extends", "permissions"}, where)
        own[name] = _permissions(spec.get("permissions", []), f"{where}.permissions")
        extends = spec.get("extends", [])
        parents[name] = (
            [extends] if isinstance(extends, str) else _names(extends, f"{where}.extends")
        )
        for parent in parents[name]:
            if parent not in section:
                raise PolicyError(f"{where}.extends", f"role {parent!r} is not defined")
    flat: dict[str, Role] = {}

    def resolve(name: str, trail: tuple[str, ...]) -> tuple[Permission, ...]:
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name) :], name))
            raise PolicyError(
                f"{path}.{name}.extends", f"roles extend each other in a cycle: {cycle}"
            )
        if name not in flat:
            inherited = [p for parent in parents[name] for p in resolve(parent, (*trail, name))]
            flat[name] = Role(name, tuple(dict.fromkeys((*own[name], *inherited))))
        return flat[name].permissions

    for name in section:
        resolve(name, ())
    return flat


def _profile(name: str, body: object, path: str) -> Profile:
    _named(name, path)
    spec = _mapping(body, path)
    _only(
        spec,
        {"allow", "deny", "default_tier", "max_depth", "delegate_to", "receive_from"},
        path,
    )
    depth = spec.get("max_depth")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise PolicyError(f"{path}.max_depth", "must be a whole number of at least 1")
    return Profile(
        name=name,
        allow=_permissions(spec.get("allow", []), f"{path}.allow"),
        deny=_permissions(spec.get("deny", []), f"{path}.deny"),
        default_tier=(
            None
            if "default_tier" not in spec
            else _tier(spec["default_tier"], f"{path}.default_tier")
        ),
        max_depth=depth,
        delegate_to=frozenset(_names(spec.get("delegate_to", []), f"{path}.delegate_to")),
        receive_from=frozenset(_names(spec.get("receive_from", []), f"{path}.receive_from")),
    )


def _detail_type(name: str, body: object, path: str) -> DetailType:
    """An RFC 9396 type: its closed list of actions, its resource field and its limits."""
    _named(name, path)
    spec = _mapping(body, path)
    _only(spec, {"actions", "resource_field", "limits"}, path)
    actions = _names(spec.get("actions"), f"{path}.actions")
    if not actions:
        raise PolicyError(f"{path}.actions", "must list the type's actions")
    field = spec.get("resource_field", "locations")
    if not isinstance(field, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,63}", field):
        raise PolicyError(f"{path}.resource_field", "must be a lower-case field name")
    limits = _names(spec.get("limits", []), f"{path}.limits")
    clash = {"type", "actions", field} & set(limits)
    if clash:
        raise PolicyError(f"{path}.limits", f"{sorted(clash)[0]!r} is not a numeric field")
    return DetailType(name, frozenset(actions), field, frozenset(limits))


def _tier_rule(body: object, path: str) -> TierRule:
    spec = _mapping(body, path)
    _only(spec, {"name", "tier", "permissions"}, path)
    return TierRule(
        name=_named(spec.get("name"), f"{path}.name"),
        tier=_tier(spec.get("tier"), f"{path}.tier"),
        permissions=_permissions(spec.get("permissions"), f"{path}.permissions", empty=False),
    )


def _condition(body: object, path: str) -> ConditionRule:
    spec = _mapping(body, path)
    _only(spec, {"name", "permissions", "when"}, path)
    name = _named(spec.get("name"), f"{path}.name")
    source = spec.get("when")
    if not isinstance(source, str):
        raise PolicyError(f"{path}.when", "must be a CEL expression (a string)")
    try:
        condition = compile_condition(source)
    except ConditionError as exc:
        raise PolicyError(f"{path}.when", f"condition {name!r} {exc}") from None
    perms = _permissions(spec.get("permissions"), f"{path}.permissions", empty=False)
    return ConditionRule(name, perms, condition)


def _permissions(value: object, path: str, *, empty: bool = True) -> tuple[Permission, ...]:
    items = _list(value, path)
    if not items and not empty:
        raise PolicyError(path, "must name at least one permission")
    return tuple(_permission(item, f"{path}[{i}]") for i, item in enumerate(items))


def _permission(value: object, path: str) -> Permission:
    if isinstance(value, str):
        match = _SHORT.fullmatch(value)
        if match is None:
            raise PolicyError(path, f"{value!r} is not 'namespace:action' (or an object)")
        pattern = normalize(f"{match.group(1)}:/**", pattern=True)
        return Permission(frozenset({match.group(2)}), (pattern,), value)
    spec = _mapping(value, path)
    _only(spec, {"actions", "resources"}, path)
    actions = _names(spec.get("actions"), f"{path}.actions", allow=ALL_ACTIONS)
    where = _list(spec.get("resources"), f"{path}.resources")
    if not actions or not where:
        raise PolicyError(path, "needs at least one action and one resource")
    try:
        resources = tuple(normalize(r, pattern=True) for r in where)
    except ResourceError as exc:
        raise PolicyError(f"{path}.resources", str(exc)) from None
    text = f"{'/'.join(actions)} on {', '.join(str(r) for r in resources)}"
    return Permission(frozenset(actions), resources, text)


def _tier(value: object, path: str) -> str:
    if value not in TIERS:
        raise PolicyError(path, f"must be one of {', '.join(TIERS)}")
    return str(value)


def _mapping(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise PolicyError(path, "must be a mapping")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyError(path, "must be a list")
    return value


def _names(value: object, path: str, *, allow: str = "") -> list[str]:
    items = _list(value, path)
    for i, item in enumerate(items):
        if item != allow:
            _named(item, f"{path}[{i}]")
    return list(dict.fromkeys(items))


def _named(value: object, path: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise PolicyError(path, "must be a name (letters, digits, '.', '_', ':', '-')")
    return value


def _only(spec: Mapping[str, Any], known: set[str] | frozenset[str], path: str) -> None:
    for key in spec:
        if key not in known:
            raise PolicyError(f"{path}.{key}", f"unknown key (known: {', '.join(sorted(known))})")


def _unique(names: list[str], path: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PolicyError(path, f"two rules are named {name!r}")
        seen.add(name)
