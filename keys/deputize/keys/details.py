"""RFC 9396 ``authorization_details``: declared types, parsing, and the attenuation rule.

The server declares each type it accepts (:class:`DetailType`): its closed list of actions,
the field that names its resources (``locations`` by default, RFC 9396 §2.2) and the numeric
limits that narrow (``max_amount``).  Everything else in an entry is refused: a field nobody
declared has no meaning we could attenuate, so accepting it would be failing open.

One rule for every hop, applied by the server at issuance and by the verifier on receipt
(:func:`check_attenuation`): each child entry must be covered by one parent entry of the same
type, with its actions a subset, every resource pattern inside one of the parent's patterns
(:func:`deputize.keys.resources.covers`), and every declared limit present and no greater.
Asking beyond is ``invalid_authorization_details`` (RFC 9396 §5).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from deputize.keys.chain import AttenuationError
from deputize.keys.errors import shown
from deputize.keys.resources import Resource, ResourceError, covers, normalize

#: Bounds on what one request may carry (parsing work and token size).
MAX_ENTRIES: Final = 32
MAX_RESOURCES: Final = 32
MAX_ACTIONS: Final = 32

ERROR: Final = "invalid_authorization_details"


def _refuse(description: str) -> AttenuationError:
    return AttenuationError(description, error=ERROR)


@dataclass(frozen=True, slots=True)
class DetailType:
    """A type the server accepts, as the configuration declares it."""

    name: str
    actions: frozenset[str]
    resource_field: str = "locations"
    limits: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Detail:
    """One parsed, normalised entry."""

    type: str
    actions: frozenset[str]
    resources: tuple[Resource, ...]
    limits: Mapping[str, float] = field(default_factory=dict)

    def to_json(self, declared: DetailType) -> dict[str, Any]:
        """The entry as a token and an introspection response carry it (sorted, normalised)."""
        entry: dict[str, Any] = {"type": self.type, "actions": sorted(self.actions)}
        entry[declared.resource_field] = [str(r) for r in self.resources]
        for name in sorted(self.limits):
            value = self.limits[name]
            entry[name] = int(value) if value.is_integer() else value
        return entry

    def allows(self, action: str, resource: Resource) -> bool:
        """Whether this entry grants ``action`` on the concrete ``resource``."""
        return action in self.actions and any(covers(r, resource) for r in self.resources)


def parse_details(value: object, types: Mapping[str, DetailType]) -> tuple[Detail, ...]:
    """``authorization_details`` (already JSON-decoded) checked against the declared types.

    RFC 9396 §2: a JSON array of objects, each with a string ``type``.  Unknown types, unknown
    fields, actions outside the type's list and malformed resources are refused by name.
    """
    if not isinstance(value, list):
        raise _refuse("authorization_details must be a JSON array")
    if not value or len(value) > MAX_ENTRIES:
        raise _refuse(f"authorization_details must hold 1 to {MAX_ENTRIES} entries")
    return tuple(_parse_entry(entry, types) for entry in value)


def _parse_entry(entry: object, types: Mapping[str, DetailType]) -> Detail:
    if not isinstance(entry, dict):
        raise _refuse("each authorization_details entry must be a JSON object")
    raw = entry.get("type")
    declared = types.get(raw) if isinstance(raw, str) else None
    if declared is None:
        raise _refuse(f"unknown authorization_details type {shown(raw)}")
    name = declared.name
    known = {"type", "actions", declared.resource_field, *declared.limits}
    extra = sorted(k for k in entry if k not in known)
    if extra:
        raise _refuse(f"type {name!r} has no field {shown(extra[0])}")
    actions = _strings(entry.get("actions"), "actions", MAX_ACTIONS)
    unknown = sorted(a for a in actions if a not in declared.actions)
    if unknown:
        raise _refuse(f"type {name!r} has no action {shown(unknown[0])}")
    where = _strings(entry.get(declared.resource_field), declared.resource_field, MAX_RESOURCES)
    try:
        resources = tuple(dict.fromkeys(normalize(r, pattern=True) for r in where))
    except ResourceError as exc:
        raise _refuse(f"{declared.resource_field}: {exc}") from None
    limits = {n: _limit(entry[n], n) for n in declared.limits if n in entry}
    return Detail(name, frozenset(actions), resources, limits)


def _strings(value: object, name: str, most: int) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > most:
        raise _refuse(f"'{name}' must be an array of 1 to {most} strings")
    if not all(isinstance(v, str) and v for v in value):
        raise _refuse(f"'{name}' must hold only non-empty strings")
    return list(dict.fromkeys(value))


def _limit(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"'{name}' must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise _refuse(f"'{name}' must be a finite, non-negative number")
    return number


def entry_covers(parent: Detail, child: Detail, declared: DetailType) -> bool:
    """Whether ``parent`` alone grants everything ``child`` asks for."""
    if parent.type != child.type or not child.actions <= parent.actions:
        return False
    if not all(any(covers(p, c) for p in parent.resources) for c in child.resources):
        return False
    for name in declared.limits:
        ceiling = parent.limits.get(name)
        if ceiling is not None and child.limits.get(name, math.inf) > ceiling:
            return False
    return True


def check_attenuation(
    parent: Sequence[Detail], child: Iterable[Detail], types: Mapping[str, DetailType]
) -> None:
    """Refuse (``invalid_authorization_details``) any child entry no parent entry covers."""
    for entry in child:
        declared = types.get(entry.type)
        if declared is None or not any(entry_covers(p, entry, declared) for p in parent):
            shown_where = ", ".join(str(r) for r in entry.resources[:3])
            raise _refuse(
                f"authorization_details exceed the parent's: {entry.type} "
                f"{'/'.join(sorted(entry.actions))} on {shown_where}"
            )


def allows(details: Iterable[Detail], action: str, resource: str) -> bool:
    """Whether any entry grants ``action`` on ``resource`` (a malformed resource: never)."""
    try:
        target = normalize(resource)
    except ResourceError:
        return False
    return any(d.allows(action, target) for d in details)
