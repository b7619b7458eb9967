"""The benchmarks' delegation policy: 75 rules (roles, profiles, tier rules, filler for other
namespaces and paths, as a real policy has) and 5 CEL conditions, shaped like docs/policy.md's
story.  ``decide.py`` asks it directly; ``exchange_instructions.py --policy`` serves with it."""

from __future__ import annotations

from typing import Any


def policy_document() -> dict[str, Any]:
    roles: dict[str, Any] = {
        "viewer": {"permissions": ["documents:read"]},
        "editor": {"extends": ["viewer"], "permissions": ["documents:update", "documents:delete"]},
        "admin": {"extends": ["editor"], "permissions": ["users:*", "payments:*"]},
    }
    profiles: dict[str, Any] = {
        "scheduling-agent": {
            "allow": ["documents:*", "users:*", "payments:*"],
            "deny": [{"actions": ["*"], "resources": ["documents:/hr/**"]}],
            "delegate_to": ["analysis-agent"],
        },
        "analysis-agent": {"allow": ["documents:read"], "receive_from": ["scheduling-agent"]},
        "bench-agent": {"allow": ["documents:*"]},  # exchange_instructions.py's agent
    }
    rules: list[dict[str, Any]] = [
        {"name": "deletes-wait", "tier": "supervised", "permissions": ["documents:delete"]},
        {"name": "users-never", "tier": "forbidden", "permissions": ["users:*"]},
    ]
    for i in range(20):  # filler: rules on other namespaces and paths, as a real policy has
        roles[f"team-{i}"] = {"permissions": [f"ns{i}:read", f"ns{i}:write"]}
        profiles[f"agent-{i}"] = {"allow": [f"ns{i}:*"], "deny": [f"ns{i}:purge"]}
        rules.append(
            {
                "name": f"rule-{i}",
                "tier": "supervised" if i % 2 else "forbidden",
                "permissions": [{"actions": ["write"], "resources": [f"documents:/area-{i}/**"]}],
            }
        )
    conditions = [
        # Evaluated on every update, true on any day the benchmarks run.
        {
            "name": "launched",
            "permissions": ["documents:update"],
            "when": "now.getFullYear() > 2025",
        },
        {"name": "small-payments", "permissions": ["payments:*"], "when": "details.amount < 500"},
        {
            "name": "admins-read-drafts",
            "permissions": [{"actions": ["read"], "resources": ["documents:/drafts/**"]}],
            "when": 'person.roles.exists(r, r == "admin")',
        },
        {"name": "short-chains", "permissions": ["documents:read"], "when": "size(chain) < 3"},
        {
            "name": "q3-only",
            "permissions": ["documents:*"],
            "when": '!resource.text.contains("/q4/")',
        },
    ]
    return {
        "roles": roles,
        "profiles": profiles,
        "tiers": {"rules": rules},
        "conditions": conditions,
        # The exchange benchmark's scopes, given a meaning so that every hop is decided.
        "scopes": {"read": ["documents:read"], "write": ["documents:update"]},
    }
