"""The token exchange's memory of audience values that named no client: short-lived, bounded."""

from __future__ import annotations

from deputize.server.clients.recent_misses import RecentMisses


def test_a_miss_is_remembered_for_its_ttl_only() -> None:
    misses = RecentMisses(ttl=5.0)
    assert not misses.seen("https://api.example.com", 100.0)
    misses.add("https://api.example.com", 100.0)
    assert misses.seen("https://api.example.com", 104.9)
    assert not misses.seen("https://api.example.com", 105.0)
    assert not misses.seen("https://other.example.com", 101.0)


def test_it_stays_bounded_and_forgets_the_oldest_first() -> None:
    misses = RecentMisses(ttl=60.0, size=8)
    for i in range(8):
        misses.add(f"name-{i}", 0.0)
    misses.add("newest", 0.0)
    remembered = [f"name-{i}" for i in range(8) if misses.seen(f"name-{i}", 1.0)]
    assert remembered == [f"name-{i}" for i in range(4, 8)]
    assert misses.seen("newest", 1.0)
