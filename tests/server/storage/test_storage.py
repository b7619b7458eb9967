"""Storage against real SQLite and PostgreSQL: migrations, the replay cache, the token ledger,
runtime clients, server secrets and signing key rows — including the races that matter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from deputize.server.clients.secrets import hash_secret
from deputize.server.settings import ClientConfig, ConfigError, async_database_url
from deputize.server.storage import clients, keys, replay, secrets, tokens
from deputize.server.storage.database import Database
from deputize.server.storage.tables import issued_tokens, metadata

T = TypeVar("T")
NOW = 1_800_000_000


def _run(database_url: str, scenario: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``scenario`` against a migrated database, then dispose of the engine."""

    async def main() -> T:
        db = Database(async_database_url(database_url), pool_size=10)
        try:
            await db.migrate()
            return await scenario(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _head() -> str | None:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("deputize.server") / "migrations")
    )
    return ScriptDirectory.from_config(config).get_current_head()


def _schema_drift(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


# --- migrations ---------------------------------------------------------------------------------


def test_migrations_are_idempotent_and_reach_head(database_url: str) -> None:
    async def scenario(db: Database) -> tuple[list[str], set[str], list[Any]]:
        await db.migrate()  # the second run finds nothing to do
        async with db.begin() as conn:
            versions = list(
                (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            )
            tables = await conn.run_sync(_tables)
            drift = await conn.run_sync(_schema_drift)
        return versions, tables, drift

    versions, tables, drift = _run(database_url, scenario)
    assert versions == [_head()]
    assert tables == set(metadata.tables) | {"alembic_version"}
    # tables.py and the migrations describe the same schema.
    assert drift == []


# --- replay cache -------------------------------------------------------------------------------


def test_replay_remember_is_one_time(database_url: str) -> None:
    async def scenario(db: Database) -> list[bool]:
        results = []
        for key in ("dpop:a", "dpop:a", "dpop:b", "dpop:a"):
            async with db.begin() as conn:
                results.append(await replay.remember(conn, key, NOW + 60))
        return results

    assert _run(database_url, scenario) == [True, False, True, False]


def test_replay_does_not_abort_the_surrounding_transaction(database_url: str) -> None:
    async def scenario(db: Database) -> tuple[bool, bool, str | None]:
        async with db.begin() as conn:
            first = await replay.remember(conn, "assertion:x", NOW + 60)
            again = await replay.remember(conn, "assertion:x", NOW + 60)
            # The transaction is still usable after the refused insert (PostgreSQL would
            # otherwise be in the "current transaction is aborted" state).
            value = await secrets.get_or_create(conn, "after-replay", NOW)
        return first, again, value

    first, again, value = _run(database_url, scenario)
    assert (first, again) == (True, False)
    assert value


def test_concurrent_remember_admits_exactly_one(database_url: str) -> None:
    async def scenario(db: Database) -> list[bool]:
        async def attempt() -> bool:
            async with db.begin() as conn:
                return await replay.remember(conn, "dpop:raced", NOW + 60)

        return list(await asyncio.gather(*(attempt() for _ in range(20))))

    results = _run(database_url, scenario)
    assert results.count(True) == 1
    assert results.count(False) == 19


def test_replay_purge_removes_only_expired(database_url: str) -> None:
    async def scenario(db: Database) -> tuple[int, list[bool]]:
        async with db.begin() as conn:
            for key, expires_at in (("old", NOW - 1), ("edge", NOW), ("new", NOW + 1)):
                assert await replay.remember(conn, key, expires_at)
        async with db.begin() as conn:
            purged = await replay.purge(conn, NOW)
        async with db.begin() as conn:
            # A purged key may be used again; the others are still remembered.
            again = [await replay.remember(conn, k, NOW + 60) for k in ("old", "edge", "new")]
        return purged, again

    purged, again = _run(database_url, scenario)
    assert purged == 1
    assert again == [True, False, False]


# --- token ledger -------------------------------------------------------------------------------


def _token(jti: str, expires_at: int, **extra: Any) -> tokens.TokenRecord:
    fields: dict[str, Any] = {"client_id": "svc-basic", "subject": "svc-basic", **extra}
    return tokens.TokenRecord(jti=jti, issued_at=expires_at - 300, expires_at=expires_at, **fields)


def test_token_record_get_and_revoke(database_url: str) -> None:
    bound = _token("jti-bound", NOW + 300, jkt="thumbprint", parent_jti="jti-parent")

    async def scenario(db: Database) -> dict[str, Any]:
        async with db.begin() as conn:
            await tokens.record(conn, bound)
        async with db.begin() as conn:
            stored = await tokens.get(conn, "jti-bound")
            missing = await tokens.get(conn, "jti-unknown")
        async with db.begin() as conn:
            first = await tokens.revoke(conn, NOW + 10, jti="jti-bound")
        async with db.begin() as conn:
            second = await tokens.revoke(conn, NOW + 20, jti="jti-bound")
            unknown = await tokens.revoke(conn, NOW + 20, jti="jti-unknown")
            revoked = await tokens.get(conn, "jti-bound")
        return {
            "stored": stored,
            "missing": missing,
            "first": first,
            "second": second,
            "unknown": unknown,
            "revoked": revoked,
        }

    result = _run(database_url, scenario)
    assert result["stored"] == bound
    assert result["missing"] is None
    assert [result[n].rows for n in ("first", "second", "unknown")] == [1, 0, 0]
    # The second revocation did not move the revocation time.
    assert result["revoked"].revoked_at == NOW + 10


def test_revocation_cascades_to_descendants_and_by_criterion(database_url: str) -> None:
    """alice's chain root -> A -> B, plus an unrelated token: revoking the root takes the
    whole chain; revoking by task, client and subject each take theirs and their children."""
    chain = [
        _token("root", NOW + 300, subject="alice", kind="delegation", task="t1", client_id="A"),
        _token(
            "hop1",
            NOW + 300,
            subject="alice",
            kind="delegation",
            task="t1",
            client_id="B",
            parent_jti="root",
        ),
        _token(
            "hop2",
            NOW + 300,
            subject="alice",
            kind="delegation",
            task="t1",
            client_id="C",
            parent_jti="hop1",
        ),
        _token("other", NOW + 300, subject="bob", kind="delegation", task="t2", client_id="A"),
        _token(
            "other-child",
            NOW + 300,
            subject="bob",
            kind="delegation",
            client_id="D",
            parent_jti="other",
        ),
    ]

    async def revoked(db: Database) -> set[str]:
        async with db.begin() as conn:
            return {t.jti for t in chain if (r := await tokens.get(conn, t.jti)) and r.revoked_at}

    async def scenario(db: Database) -> list[tuple[int, set[str]]]:
        async with db.begin() as conn:
            for token in chain:
                await tokens.record(conn, token)
        steps = []
        for criterion in ({"jti": "hop1"}, {"task": "t1"}, {"client_id": "A"}):
            async with db.begin() as conn:
                count = (await tokens.revoke(conn, NOW, **criterion)).rows
            steps.append((count, await revoked(db)))
        return steps

    steps = _run(database_url, scenario)
    assert steps[0] == (2, {"hop1", "hop2"})
    assert steps[1] == (1, {"root", "hop1", "hop2"})
    assert steps[2] == (2, {"root", "hop1", "hop2", "other", "other-child"})


def test_handoff_redeems_once(database_url: str) -> None:
    async def scenario(db: Database) -> list[bool]:
        async with db.begin() as conn:
            await tokens.record(conn, _token("h", NOW + 60, kind="handoff"))
        results = []
        for _ in range(2):
            async with db.begin() as conn:
                results.append(await tokens.redeem(conn, "h", NOW))
        return results

    assert _run(database_url, scenario) == [True, False]


def test_token_purge_removes_only_expired(database_url: str) -> None:
    async def scenario(db: Database) -> tuple[int, list[bool]]:
        async with db.begin() as conn:
            for jti, expires_at in (("old", NOW - 1), ("edge", NOW), ("new", NOW + 1)):
                await tokens.record(conn, _token(jti, expires_at))
        async with db.begin() as conn:
            purged = await tokens.purge_expired(conn, NOW)
        async with db.begin() as conn:
            left = [await tokens.get(conn, jti) is not None for jti in ("old", "edge", "new")]
        return purged, left

    assert _run(database_url, scenario) == (1, [False, True, True])


def test_token_purge_keeps_an_expired_parent_until_its_children_are_gone(
    database_url: str,
) -> None:
    """A redeemed hand-off's child may outlive the hand-off: the hand-off's row stays, or
    revoking the token above it would no longer reach the child."""

    async def scenario(db: Database) -> list[list[bool]]:
        async with db.begin() as conn:
            await tokens.record(conn, _token("root", NOW - 10))
            await tokens.record(conn, _token("handoff", NOW - 5, parent_jti="root"))
            await tokens.record(conn, _token("child", NOW + 3600, parent_jti="handoff"))
        left = []
        for cutoff in (NOW, NOW + 3601, NOW + 3601, NOW + 3601):
            async with db.begin() as conn:
                await tokens.purge_expired(conn, cutoff)
            async with db.begin() as conn:
                jtis = ("root", "handoff", "child")
                left.append([await tokens.get(conn, jti) is not None for jti in jtis])
        return left

    assert _run(database_url, scenario) == [
        [True, True, True],  # root and hand-off expired, but the child lives below them
        [True, True, False],  # the child expired too: purged first
        [True, False, False],  # then its parent
        [False, False, False],
    ]


def _edited_ledger(parent_of_root: str) -> Callable[[Database], Awaitable[tuple[bool, int]]]:
    """root <- a <- b, then root's parent link edited to ``parent_of_root``."""

    async def scenario(db: Database) -> tuple[bool, int]:
        async with db.begin() as conn:
            await tokens.record(conn, _token("root", NOW + 60))
            await tokens.record(conn, _token("a", NOW + 60, parent_jti="root"))
            await tokens.record(conn, _token("b", NOW + 60, parent_jti="a"))
            await conn.execute(
                issued_tokens.update()
                .where(issued_tokens.c.jti == "root")
                .values(parent_jti=parent_of_root)
            )
        async with db.begin() as conn:
            held = await tokens.hold_lineage(conn, "b")
        async with db.begin() as conn:
            revoked = (await tokens.revoke(conn, NOW, jti="root")).rows
        return held, revoked

    return scenario


def test_a_cycle_in_the_ledger_fails_closed_and_ends_every_walk(database_url: str) -> None:
    # root's parent is b: a cycle.  The lineage walk refuses (no token without a parent at its
    # top) and the revocation cascade stops once it has seen every row.
    assert _run(database_url, _edited_ledger("b")) == (False, 3)


def test_a_missing_ancestor_fails_closed(database_url: str) -> None:
    assert _run(database_url, _edited_ledger("no-such-token")) == (False, 3)


# --- runtime clients ----------------------------------------------------------------------------


def _client(client_id: str, **extra: Any) -> ClientConfig:
    values: dict[str, Any] = {
        "client_id": client_id,
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": hash_secret("s" * 40),
        "scopes": ("read",),
        "audiences": ("https://api.example.com",),
    }
    return ClientConfig(**(values | extra))


def test_a_changed_runtime_client_is_read_at_once(database_url: str) -> None:
    """Parsing a client row is memoised (``clients.client_from_row``), reading it is not: the
    same row gives the same parsed client, and a changed row is seen on the next read."""
    before = _client("alpha")
    after = _client("alpha", scopes=("read", "write"))

    async def scenario(db: Database) -> list[ClientConfig | None]:
        seen = []
        async with db.begin() as conn:
            await clients.add(conn, before, NOW, by="test")
        for _ in range(2):
            async with db.begin() as conn:
                seen.append(await clients.get(conn, "alpha"))
        async with db.begin() as conn:
            await clients.remove(conn, "alpha", NOW, by="test")
            await clients.add(conn, after, NOW, by="test")
        async with db.begin() as conn:
            seen.append(await clients.get(conn, "alpha"))
        async with db.begin() as conn:
            await clients.remove(conn, "alpha", NOW, by="test")
            seen.append(await clients.get(conn, "alpha"))
        return seen

    first, again, changed, removed = _run(database_url, scenario)
    assert first == before and again is first
    assert changed == after and changed is not first
    assert removed is None


def test_clients_add_get_list_remove(database_url: str) -> None:
    beta = _client("beta", name="Beta", can_introspect=True, grant_types=())
    alpha = _client("alpha")

    async def scenario(db: Database) -> dict[str, Any]:
        async with db.begin() as conn:
            await clients.add(conn, beta, NOW, by="test")
            await clients.add(conn, alpha, NOW, by="test")
        async with db.begin() as conn:
            got = await clients.get(conn, "beta")
            listed = await clients.list_all(conn)
            unknown = await clients.get(conn, "gamma")
        async with db.begin() as conn:
            removed = await clients.remove(conn, "beta", NOW, by="test")
            removed_again = await clients.remove(conn, "beta", NOW, by="test")
            after = await clients.list_all(conn)
        return {
            "got": got,
            "listed": listed,
            "unknown": unknown,
            "removed": (removed, removed_again),
            "after": after,
        }

    result = _run(database_url, scenario)
    assert result["got"] == beta
    assert result["listed"] == [alpha, beta]
    assert result["unknown"] is None
    assert result["removed"] == (True, False)
    assert result["after"] == [alpha]


def test_private_key_jwt_client_round_trips(database_url: str) -> None:
    from deputize.keys import SigningKey

    key = SigningKey.generate("EdDSA")
    agent = ClientConfig(
        client_id="agent",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.public_jwk()]},
        agent=True,
    )

    async def scenario(db: Database) -> ClientConfig | None:
        async with db.begin() as conn:
            await clients.add(conn, agent, NOW, by="test")
        async with db.begin() as conn:
            return await clients.get(conn, "agent")

    assert _run(database_url, scenario) == agent


