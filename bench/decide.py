"""Policy decisions per CPU-second, in-process (issue 16's goal: >= 20,000 per core).

A 50-rule policy with 5 CEL conditions (the shape of docs/policy.md's story, widened with
filler roles, profiles and tier rules), compiled once; the questions cycle through allowed,
supervised, forbidden, denied-by-profile and condition-checked cases so no single fast path
flatters the figure.  CPU time (``time.process_time``), not wall time: this machine is shared.

    .venv/bin/python bench/decide.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from deputize.keys.policy import Question, decide, load_policy


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
        {"name": "weekdays", "permissions": ["documents:update"], "when": "now.getDayOfWeek() < 6"},
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
    }


def questions() -> list[Question]:
    now = datetime(2026, 12, 2, 10, tzinfo=UTC)
    chain = ("scheduling-agent",)
    sub = ("scheduling-agent", "analysis-agent")
    cases = [
        ("read", "documents:/q3/report.pdf", chain),
        ("delete", "documents:/q3/report.pdf", chain),
        ("read", "users:/bob", chain),
        ("read", "documents:/hr/salaries", chain),
        ("update", "documents:/q3/report.pdf", sub),
        ("read", "documents:/drafts/plan.txt", sub),
        ("update", "documents:/q3/notes.txt", chain),
        ("pay", "payments:/acme", chain),
    ]
    return [
        Question("alice", ("admin",), a, r, chain=c, now=now, details={"amount": 120})
        for a, r, c in cases
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is reported)")
    args = parser.parse_args()
    document = policy_document()
    policy = load_policy(document)
    rule_count = sum(len(v) for k, v in document.items() if k != "tiers") + len(
        document["tiers"]["rules"]
    )
    asked = questions()
    outcomes = sorted({decide(policy, q).outcome for q in asked})
    rates = []
    for _ in range(args.rounds):
        done, start = 0, time.process_time()
        while time.process_time() - start < args.seconds:
            for q in asked:
                decide(policy, q)
            done += len(asked)
        rates.append(done / (time.process_time() - start))
    print(f"policy: {rule_count} rules, {len(document['conditions'])} CEL conditions")
    print(f"outcomes covered: {', '.join(outcomes)}")
    print(
        f"decisions per CPU-second: median {statistics.median(rates):,.0f} "
        f"(rounds: {', '.join(f'{r:,.0f}' for r in rates)}); goal >= 20,000"
    )


if __name__ == "__main__":
    main()
