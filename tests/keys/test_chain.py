"""Delegation chain parsing and the attenuation rules, each with a test that tries to break it."""

from __future__ import annotations

from typing import Any

import pytest

from deputize.keys.chain import (
    HARD_MAX_DEPTH,
    AttenuationError,
    Chain,
    attenuate_audience,
    attenuate_expiry,
    attenuate_scopes,
    audience_list,
    parse_chain,
    scope_list,
)
from deputize.keys.errors import InvalidClaimsError


def test_act_nests_the_newest_actor_outermost() -> None:
    chain = Chain("alice").extend("A", max_depth=5).extend("B", max_depth=5)
    assert chain.act_claim() == {"sub": "B", "act": {"sub": "A"}}
    assert chain.current_actor == "B" and chain.depth == 2
    assert parse_chain({"sub": "alice", "act": chain.act_claim()}) == chain


def test_a_chain_without_actors_has_no_act() -> None:
    assert Chain("alice").act_claim() is None
    assert parse_chain({"sub": "alice"}) == Chain("alice")


@pytest.mark.parametrize(
    ("chain", "actor", "max_depth"),
    [
        (Chain("alice", ("A", "B")), "A", 10),
        (Chain("alice", ("A",)), "alice", 10),
        (Chain("alice", ("A", "B")), "C", 2),
        (Chain("alice", tuple(f"a{i}" for i in range(HARD_MAX_DEPTH))), "z", 1000),
        (Chain("alice"), "", 10),
    ],
    ids=[
        "refuses an agent that already acts in the chain (a cycle)",
        "refuses the subject acting for itself",
        "refuses a hop past the configured depth",
        "refuses a hop past the hard depth limit whatever the configuration",
        "refuses an empty actor",
    ],
)
def test_extend_refuses(chain: Chain, actor: str, max_depth: int) -> None:
    with pytest.raises(AttenuationError):
        chain.extend(actor, max_depth=max_depth)


def _nested(depth: int) -> dict[str, Any]:
    act: dict[str, Any] = {"sub": "a0"}
    for i in range(1, depth):
        act = {"sub": f"a{i}", "act": act}
    return act


@pytest.mark.parametrize(
    "claims",
    [
        {"act": {"sub": "A"}},
        {"sub": "", "act": {"sub": "A"}},
        {"sub": "alice", "act": "A"},
        {"sub": "alice", "act": {"client_id": "A"}},
        {"sub": "alice", "act": {"sub": "A", "act": {"sub": "A"}}},
        {"sub": "alice", "act": {"sub": "alice"}},
        {"sub": "alice", "act": _nested(HARD_MAX_DEPTH + 1)},
        {"sub": "alice", "act": {"sub": 7}},
    ],
    ids=[
        "rejects a missing sub",
        "rejects an empty sub",
        "rejects act that is not an object",
        "rejects act without sub",
        "rejects an actor appearing twice",
        "rejects the subject appearing as an actor",
        "rejects a chain deeper than the hard limit",
        "rejects a non-string actor",
    ],
)
def test_parse_chain_rejects(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidClaimsError):
        parse_chain(claims)


def test_scopes_narrow_to_parent_and_allowed_without_forbidden() -> None:
    parent = ["docs:read", "docs:write", "admin"]
    allowed = ["docs:read", "docs:write", "admin"]
    assert attenuate_scopes(parent, None, allowed=allowed, forbidden=["admin"]) == [
        "docs:read",
        "docs:write",
    ]
    assert attenuate_scopes(parent, ["docs:read"], allowed=allowed) == ["docs:read"]


@pytest.mark.parametrize(
    ("requested", "allowed", "forbidden"),
    [
        (["docs:delete"], ["docs:read", "docs:delete"], []),
        (["docs:write"], ["docs:read"], []),
        (["admin"], ["admin"], ["admin"]),
    ],
    ids=[
        "refuses a scope the parent lacks (escalation)",
        "refuses a scope the actor is not allowed",
        "refuses a scope forbidden for agents",
    ],
)
def test_scope_escalation_is_invalid_scope(
    requested: list[str], allowed: list[str], forbidden: list[str]
) -> None:
    with pytest.raises(AttenuationError) as info:
        attenuate_scopes(["docs:read", "admin"], requested, allowed=allowed, forbidden=forbidden)
    assert info.value.error == "invalid_scope"


def test_audience_only_narrows() -> None:
    assert attenuate_audience(["https://a", "https://b"], []) == ["https://a", "https://b"]
    assert attenuate_audience(["https://a", "https://b"], ["https://b"]) == ["https://b"]
    with pytest.raises(AttenuationError) as info:
        attenuate_audience(["https://a"], ["https://a", "https://evil"])
    assert info.value.error == "invalid_target"


@pytest.mark.parametrize(
    ("parent_exp", "lifetime", "ceiling", "expected"),
    [(1300, 600, None, 1300), (2000, 300, None, 1300), (2000, 600, 120, 1120)],
    ids=[
        "never outlives the parent",
        "takes the configured lifetime when shorter",
        "takes the actor's ceiling when shorter",
    ],
)
def test_expiry(parent_exp: int, lifetime: int, ceiling: int | None, expected: int) -> None:
    assert attenuate_expiry(parent_exp, now=1000, lifetime=lifetime, ceiling=ceiling) == expected


def test_expired_parent_cannot_be_extended() -> None:
    with pytest.raises(AttenuationError) as info:
        attenuate_expiry(1000, now=1000, lifetime=300)
    assert info.value.error == "invalid_request"


def test_claim_helpers() -> None:
    assert audience_list({"aud": "x"}) == ["x"]
    assert audience_list({"aud": ["x", "y"]}) == ["x", "y"]
    assert scope_list({"scope": "a  b"}) == ["a", "b"]
    assert scope_list({}) == []
    with pytest.raises(InvalidClaimsError):
        audience_list({"aud": 3})
    with pytest.raises(InvalidClaimsError):
        scope_list({"scope": ["a"]})