def test_duplicate_client_is_refused(database_url: str) -> None:
    async def scenario(db: Database) -> ClientConfig | None:
        async with db.begin() as conn:
            await clients.add(conn, _client("dup"), NOW, by="test")
        with pytest.raises(ConfigError, match="'dup' is already registered"):
            async with db.begin() as conn:
                await clients.add(conn, _client("dup", scopes=("write",)), NOW, by="test")
        async with db.begin() as conn:
            return await clients.get(conn, "dup")

    stored = _run(database_url, scenario)
    assert stored is not None and stored.scopes == ("read",)


def test_concurrent_duplicate_adds_register_one_client(database_url: str) -> None:
    async def scenario(db: Database) -> list[str]:
        async def attempt(i: int) -> str:
            try:
                async with db.begin() as conn:
                    await clients.add(conn, _client("raced", name=f"n{i}"), NOW, by="test")
            except ConfigError:
                return "refused"
            return "added"

        return list(await asyncio.gather(*(attempt(i) for i in range(10))))

    outcomes = _run(database_url, scenario)
    assert outcomes.count("added") == 1
    assert outcomes.count("refused") == 9


# --- server secrets -----------------------------------------------------------------------------


def test_secret_is_created_once_and_stable(database_url: str) -> None:
    async def scenario(db: Database) -> tuple[str, str, str]:
        async with db.begin() as conn:
            first = await secrets.get_or_create(conn, "dpop_nonce_key", NOW)
        async with db.begin() as conn:
            again = await secrets.get_or_create(conn, "dpop_nonce_key", NOW + 100)
            other = await secrets.get_or_create(conn, "other", NOW)
        return first, again, other

    first, again, other = _run(database_url, scenario)
    assert first == again
    assert other != first
    assert len(first) >= 43  # 256 random bits, base64url


