"""The cache of our own verified tokens: bounded, and emptied when the key set changes."""

from __future__ import annotations

from deputize.server.verified_tokens import VerifiedTokens


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
