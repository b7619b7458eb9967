"""``deputize policy import``: a theaios-agent-auth policy file, translated into ours exactly.

Translated: roles (``actions``, ``extends``), agent profiles (their role's actions and ``allow``
become the profile's allow list, ``deny`` stays deny, ``default_tier``), approval policies whose
condition names actions (``action == "delete"``, ``action in [...]``), and agent-to-agent
``allow`` rules between named agents.  Their tiers map ``autonomous`` → autonomous and ``soft``
and ``strong`` → supervised.  Actions are ``verb:object`` there and ``namespace:action`` here
(``delete:documents`` → ``documents:delete``); a bare ``delete`` needs ``--namespace``.

Refused, with the line: anything a rule would have to guess at — wildcards other than ``*`` for
every action of a namespace, session ``scopes`` (matched with fnmatch there, never against a
resource), conditions in their expression language beyond naming actions, agent-to-agent rules
with wildcards, actions or conditions, ``a2a.default: allow``, delegation rules.  Settings with
no place in a policy (sessions, audit, ``max_session_duration``) become notes in the output.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_VERB = re.compile(r"[A-Za-z0-9_\-]+")
_NAMESPACE = re.compile(r"[a-z][a-z0-9+.\-]{0,62}")
_ACTION_IS = re.compile(r"""\s*action\s*==\s*(["'])([^"']+)\1\s*""")
_ACTION_IN = re.compile(r"""\s*action\s+in\s*\[([^\]]*)\]\s*""")
_QUOTED = re.compile(r"""\s*(["'])([^"']+)\1\s*""")
_TIERS = {"autonomous": "autonomous", "soft": "supervised", "strong": "supervised"}
_TOP = {"version", "metadata", "variables", "roles", "profiles", "approval_policies",
        "delegation", "a2a", "sessions", "audit"}  # fmt: skip


class TranslationError(ValueError):
    """Something that cannot be translated exactly; the message starts with ``file:line``."""


class _Source:
    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.root = yaml.compose(text, Loader=yaml.SafeLoader)

    def line(self, *path: str | int) -> int:
        """The line of the key (or list item) at ``path``, or of the nearest one above it."""
        node, line = self.root, 1
        for step in path:
            if isinstance(node, yaml.MappingNode):
                pair = next(((k, v) for k, v in node.value if k.value == step), None)
                if pair is None:
                    break
                line, node = pair[0].start_mark.line + 1, pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
                if step >= len(node.value):
                    break
                node = node.value[step]
                line = node.start_mark.line + 1
            else:
                break
        return int(line)

    def refuse(self, message: str, *path: str | int) -> TranslationError:
        where = ".".join(str(p) for p in path)
        return TranslationError(f"{self.file}:{self.line(*path)}: {where}: {message}")


def translate_file(file: Path, *, namespace: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Our policy document for ``file`` and notes on what has no place in it."""
    if namespace is not None and not _NAMESPACE.fullmatch(namespace):
        raise TranslationError(f"--namespace: {namespace!r} is not a namespace (e.g. documents)")
    try:
        text = file.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        source = _Source(file, text)
    except OSError as exc:
        raise TranslationError(f"{file}: cannot read it ({exc.strerror})") from None
    except (UnicodeError, yaml.YAMLError):
        raise TranslationError(f"{file}: not a readable YAML file") from None
    if not isinstance(data, dict):
        raise TranslationError(f"{file}:1: a theaios-agent-auth file is a mapping")
    return _Translator(source, namespace).run(data)


class _Translator:
    def __init__(self, source: _Source, namespace: str | None) -> None:
        self.src = source
        self.namespace = namespace
        self.notes: list[str] = []

    def run(self, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        for key in data:
            if key not in _TOP:
                raise self.src.refuse("unknown key; nothing is translated by guess", key)
        for key in ("metadata", "sessions", "audit"):
            if key in data:
                self.notes.append(f"'{key}' has no place in a policy and was left out")
        if data.get("variables"):
            self.notes.append("'variables' were left out (only conditions used them)")
        delegation = data.get("delegation") or {}
        if isinstance(delegation, dict) and delegation.get("rules"):
            raise self.src.refuse(
                "delegation rules have no exact counterpart: people delegate by consent at "
                "sign-in or delegation.grants in the configuration",
                "delegation",
                "rules",
            )
        roles = self._roles(data.get("roles") or {})
        profiles = self._profiles(data.get("profiles") or {}, roles)
        self._a2a(data.get("a2a") or {}, profiles)
        document: dict[str, Any] = {"roles": roles, "profiles": profiles}
        rules = self._approvals(data.get("approval_policies") or [])
        if rules:
            document["tiers"] = {"rules": rules}
        return document, self.notes

    def _action(self, action: Any, *path: str | int) -> str:
        if not isinstance(action, str) or not action:
            raise self.src.refuse("an action must be a string", *path)
        verb, colon, obj = action.partition(":")
        if not colon:
            if self.namespace is None:
                raise self.src.refuse(
                    f"action {action!r} names no resource; pass --namespace", *path
                )
            obj = self.namespace
        if verb == "*" and not colon and self.namespace is not None:
            return f"{self.namespace}:*"
        if verb == "*" and _NAMESPACE.fullmatch(obj):
            return f"{obj}:*"
        if not _VERB.fullmatch(verb) or not _NAMESPACE.fullmatch(obj):
            raise self.src.refuse(
                f"action {action!r} has no exact translation (wildcards stand only for every "
                "action of one namespace)",
                *path,
            )
        return f"{obj}:{verb}"

    def _roles(self, section: Any) -> dict[str, Any]:
        if not isinstance(section, dict):
            raise self.src.refuse("roles must be a mapping", "roles")
        roles: dict[str, Any] = {}
        for name, body in section.items():
            body = body or {}
            for key in body:
                if key not in ("actions", "extends", "description"):
                    raise self.src.refuse("unknown key", "roles", name, key)
            actions = [
                self._action(a, "roles", name, "actions", i)
                for i, a in enumerate(body.get("actions") or [])
            ]
            role: dict[str, Any] = {"permissions": actions}
            if body.get("extends"):
                role["extends"] = [body["extends"]]
            roles[str(name)] = role
        if roles:
            self.notes.append("roles are people's roles here too: assign them to users")
        return roles

    def _flatten(self, roles: dict[str, Any], name: str, path: tuple[str | int, ...]) -> list[str]:
        seen: list[str] = []
        while name:
            if name not in roles or name in seen:
                raise self.src.refuse(
                    f"role {name!r} is not defined (or extends in a cycle)", *path
                )
            seen.append(name)
            name = (roles[name].get("extends") or [""])[0]
        return [p for role in seen for p in roles[role]["permissions"]]

    def _profiles(self, section: Any, roles: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(section, dict):
            raise self.src.refuse("profiles must be a mapping", "profiles")
        profiles: dict[str, Any] = {}
        known = {"role", "allow", "deny", "scopes", "max_session_duration", "default_tier",
                 "description"}  # fmt: skip
        for name, body in section.items():
            body = body or {}
            for key in body:
                if key not in known:
                    raise self.src.refuse("unknown key", "profiles", name, key)
            if body.get("scopes"):
                raise self.src.refuse(
                    "session scopes are matched with fnmatch and never against a resource; "
                    "write the resources into allow (namespace:action) instead",
                    "profiles",
                    name,
                    "scopes",
                )
            allow = (
                self._flatten(roles, body["role"], ("profiles", name, "role"))
                if body.get("role")
                else []
            )
            allow += [
                self._action(a, "profiles", name, "allow", i)
                for i, a in enumerate(body.get("allow") or [])
            ]
            profile: dict[str, Any] = {"allow": list(dict.fromkeys(allow))}
            deny = [
                self._action(a, "profiles", name, "deny", i)
                for i, a in enumerate(body.get("deny") or [])
            ]
            if deny:
                profile["deny"] = deny
            tier = body.get("default_tier", "autonomous")
            if tier not in _TIERS:
                raise self.src.refuse(f"tier {tier!r} is unknown", "profiles", name, "default_tier")
            if tier != "autonomous":
                profile["default_tier"] = _TIERS[tier]
            if "max_session_duration" in body:
                self.notes.append(
                    f"profiles.{name}.max_session_duration ({body['max_session_duration']} s): "
                    f"set max_token_lifetime on the client {name!r} in the configuration"
                )
            profiles[str(name)] = profile
        return profiles

    def _approvals(self, rules: Any) -> list[dict[str, Any]]:
        if not isinstance(rules, list):
            raise self.src.refuse("approval_policies must be a list", "approval_policies")
        out: list[dict[str, Any]] = []
        for i, rule in enumerate(rules):
            path = ("approval_policies", i)
            tier = rule.get("tier", "soft")
            if tier not in _TIERS:
                raise self.src.refuse(f"tier {tier!r} is unknown", *path, "tier")
            actions = self._condition_actions(rule.get("condition", ""), *path, "condition")
            if tier == "autonomous":
                self.notes.append(f"approval_policies[{i}] is autonomous, which changes nothing")
                continue
            name = rule.get("name") or f"approval-{i}"
            permissions = [self._action(a, *path, "condition") for a in actions]
            out.append({"name": str(name), "tier": _TIERS[tier], "permissions": permissions})
        return out

    def _condition_actions(self, condition: Any, *path: str | int) -> list[str]:
        text = condition if isinstance(condition, str) else ""
        if match := _ACTION_IS.fullmatch(text):
            return [match.group(2)]
        if match := _ACTION_IN.fullmatch(text):
            items = [_QUOTED.fullmatch(x) for x in match.group(1).split(",")]
            if items and all(items):
                return [m.group(2) for m in items if m]
        raise self.src.refuse(
            'only conditions naming actions (action == "x", action in [...]) translate '
            "exactly; write others as a CEL condition (docs/policy.md)",
            *path,
        )

    def _a2a(self, section: Any, profiles: dict[str, Any]) -> None:
        if not isinstance(section, dict):
            raise self.src.refuse("a2a must be a mapping", "a2a")
        if section.get("default", "deny") != "deny":
            raise self.src.refuse(
                "every hand-off is named here; there is no allow-all default", "a2a", "default"
            )
        for i, rule in enumerate(section.get("policies") or []):
            path = ("a2a", "policies", i)
            if rule.get("effect", "allow") == "deny":
                self.notes.append(f"a2a.policies[{i}] denies what is denied already; left out")
                continue
            source, target = rule.get("from_agent", "*"), rule.get("to_agent", "*")
            if rule.get("action", "*") != "*" or rule.get("condition"):
                raise self.src.refuse(
                    "a hand-off is allowed for what the receiving agent's profile allows; "
                    "per-action or conditional hand-offs do not translate",
                    *path,
                )
            for agent, key in ((source, "from_agent"), (target, "to_agent")):
                if agent not in profiles:
                    raise self.src.refuse(f"{agent!r} is not a profile (no wildcards)", *path, key)
            profiles[source].setdefault("delegate_to", []).append(target)
            profiles[target].setdefault("receive_from", []).append(source)