def test_concurrent_secret_creation_agrees(database_url: str) -> None:
    async def scenario(db: Database) -> list[str]:
        async def attempt() -> str:
            async with db.begin() as conn:
                return await secrets.get_or_create(conn, "raced", NOW)

        return list(await asyncio.gather(*(attempt() for _ in range(20))))

    values = _run(database_url, scenario)
    assert len(values) == 20
    assert len(set(values)) == 1


# --- signing key rows ---------------------------------------------------------------------------


def _key(kid: str, state: str, created_at: int) -> keys.KeyRow:
    return keys.KeyRow(
        kid=kid,
        alg="ES256",
        state=state,
        private_pem="-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
        created_at=created_at,
        activated_at=created_at if state == keys.ACTIVE else None,
        retired_at=None,
        publish_until=None,
    )


def test_key_rows_add_load_set_state_remove(database_url: str) -> None:
    active, upcoming = _key("k-active", keys.ACTIVE, NOW - 10), _key("k-next", keys.NEXT, NOW)

    async def scenario(db: Database) -> dict[str, list[keys.KeyRow]]:
        async with db.begin() as conn:
            await keys.add(conn, upcoming)
            await keys.add(conn, active)
        async with db.begin() as conn:
            loaded = await keys.load(conn)
        async with db.begin() as conn:
            await keys.set_state(
                conn, "k-active", keys.RETIRED, retired_at=NOW + 5, publish_until=NOW + 500
            )
            await keys.set_state(conn, "k-next", keys.ACTIVE, activated_at=NOW + 5)
        async with db.begin() as conn:
            rotated = await keys.load(conn)
        async with db.begin() as conn:
            await keys.remove(conn, "k-active")
        async with db.begin() as conn:
            remaining = await keys.load(conn)
        return {"loaded": loaded, "rotated": rotated, "remaining": remaining}

    result = _run(database_url, scenario)
    assert result["loaded"] == [active, upcoming]  # ordered by creation time
    retired, promoted = result["rotated"]
    assert (retired.kid, retired.state) == ("k-active", keys.RETIRED)
    assert (retired.retired_at, retired.publish_until) == (NOW + 5, NOW + 500)
    assert retired.activated_at == NOW - 10
    assert (promoted.kid, promoted.state, promoted.activated_at) == ("k-next", keys.ACTIVE, NOW + 5)
    assert promoted.retired_at is None and promoted.publish_until is None
    assert result["remaining"] == [promoted]


def test_two_databases_share_state(database_url: str) -> None:
    """Two engines on one database (two server instances) see each other's writes."""

    async def scenario(db: Database) -> tuple[bool, bool]:
        other = Database(async_database_url(database_url))
        try:
            await other.migrate()
            async with db.begin() as conn:
                assert await replay.remember(conn, "shared", NOW + 60)
                value = await secrets.get_or_create(conn, "shared", NOW)
            async with other.begin() as conn:
                seen = await replay.remember(conn, "shared", NOW + 60)
                return seen, value == await secrets.get_or_create(conn, "shared", NOW)
        finally:
            await other.dispose()

    seen, same = _run(database_url, scenario)
    assert seen is False
    assert same is True
