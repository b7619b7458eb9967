"""The delegation policy: loading refuses what it cannot mean, and every rule is tried."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from deputize.keys.policy import PolicyError, Question, decide, load_policy
from deputize.keys.policy.conditions import EvaluationError

STORY: dict[str, Any] = {
    "roles": {
        "viewer": {"permissions": ["documents:read"]},
        "editor": {"extends": ["viewer"], "permissions": ["documents:update", "documents:delete"]},
        "admin": {"extends": ["editor"], "permissions": ["users:*"]},
    },
    "profiles": {
        "scheduling-agent": {
            "allow": ["documents:*", "users:*"],
            "deny": [{"actions": ["*"], "resources": ["documents:/hr/**"]}],
            "max_depth": 1,
            "delegate_to": ["analysis-agent"],
        },
        "analysis-agent": {"allow": ["documents:read"], "receive_from": ["scheduling-agent"]},
        "rogue-agent": {"allow": ["documents:read"]},
    },
    "tiers": {
        "default": "autonomous",
        "rules": [
            {"name": "deletes-wait", "tier": "supervised", "permissions": ["documents:delete"]},
            {"name": "users-never", "tier": "forbidden", "permissions": ["users:*"]},
        ],
    },
    "conditions": [
        {
            "name": "weekdays-only",
            "permissions": ["documents:update"],
            "when": "now.getDayOfWeek() >= 1 && now.getDayOfWeek() <= 5",
        },
        {
            "name": "small-payments",
            "permissions": ["payments:*"],
            "when": "details.amount < 500",
        },
    ],
}
POLICY = load_policy(STORY)
WEDNESDAY = datetime(2026, 12, 2, 10, tzinfo=UTC)
SATURDAY = datetime(2026, 12, 5, 10, tzinfo=UTC)


def ask(
    action: str, resource: str, *chain: str, roles: tuple[str, ...] = ("admin",), **kw: Any
) -> Any:
    kw.setdefault("now", WEDNESDAY)
    return decide(POLICY, Question("alice", roles, action, resource, chain=chain, **kw))


def test_the_story() -> None:
    assert ask("read", "documents:/q3/report.pdf", "scheduling-agent").outcome == "allow"
    supervised = ask("delete", "documents:/q3/report.pdf", "scheduling-agent")
    assert (supervised.outcome, supervised.tier, supervised.rule) == (
        "supervised",
        "supervised",
        "tiers.deletes-wait",
    )
    forbidden = ask("read", "users:/bob", "scheduling-agent")
    assert (forbidden.outcome, forbidden.tier) == ("deny", "forbidden")
    read = ask("read", "documents:/q3/report.pdf", "scheduling-agent", "analysis-agent")
    assert read.outcome == "allow"
    update = ask("update", "documents:/q3/report.pdf", "scheduling-agent", "analysis-agent")
    assert (update.outcome, update.rule) == ("deny", "profiles.analysis-agent.allow")
    assert POLICY.hash and read.policy == POLICY.hash


def test_the_person_acting_alone_is_not_tiered() -> None:
    assert ask("read", "users:/bob").outcome == "allow"
    assert ask("delete", "documents:/a").outcome == "allow"


def test_roles_bound_what_any_agent_gets() -> None:
    denied = ask("update", "documents:/a", "scheduling-agent", roles=("viewer",))
    assert (denied.outcome, denied.rule) == ("deny", "roles")
    assert ask("read", "documents:/a", "scheduling-agent", roles=("nobody",)).outcome == "deny"
    assert ask("read", "documents:/a", "scheduling-agent", roles=()).outcome == "deny"


def test_deny_beats_allow_and_cannot_be_dodged_by_case() -> None:
    for resource in ("documents:/hr/salaries", "documents:/HR/salaries", "DOCUMENTS:/Hr/x"):
        decision = ask("read", resource, "scheduling-agent")
        assert (decision.outcome, decision.rule) == ("deny", "profiles.scheduling-agent.deny")


def test_pattern_escapes_are_denied() -> None:
    for trick in ("documents:/q3/../hr/salaries", "documents:/q3/%2e%2e/hr/x", "documents:/hr//x"):
        decision = ask("read", trick, "scheduling-agent")
        assert (decision.outcome, decision.rule) == ("deny", "resource")


def test_a_pattern_reaching_into_a_deny_is_refused() -> None:
    decision = ask("read", "documents:/**", "scheduling-agent", pattern=True)
    assert (decision.outcome, decision.rule) == ("deny", "profiles.scheduling-agent.deny")


def test_hand_offs_follow_the_agent_to_agent_rules() -> None:
    assert ask("read", "documents:/a", "rogue-agent").outcome == "allow"
    refused = ask("read", "documents:/a", "scheduling-agent", "rogue-agent")
    assert (refused.outcome, refused.rule) == ("deny", "profiles.scheduling-agent.delegate_to")
    reverse = ask("read", "documents:/a", "analysis-agent", "scheduling-agent")
    assert reverse.outcome == "deny"
    unknown = ask("read", "documents:/a", "ghost-agent")
    assert (unknown.outcome, unknown.rule) == ("deny", "profiles")


def test_max_depth() -> None:
    # scheduling-agent may act at depth 1 only: not behind another agent even if allowed.
    policy = copy.deepcopy(STORY)
    policy["profiles"]["analysis-agent"]["delegate_to"] = ["scheduling-agent"]
    policy["profiles"]["scheduling-agent"]["receive_from"] = ["analysis-agent"]
    decision = decide(
        load_policy(policy),
        Question(
            "alice", ["admin"], "read", "documents:/a", chain=["analysis-agent", "scheduling-agent"]
        ),
    )
    assert (decision.outcome, decision.rule) == ("deny", "profiles.scheduling-agent.max_depth")


def test_conditions() -> None:
    assert ask("update", "documents:/a", "scheduling-agent").outcome == "allow"
    weekend = ask("update", "documents:/a", "scheduling-agent", now=SATURDAY)
    assert (weekend.outcome, weekend.rule) == ("deny", "conditions.weekdays-only")


def test_a_condition_that_fails_at_run_time_denies() -> None:
    policy = copy.deepcopy(STORY)
    policy["roles"]["admin"]["permissions"].append("payments:*")
    policy["profiles"]["scheduling-agent"]["allow"].append("payments:*")
    loaded = load_policy(policy)
    base = Question("alice", ["admin"], "pay", "payments:/x", chain=["scheduling-agent"])
    ok = decide(loaded, Question(**{**_fields(base), "details": {"amount": 100}}))
    assert ok.outcome == "allow"
    missing = decide(loaded, base)  # details.amount is absent
    assert (missing.outcome, missing.rule) == ("deny", "conditions.small-payments")
    assert "could not be evaluated" in missing.reason
    wrong_type = decide(loaded, Question(**{**_fields(base), "details": {"amount": "x"}}))
    assert wrong_type.outcome == "deny"


def test_a_condition_remembers_results_only_by_every_value_it_reads() -> None:
    """Each result is remembered by exactly the values the condition read: another value — one
    CEL tells apart, such as 1 and 1.0 and true — is evaluated; an error never is; a condition
    that reads ``now`` remembers nothing."""
    from deputize.keys.policy.conditions import compile_condition

    small = compile_condition("details.amount < 500")
    assert small.memo == {}
    assert small.holds({"details": {"amount": 100}}) is True
    assert small.holds({"details": {"amount": 900}}) is False
    assert small.holds({"details": {"amount": 100}}) is True  # remembered, still right
    assert len(small.memo) == 2
    typed = compile_condition("details.flag == true")
    assert typed.holds({"details": {"flag": True}}) is True
    assert typed.holds({"details": {"flag": 1}}) is False  # not taken for True's result
    assert typed.holds({"details": {"flag": 1.0}}) is False
    assert len(typed.memo or {}) == 3
    for _ in range(2):  # errors are never remembered: each one is raised (and audited)
        with pytest.raises(EvaluationError):
            small.holds({"details": {"amount": "x"}})
    assert len(small.memo) == 2
    chains = compile_condition("size(chain) < 2")
    assert chains.holds({"chain": ["a"]}) and not chains.holds({"chain": ["a", "b"]})
    assert compile_condition("now.getFullYear() > 2025").memo is None
    huge = compile_condition("size(details.items) > 0")
    assert huge.holds({"details": {"items": list(range(100))}})
    assert huge.memo == {}  # too large to key on: evaluated every time


def _fields(q: Question) -> dict[str, Any]:
    return {name: getattr(q, name) for name in q.__dataclass_fields__}


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda p: p["roles"]["viewer"].update(extends=["admin"]), "policy.roles.viewer.extends"),
        (lambda p: p["roles"]["viewer"].update(extends=["ghost"]), "policy.roles.viewer.extends"),
        (
            lambda p: p["conditions"][0].update(when="now.getDayOfWeek() >= 1 && tme < 3"),
            "policy.conditions[0].when",
        ),
        (
            lambda p: p["conditions"][0].update(when="person.rols.size() > 0"),
            "policy.conditions[0].when",
        ),
        (lambda p: p["conditions"][0].update(when="action =="), "policy.conditions[0].when"),
        (lambda p: p["tiers"]["rules"][0].update(tier="sometimes"), "policy.tiers.rules[0].tier"),
        (
            lambda p: p["profiles"]["analysis-agent"].update(receive_from=["ghost"]),
            "policy.profiles.analysis-agent",
        ),
        (
            lambda p: p["profiles"]["rogue-agent"].update(allow=["documents read"]),
            "policy.profiles.rogue-agent.allow[0]",
        ),
        (
            lambda p: p["profiles"]["rogue-agent"].update(alow=[]),
            "policy.profiles.rogue-agent.alow",
        ),
        (
            lambda p: p["profiles"]["rogue-agent"].update(max_depth=0),
            "policy.profiles.rogue-agent.max_depth",
        ),
        (
            lambda p: p["profiles"]["rogue-agent"].update(
                allow=[{"actions": ["read"], "resources": ["documents:/a/../b"]}]
            ),
            "policy.profiles.rogue-agent.allow[0].resources",
        ),
        (lambda p: p.update(rules=[]), "policy.rules"),
    ],
)
def test_a_broken_policy_is_refused_naming_the_key(change: Any, path: str) -> None:
    policy = copy.deepcopy(STORY)
    change(policy)
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    assert caught.value.path == path, str(caught.value)


def test_comprehension_variables_are_not_unknown() -> None:
    policy = copy.deepcopy(STORY)
    policy["conditions"][0]["when"] = 'person.roles.exists(r, r == "admin")'
    decision = decide(
        load_policy(policy),
        Question("alice", ["admin"], "update", "documents:/a", chain=["scheduling-agent"]),
    )
    assert decision.outcome == "allow"


def test_the_hash_names_the_version() -> None:
    changed = copy.deepcopy(STORY)
    changed["tiers"]["default"] = "supervised"
    assert load_policy(changed).hash != POLICY.hash
    assert load_policy(copy.deepcopy(STORY)).hash == POLICY.hash


def test_detail_types_are_declared_in_the_policy() -> None:
    policy = load_policy(
        {
            "types": {
                "payment": {
                    "actions": ["initiate"],
                    "resource_field": "creditors",
                    "limits": ["max_amount"],
                }
            }
        }
    )
    assert policy.types["payment"].limits == frozenset({"max_amount"})
    for broken, path in [
        ({"payment": {"actions": []}}, "policy.types.payment.actions"),
        (
            {"payment": {"actions": ["x"], "resource_field": "Bad Field"}},
            "policy.types.payment.resource_field",
        ),
        ({"payment": {"actions": ["x"], "limits": ["actions"]}}, "policy.types.payment.limits"),
    ]:
        with pytest.raises(PolicyError) as caught:
            load_policy({"types": broken})
        assert caught.value.path == path


def test_asking_for_every_action_meets_every_tier() -> None:
    # A scope documents:* must not slip past the supervised tier on documents:delete.
    decision = ask("*", "documents:/**", "scheduling-agent", pattern=True)
    assert decision.outcome != "allow"
    admin_all = decide(
        load_policy({**STORY, "tiers": {}, "profiles": {"a": {"allow": ["documents:*"]}}}),
        Question("alice", ["admin"], "*", "documents:/**", chain=["a"], pattern=True),
    )
    assert (admin_all.outcome, admin_all.rule) == ("deny", "roles")  # no role grants every action


def test_without_a_person_only_the_profile_and_tiers_bound_an_agent() -> None:
    alone = decide(
        POLICY,
        Question("scheduling-agent", None, "read", "documents:/a", chain=["scheduling-agent"]),
    )
    assert alone.outcome == "allow"
    forbidden = decide(
        POLICY, Question("scheduling-agent", None, "read", "users:/a", chain=["scheduling-agent"])
    )
    assert forbidden.outcome == "deny"


# --- deciding for a token ----------------------------------------------------------------------


def _token(**claims: Any) -> dict[str, Any]:
    return {"sub": "alice", "client_id": "scheduling-agent", "act": {"sub": "scheduling-agent"},
            "roles": ["admin"], **claims}  # fmt: skip


def test_a_token_decides_through_what_it_carries() -> None:
    from deputize.keys.policy import decide_for_token

    story = load_policy(
        {**STORY, "types": {"documents": {"actions": ["read", "update", "delete"]}}}
    )
    scoped = _token(scope="documents:read")
    assert decide_for_token(story, scoped, "read", "documents:/q3/a", now=WEDNESDAY).allowed
    update = decide_for_token(story, scoped, "update", "documents:/q3/a", now=WEDNESDAY)
    assert (update.outcome, update.rule) == ("deny", "token")
    detailed = _token(
        authorization_details=[
            {"type": "documents", "actions": ["read", "delete"], "locations": ["documents:/q3/*"]}
        ]
    )
    assert decide_for_token(story, detailed, "read", "documents:/q3/a", now=WEDNESDAY).allowed
    outside = decide_for_token(story, detailed, "read", "documents:/q4/a", now=WEDNESDAY)
    assert outside.rule == "token"
    delete = decide_for_token(story, detailed, "delete", "documents:/q3/a", now=WEDNESDAY)
    assert delete.outcome == "supervised"  # the tier holds even for what the token carries
    roleless = decide_for_token(story, {**scoped, "roles": []}, "read", "documents:/q3/a")
    assert roleless.rule == "roles"
    hr = decide_for_token(story, _token(scope="documents:read"), "read", "documents:/hr/x")
    assert hr.rule == "profiles.scheduling-agent.deny"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "alice", "act": {"sub": ["x"]}, "scope": "documents:read", "roles": ["admin"]},
        {"sub": "alice", "act": {"sub": "scheduling-agent"}, "scope": 7},
        {
            "sub": "alice",
            "act": {"sub": "scheduling-agent"},
            "scope": "documents:read",
            "roles": [1],
        },
        {"sub": "alice", "act": {"sub": "scheduling-agent"}, "authorization_details": "x"},
    ],
)
def test_malformed_token_claims_deny(claims: dict[str, Any]) -> None:
    from deputize.keys.policy import decide_for_token

    assert decide_for_token(POLICY, claims, "read", "documents:/a").outcome == "deny"


def test_remembered_decisions_never_outlive_what_they_depend_on() -> None:
    policy = load_policy(copy.deepcopy(STORY))
    base = Question("alice", ["admin"], "read", "documents:/a", chain=["scheduling-agent"])
    assert decide(policy, base).outcome == "allow"
    assert decide(policy, base).outcome == "allow"  # from the cache
    # Another person, other roles, another chain: each decided on its own.
    viewer_update = Question(
        "alice", ["viewer"], "update", "documents:/a", chain=["scheduling-agent"], now=WEDNESDAY
    )
    assert decide(policy, viewer_update).outcome == "deny"
    assert (
        decide(policy, Question(**{**_fields(viewer_update), "roles": ["admin"]})).outcome
        == "allow"
    )
    # A condition that reads the time is decided afresh every time.
    weekend = Question(**{**_fields(viewer_update), "roles": ["admin"], "now": SATURDAY})
    assert decide(policy, weekend).outcome == "deny"
    # Details read by a condition are part of what is remembered.
    paying = copy.deepcopy(STORY)
    paying["roles"]["admin"]["permissions"].append("payments:*")
    paying["profiles"]["scheduling-agent"]["allow"].append("payments:*")
    loaded = load_policy(paying)
    pay = Question("alice", ["admin"], "pay", "payments:/x", chain=["scheduling-agent"])
    assert (
        decide(loaded, Question(**{**_fields(pay), "details": {"amount": 100}})).outcome == "allow"
    )
    assert (
        decide(loaded, Question(**{**_fields(pay), "details": {"amount": 900}})).outcome == "deny"
    )
    # The cache is bounded.
    for i in range(5000):
        decide(
            loaded,
            Question("alice", ["admin"], "read", f"documents:/f{i}", chain=["scheduling-agent"]),
        )
    assert len(loaded._decisions) <= 4096
