"""The cache of our own verified tokens: bounded, and emptied when the key set changes."""

from __future__ import annotations

from deputize.server.tokens.verified_tokens import VerifiedTokens


def test_a_changed_key_set_empties_the_cache() -> None:
    cache = VerifiedTokens()
    view, rotated = object(), object()
    assert cache.get("token", view) is None
    cache.put("token", {"jti": "1"})
    assert cache.get("token", view) == {"jti": "1"}
    assert cache.get("token", rotated) is None  # verified under the old keys: forgotten
    assert cache.get("token", view) is None


def test_the_cache_is_bounded_and_forgets_its_oldest_entries() -> None:
    cache = VerifiedTokens(size=3)
    view = object()
    cache.get("", view)
    for n in range(5):
        cache.put(f"token-{n}", {"jti": str(n)})
    assert [cache.get(f"token-{n}", view) is not None for n in range(5)] == [
        False, False, True, True, True,
    ]  # fmt: skip


def _with_derived(claims: dict[str, str]) -> VerifiedTokens:
    """A cache holding ``claims`` for "token", verified under some view, and a derived value."""
    cache = VerifiedTokens()
    cache.get("token", object())
    cache.put("token", claims)
    cache.remember_derived("token", claims, ("parsed",))
    return cache


def test_derived_values_come_back_only_with_the_claims_they_came_from() -> None:
    claims = {"jti": "1"}
    cache = _with_derived(claims)
    assert cache.derived("token", claims) == ("parsed",)
    # Equal but not the same claims (the token verified again after an eviction): ignored.
    assert cache.derived("token", {"jti": "1"}) is None
    assert cache.derived("other", claims) is None


def test_a_changed_key_set_forgets_derived_values() -> None:
    claims = {"jti": "1"}
    cache = _with_derived(claims)
    assert cache.get("token", object()) is None  # rotated
    assert cache.derived("token", claims) is None


def test_derived_values_are_bounded_too() -> None:
    cache = VerifiedTokens(size=2)
    claims = [{"jti": str(n)} for n in range(3)]
    for n, c in enumerate(claims):
        cache.remember_derived(f"token-{n}", c, n)
    assert [cache.derived(f"token-{n}", c) for n, c in enumerate(claims)] == [None, 1, 2]


def test_parsed_subject_ceilings_are_kept_per_ledger_kind() -> None:
    """A subject token's parsed ceilings are reused only for the ledger kind they were parsed
    for: a hand-off's audience ceiling comes from ``resources``, a delegation's from ``aud``."""
    from types import SimpleNamespace
    from typing import Any

    from deputize.server.storage.tokens import DELEGATION, HANDOFF
    from deputize.server.tokens.subject_tokens import _parsed

    ctx: Any = SimpleNamespace(own_tokens=VerifiedTokens())
    ctx.own_tokens.get("token", object())
    claims = {"sub": "alice", "aud": "agent-b", "resources": ["https://api.example"]}
    ctx.own_tokens.put("token", claims)
    as_delegation = _parsed(ctx, "token", claims, DELEGATION)
    assert as_delegation[2] == ("agent-b",)
    assert _parsed(ctx, "token", claims, DELEGATION) is as_delegation  # parsed once
    assert _parsed(ctx, "token", claims, HANDOFF)[2] == ("https://api.example",)
    assert _parsed(ctx, "token", dict(claims), DELEGATION) is not as_delegation  # other claims
