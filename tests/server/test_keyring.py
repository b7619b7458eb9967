"""Signing key lifecycle: next → active → retired → gone, shared through the database, and a
rotation seen by a second live server while the first server's tokens stay valid."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from deputize.keys import KeySet, SigningKey, create_proof, parse
from deputize.server.keyring import (
    RotationError,
    build_view,
    ensure_keys,
    published,
    retired_publish_until,
    rotate,
)
from deputize.server.settings import Settings, async_database_url, parse_settings
from deputize.server.storage import keys as key_rows
from deputize.server.storage.database import Database
from deputize.server.storage.keys import ACTIVE, NEXT, RETIRED, KeyRow

from support import API, ServerFactory

T = TypeVar("T")
NOW = 1_800_000_000


def _settings(database_url: str, **tokens: Any) -> Settings:
    config = {
        "issuer": "https://as.example.com",
        "database": {"url": database_url},
        "tokens": {"access_token_lifetime": 600, **tokens},
        "keys": {"jwks_max_age": 300, "refresh_interval": 30},
    }
    return parse_settings(config, env={})


def _run(settings: Settings, scenario: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(settings.async_database_url)
        try:
            await db.migrate()
            return await scenario(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


async def _ensure(db: Database, settings: Settings, now: int) -> list[KeyRow]:
    async with db.startup_lock() as conn:
        await ensure_keys(conn, settings, now)
        await conn.commit()
    return await _load(db)


async def _rotate(db: Database, settings: Settings, now: int, *, force: bool = False) -> KeyRow:
    async with db.begin() as conn:
        return await rotate(conn, settings, now, force=force)


async def _load(db: Database) -> list[KeyRow]:
    async with db.begin() as conn:
        return await key_rows.load(conn)


def _by_state(rows: list[KeyRow]) -> dict[str, list[KeyRow]]:
    states: dict[str, list[KeyRow]] = {ACTIVE: [], NEXT: [], RETIRED: []}
    for row in rows:
        states[row.state].append(row)
    return states


def _jwks_kids(rows: list[KeyRow], now: int) -> set[str]:
    document = json.loads(build_view(rows, now).jwks_json)
    return {key["kid"] for key in document["keys"]}


def test_first_start_creates_an_active_and_a_next_key(database_url: str) -> None:
    settings = _settings(database_url)

    async def scenario(db: Database) -> tuple[list[KeyRow], list[KeyRow]]:
        first = await _ensure(db, settings, NOW)
        second = await _ensure(db, settings, NOW + 5)
        return first, second

    first, second = _run(settings, scenario)
    states = _by_state(first)
    assert len(states[ACTIVE]) == len(states[NEXT]) == 1
    assert states[RETIRED] == []
    (active,), (upcoming,) = states[ACTIVE], states[NEXT]
    assert active.alg == upcoming.alg == "ES256"
    assert active.activated_at == NOW and upcoming.activated_at is None
    assert active.kid != upcoming.kid
    # The kid is the RFC 7638 thumbprint of the stored key.
    assert SigningKey.from_pem(active.private_pem.encode(), "ES256").kid == active.kid
    assert second == first  # ensuring again adds nothing

    view = build_view(first, NOW)
    assert view.active.kid == active.kid
    assert _jwks_kids(first, NOW) == {active.kid, upcoming.kid}
    document = json.loads(view.jwks_json)
    assert all("d" not in key for key in document["keys"])  # never a private member
    assert view.algorithms == ("ES256",)


@pytest.mark.parametrize(
    ("elapsed", "force", "allowed"),
    [
        (0, False, False),
        (300 + 30 - 1, False, False),
        (0, True, True),
        (300 + 30, False, True),
    ],
    ids=[
        "refuses to promote a key published just now",
        "refuses one second before caches must hold the next key",
        "rotates a young key when forced",
        "rotates once jwks_max_age plus refresh_interval have passed",
    ],
)
def test_rotation_waits_for_caches(
    database_url: str, elapsed: int, force: bool, allowed: bool
) -> None:
    settings = _settings(database_url)

    async def scenario(db: Database) -> tuple[list[KeyRow], str | KeyRow, list[KeyRow]]:
        before = await _ensure(db, settings, NOW)
        try:
            outcome: str | KeyRow = await _rotate(db, settings, NOW + elapsed, force=force)
        except RotationError as exc:
            outcome = str(exc)
        return before, outcome, await _load(db)

    before, outcome, after = _run(settings, scenario)
    if allowed:
        assert isinstance(outcome, KeyRow)
        assert outcome.kid == _by_state(before)[NEXT][0].kid
    else:
        assert isinstance(outcome, str)
        assert "--force" in outcome
        assert "keys.jwks_max_age + keys.refresh_interval = 330s" in outcome
        assert after == before  # nothing changed


def test_rotation_lifecycle(database_url: str) -> None:
    settings = _settings(database_url)
    rotated_at = NOW + 1000

    async def scenario(db: Database) -> dict[str, Any]:
        before = _by_state(await _ensure(db, settings, NOW))
        promoted = await _rotate(db, settings, rotated_at)
        after = await _load(db)
        return {"before": before, "promoted": promoted, "after": after}

    result = _run(settings, scenario)
    old_active, old_next = result["before"][ACTIVE][0], result["before"][NEXT][0]
    after: list[KeyRow] = result["after"]
    states = _by_state(after)
    assert result["promoted"].kid == old_next.kid
    (retired,), (active,), (upcoming,) = states[RETIRED], states[ACTIVE], states[NEXT]
    assert retired.kid == old_active.kid
    assert retired.retired_at == rotated_at
    # refresh_interval + access_token_lifetime + 60s of clock skew allowance.
    assert retired.publish_until == rotated_at + 30 + 600 + 60
    assert retired.publish_until == retired_publish_until(settings, rotated_at)
    assert (active.kid, active.activated_at) == (old_next.kid, rotated_at)
    assert upcoming.kid not in (old_active.kid, old_next.kid)
    assert upcoming.created_at == rotated_at

    view = build_view(after, rotated_at)
    assert view.active.kid == old_next.kid
    assert _jwks_kids(after, rotated_at) == {retired.kid, active.kid, upcoming.kid}
    # The retired key verifies (its tokens are still live) but never signs.
    assert retired.kid in view.verification
    # One second before publish_until it is still published; at publish_until it is gone.
    assert retired.kid in _jwks_kids(after, retired.publish_until - 1)
    assert _jwks_kids(after, retired.publish_until) == {active.kid, upcoming.kid}
    assert [row.kid for row in published(after, retired.publish_until)] == [
        row.kid for row in after if row.state != RETIRED
    ]


@pytest.mark.parametrize(
    "cleanup",
    ["ensure", "rotate"],
    ids=["ensure deletes an expired retired key", "rotate deletes an expired retired key"],
)
def test_expired_retired_key_is_deleted(database_url: str, cleanup: str) -> None:
    settings = _settings(database_url)

    async def scenario(db: Database) -> tuple[KeyRow, list[KeyRow], list[KeyRow]]:
        first_active = _by_state(await _ensure(db, settings, NOW))[ACTIVE][0]
        await _rotate(db, settings, NOW + 1000)
        retired = _by_state(await _load(db))[RETIRED][0]
        assert retired.kid == first_active.kid and retired.publish_until is not None
        # Not yet due: ensuring keeps it.
        kept = await _ensure(db, settings, retired.publish_until - 1)
        due = retired.publish_until
        if cleanup == "ensure":
            await _ensure(db, settings, due)
        else:
            await _rotate(db, settings, due, force=True)
        return retired, kept, await _load(db)

    retired, kept, after = _run(settings, scenario)
    assert retired.kid in {row.kid for row in kept}
    assert retired.kid not in {row.kid for row in after}
    states = _by_state(after)
    assert len(states[ACTIVE]) == len(states[NEXT]) == 1
    # rotate retires the active key again; ensure leaves the set as it was.
    assert len(states[RETIRED]) == (1 if cleanup == "rotate" else 0)


def test_changing_signing_alg_replaces_the_unused_next_key(database_url: str) -> None:
    es256 = _settings(database_url)
    eddsa = _settings(database_url, signing_alg="EdDSA")

    async def scenario(db: Database) -> dict[str, Any]:
        before = _by_state(await _ensure(db, es256, NOW))
        switched = _by_state(await _ensure(db, eddsa, NOW + 10))
        again = await _ensure(db, eddsa, NOW + 20)
        promoted = await _rotate(db, eddsa, NOW + 10 + 330)
        return {
            "before": before,
            "switched": switched,
            "again": again,
            "promoted": promoted,
            "after": await _load(db),
        }

    result = _run(es256, scenario)
    before, switched = result["before"], result["switched"]
    # The active ES256 key keeps signing; the ES256 next key never signed, so it is replaced.
    assert switched[ACTIVE] == before[ACTIVE]
    (new_next,) = switched[NEXT]
    assert new_next.alg == "EdDSA" and new_next.created_at == NOW + 10
    assert before[NEXT][0].kid not in {row.kid for row in result["again"]}
    assert len(result["again"]) == 2
    assert result["promoted"].kid == new_next.kid

    after: list[KeyRow] = result["after"]
    states = _by_state(after)
    assert states[ACTIVE][0].alg == "EdDSA"
    assert states[NEXT][0].alg == "EdDSA"
    assert states[RETIRED][0].alg == "ES256"
    view = build_view(after, NOW + 340)
    assert view.active.alg == "EdDSA"
    assert view.algorithms == ("ES256", "EdDSA")


def test_rotation_needs_a_complete_key_set(database_url: str) -> None:
    settings = _settings(database_url)

    async def scenario(db: Database) -> str:
        with pytest.raises(RotationError) as raised:
            await _rotate(db, settings, NOW, force=True)
        return str(raised.value)

    assert "start the server once" in _run(settings, scenario)


def test_view_requires_exactly_one_active_key() -> None:
    with pytest.raises(RotationError, match="exactly one active signing key, found 0"):
        build_view([], NOW)


# --- live servers -------------------------------------------------------------------------------


def _verify(jwks: Any, token: str) -> dict[str, Any]:
    parsed = parse(token, algorithms=["ES256", "EdDSA"], typ="at+jwt")
    key = KeySet.from_jwks(jwks).find(parsed)
    assert key is not None, f"no key for kid {parsed.kid}"
    return dict(parsed.verify(key))


def test_rotation_reaches_a_server_started_afterwards(server_factory: ServerFactory) -> None:
    first = server_factory.start()
    holder = SigningKey.generate("ES256")
    response = first.token({"scope": "read", "resource": API}, dpop_key=holder)
    assert response.status_code == 200, response.text
    old_token = response.json()["access_token"]
    old_kid = parse(old_token, algorithms=["ES256"], typ="at+jwt").kid
    assert old_kid in {key["kid"] for key in first.client.get("/jwks").json()["keys"]}

    # `deputize keys rotate --force`, as another process would do it.
    async def rotate_now() -> KeyRow:
        db = Database(async_database_url(server_factory.database_url))
        try:
            async with db.begin() as conn:
                return await rotate(conn, first.settings, int(first.clock()), force=True)
        finally:
            await db.dispose()

    promoted = asyncio.run(rotate_now())
    assert promoted.kid != old_kid

    # A second instance of the same deployment: same issuer (tokens name it in `iss`), its own
    # port.  The factory tells `configure` the address it listens on.
    addresses: list[str] = []

    def same_issuer(settings: Settings) -> Settings:
        addresses.append(settings.issuer)
        return dataclasses.replace(settings, issuer=first.url)

    server_factory.start(configure=same_issuer)
    with httpx.Client(base_url=addresses[0], timeout=30) as second:
        jwks = second.get("/jwks").json()
        kids = {key["kid"] for key in jwks["keys"]}
        assert len(kids) == 3
        assert {old_kid, promoted.kid} <= kids

        nonce = second.post("/token", data={"grant_type": "client_credentials"}).headers[
            "DPoP-Nonce"
        ]
        proof = create_proof(holder, "POST", first.token_endpoint, nonce=nonce)
        response = second.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "read", "resource": API},
            headers={"DPoP": proof, **first.basic("svc-basic")},
        )
        assert response.status_code == 200, response.text
        new_token = response.json()["access_token"]
        assert parse(new_token, algorithms=["ES256"], typ="at+jwt").kid == promoted.kid
        assert _verify(jwks, new_token)["client_id"] == "svc-basic"

        # The token signed with the retired key still verifies against the new JWKS ...
        claims = _verify(jwks, old_token)
        assert claims["cnf"] == {"jkt": holder.kid}
        # ... and the second instance still vouches for it.
        introspected = second.post(
            "/introspect", data={"token": old_token}, headers=first.basic("resource-server")
        )
    assert introspected.status_code == 200, introspected.text
    body = introspected.json()
    assert body["active"] is True
    assert body["jti"] == claims["jti"]
    assert body["token_type"] == "DPoP"
