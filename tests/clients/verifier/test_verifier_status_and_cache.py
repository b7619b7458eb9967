"""Status lists served to the verifier by a transport we control (every kind of bad list),
and the verified-token cache never outliving what it cached."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hostile_publisher import Behaviour, hostile_publisher
from verifier_support import (
    AS_KEY,
    STATUS_URI,
    URL,
    Clock,
    make_proof,
    make_token,
    pinned,
    status_list_token,
)

from deputize.keys import SigningKey
from deputize.verifier import InvalidTokenError, Principal, UnavailableError, Verifier, _http

OTHER_KEY = SigningKey.generate("ES256")


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Lists:
    """Serves whatever status list token the test sets, and counts requests."""

    def __init__(self) -> None:
        self.body: str | None = None
        self.requests = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        assert str(request.url) == STATUS_URI
        if self.body is None:
            return httpx.Response(503)
        return httpx.Response(200, text=self.body)


def verifier_with(clock: Clock, lists: Lists, **options: Any) -> Verifier:
    http = httpx.Client(transport=httpx.MockTransport(lists.handler))
    return pinned(clock, http=http, **options)


def call(verifier: Verifier, clock: Clock, idx: int) -> Principal:
    token = make_token(clock, status={"status_list": {"idx": idx, "uri": STATUS_URI}})
    return verifier.verify(
        authorization=f"DPoP {token}", dpop=make_proof(clock, token), method="GET", url=URL
    )


def test_revoked_via_status_list(clock: Clock) -> None:
    lists = Lists()
    lists.body = status_list_token(clock, revoked={7})
    verifier = verifier_with(clock, lists)
    assert call(verifier, clock, 6).user == "alice"
    with pytest.raises(InvalidTokenError, match="revoked"):
        call(verifier, clock, 7)
    assert lists.requests == 1  # cached


def test_list_is_refetched_after_ttl_and_revocation_shows(clock: Clock) -> None:
    lists = Lists()
    lists.body = status_list_token(clock, revoked=set(), ttl=60)
    verifier = verifier_with(clock, lists)
    call(verifier, clock, 3)
    lists.body = status_list_token(clock, revoked={3}, ttl=60)
    clock.now += 59
    call(verifier, clock, 3)  # within ttl: the cached list is still used
    clock.now += 2
    with pytest.raises(InvalidTokenError, match="revoked"):
        call(verifier, clock, 3)
    assert lists.requests == 2


BadList = Callable[[Clock], str]
BAD_LISTS: list[tuple[str, BadList]] = [
    ("signed by another key", lambda c: status_list_token(c, set(), key=OTHER_KEY)),
    ("for another list", lambda c: status_list_token(c, set(), uri=STATUS_URI + "1")),
    ("from another issuer", lambda c: status_list_token(c, set(), iss="https://evil.example")),
    ("expired", lambda c: status_list_token(c, set(), exp=int(c()) - 100)),
    ("exp too large for a float", lambda c: status_list_token(c, set(), exp=10**400)),
    ("ttl too large for a float", lambda c: status_list_token(c, set(), ttl=10**400)),
    ("ttl not a number", lambda c: status_list_token(c, set(), ttl="60")),
    ("wrong typ", lambda c: _retyped(c)),
    ("bits not 1, 2, 4 or 8", lambda c: status_list_token(
        c, set(), status_list={"bits": 3, "lst": "eJwDAAAAAAE"})),
    ("lst not zlib", lambda c: status_list_token(c, set(), status_list={"bits": 1, "lst": "AAAA"})),
    ("not a JWT", lambda c: "hello"),
]  # fmt: skip


def _retyped(clock: Clock) -> str:
    from deputize.keys import sign

    return sign({"iss": "x", "sub": STATUS_URI, "iat": int(clock())}, AS_KEY, typ="JWT")


@pytest.mark.parametrize(
    "make", [make for _, make in BAD_LISTS], ids=[f"fails closed: {n}" for n, _ in BAD_LISTS]
)
def test_a_bad_list_fails_closed(clock: Clock, make: BadList) -> None:
    lists = Lists()
    lists.body = make(clock)
    with pytest.raises(UnavailableError):
        call(verifier_with(clock, lists), clock, 1)


def test_index_outside_the_list_is_refused(clock: Clock) -> None:
    lists = Lists()
    lists.body = status_list_token(clock, set(), size=64)
    with pytest.raises(InvalidTokenError, match="outside"):
        call(verifier_with(clock, lists), clock, 64)


def test_an_unreachable_issuer_serves_the_last_list_until_its_exp(clock: Clock) -> None:
    lists = Lists()
    lists.body = status_list_token(clock, set(), ttl=60)  # exp: now + 600
    verifier = verifier_with(clock, lists, status_retry_interval=5)
    call(verifier, clock, 1)
    lists.body = None  # Deputize is down
    clock.now += 100
    call(verifier, clock, 1)  # stale but unexpired: still used
    call(verifier, clock, 1)  # and the failed refetch is not retried on every request
    assert lists.requests == 2
    clock.now += 600
    with pytest.raises(UnavailableError):
        call(verifier, clock, 1)


def test_require_status(clock: Clock) -> None:
    token = make_token(clock)
    with pytest.raises(InvalidTokenError, match="status"):
        pinned(clock, require_status=True).verify(
            authorization=f"DPoP {token}", dpop=make_proof(clock, token), method="GET", url=URL
        )


def test_a_cached_token_still_expires(clock: Clock) -> None:
    verifier = pinned(clock)
    token = make_token(clock)
    verifier.verify(
        authorization=f"DPoP {token}", dpop=make_proof(clock, token), method="GET", url=URL
    )
    clock.now += 400
    with pytest.raises(InvalidTokenError, match="expired"):
        verifier.verify(
            authorization=f"DPoP {token}", dpop=make_proof(clock, token), method="GET", url=URL
        )


def test_the_token_cache_is_bounded(clock: Clock) -> None:
    verifier = pinned(clock, token_cache_size=3)
    for _ in range(5):
        token = make_token(clock)
        verifier.verify(
            authorization=f"DPoP {token}", dpop=make_proof(clock, token), method="GET", url=URL
        )
    assert len(verifier._tokens) == 3


def test_a_url_httpx_refuses_is_unavailable_not_a_crash() -> None:
    """httpx raises InvalidURL, which is no httpx.HTTPError, for a control character."""
    with httpx.Client() as client, pytest.raises(UnavailableError):
        _http.get(client, STATUS_URI + "\x01", accept="application/statuslist+jwt")

    async def fetch() -> None:
        async with httpx.AsyncClient() as client:
            await _http.aget(client, STATUS_URI + "\x01", accept="application/statuslist+jwt")

    with pytest.raises(UnavailableError):
        asyncio.run(fetch())


def _fetch_both(url: str, **limits: Any) -> list[UnavailableError]:
    """The sync and the async fetch of ``url``; each must refuse it."""
    refusals = []
    with httpx.Client(timeout=5) as client, pytest.raises(UnavailableError) as sync:
        _http.get_json(client, url, **limits)
    refusals.append(sync.value)

    async def fetch() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await _http.aget_json(client, url, **limits)

    with pytest.raises(UnavailableError) as async_:
        asyncio.run(fetch())
    refusals.append(async_.value)
    return refusals


def test_one_deadline_bounds_a_whole_fetch() -> None:
    """Each byte arrives well within the read timeout; only a deadline on the whole fetch ends
    it (the sync one at the first byte past it)."""
    with hostile_publisher(Behaviour("drip", b'{"keys": []}' + b" " * 200, interval=0.05)) as url:
        for refusal in _fetch_both(url, deadline=0.5):
            assert "longer than 0.5 s" in refusal.description


def test_the_size_cap_holds_while_the_body_arrives() -> None:
    """An endless body is refused at the cap; it used to be read in full before the check."""
    with hostile_publisher(Behaviour("endless")) as url:
        for refusal in _fetch_both(url, max_bytes=100_000):
            assert "more than 100000 bytes" in refusal.description


def test_json_nested_too_deep_is_unavailable_not_a_crash() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    with hostile_publisher(Behaviour("body", body)) as url:
        for refusal in _fetch_both(url, max_bytes=len(body)):
            assert "did not send JSON" in refusal.description
