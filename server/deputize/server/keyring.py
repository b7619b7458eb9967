"""Signing keys and their rotation lifecycle, shared by every instance through the database.

A key is **next** (published in the JWKS, not yet signing), then **active** (signs), then
**retired** (no longer signs; published until every token it signed has expired), then gone.
Publishing the next key well before it signs means a resource server's cached JWKS already
holds it when the first token signed with it arrives; keeping the retired key published means
no live token turns unverifiable at rotation.  Each instance keeps the keys in memory and
reloads them every ``keys.refresh_interval`` seconds, so a rotation made by one instance (or by
``deputize keys rotate``) reaches all of them within that interval.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.keys import KeySet, SigningKey
from deputize.server.settings import Settings
from deputize.server.storage import audit
from deputize.server.storage import keys as key_rows
from deputize.server.storage.database import Database
from deputize.server.storage.keys import ACTIVE, NEXT, RETIRED, KeyRow

#: Allowance for clock skew between instances and resource servers.
_SKEW = 60


class RotationError(Exception):
    """A rotation was refused; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class KeyringView:
    """An immutable snapshot: readers never see a half-applied rotation."""

    active: SigningKey
    verification: KeySet
    jwks_json: bytes
    rows: tuple[KeyRow, ...]
    published: tuple[str, ...]
    algorithms: tuple[str, ...]
    """The algorithms of the published keys: the allow-list for verifying our own tokens."""


def published(rows: Sequence[KeyRow], now: int) -> list[KeyRow]:
    return [
        row
        for row in rows
        if row.state in (NEXT, ACTIVE)
        or (row.publish_until is not None and row.publish_until > now)
    ]


def build_view(rows: Sequence[KeyRow], now: int) -> KeyringView:
    active_rows = [row for row in rows if row.state == ACTIVE]
    if len(active_rows) != 1:
        raise RotationError(f"expected exactly one active signing key, found {len(active_rows)}")
    loaded: dict[str, SigningKey] = {}
    for row in published(rows, now):
        loaded[row.kid] = SigningKey.from_pem(row.private_pem.encode("ascii"), row.alg)
    jwks = {"keys": [key.public_jwk() for key in loaded.values()]}
    return KeyringView(
        active=loaded[active_rows[0].kid],
        verification=KeySet((kid, key.public) for kid, key in loaded.items()),
        jwks_json=json.dumps(jwks, separators=(",", ":")).encode("utf-8"),
        rows=tuple(rows),
        published=tuple(loaded),
        algorithms=tuple(sorted({key.alg for key in loaded.values()})),
    )


def _new_row(alg: str, state: str, now: int) -> KeyRow:
    key = SigningKey.generate(alg)
    return KeyRow(
        kid=key.kid,
        alg=alg,
        state=state,
        private_pem=key.to_pem().decode("ascii"),
        created_at=now,
        activated_at=now if state == ACTIVE else None,
        retired_at=None,
        publish_until=None,
    )


def retired_publish_until(settings: Settings, now: int) -> int:
    """Until when a key retired at ``now`` must stay in the JWKS.

    Instances that have not refreshed yet may sign with it for one more refresh interval, and
    each such token lives at most ``access_token_lifetime``.
    """
    return now + settings.key_refresh_interval + settings.access_token_lifetime + _SKEW


async def _drop_expired_retired(conn: AsyncConnection, rows: Sequence[KeyRow], now: int) -> None:
    """Retired keys leave the store once every token they signed has expired."""
    for row in rows:
        if row.state == RETIRED and row.publish_until is not None and row.publish_until <= now:
            await key_rows.remove(conn, row.kid)


async def ensure_keys(conn: AsyncConnection, settings: Settings, now: int) -> None:
    """First start: create an active and a next key.  Later starts: keep the set complete."""
    rows = await key_rows.load(conn)
    if not any(row.state == ACTIVE for row in rows):
        await key_rows.add(conn, _new_row(settings.signing_alg, ACTIVE, now))
    nexts = [row for row in rows if row.state == NEXT]
    for row in nexts:
        if row.alg != settings.signing_alg:
            # signing_alg changed: the unused next key never signed anything, replace it so the
            # next rotation moves to the configured algorithm.
            await key_rows.remove(conn, row.kid)
    if not any(row.alg == settings.signing_alg for row in nexts):
        await key_rows.add(conn, _new_row(settings.signing_alg, NEXT, now))
    await _drop_expired_retired(conn, rows, now)


async def rotate(
    conn: AsyncConnection, settings: Settings, now: int, *, force: bool = False
) -> KeyRow:
    """Promote the next key to active, retire the active one, and create a new next key."""
    rows = await key_rows.load(conn)
    active = [row for row in rows if row.state == ACTIVE]
    nexts = [row for row in rows if row.state == NEXT]
    if len(active) != 1 or len(nexts) != 1:
        raise RotationError("the key set is incomplete; start the server once to create it")
    (current,), (upcoming,) = active, nexts
    min_age = settings.jwks_max_age + settings.key_refresh_interval
    age = now - upcoming.created_at
    if age < min_age and not force:
        raise RotationError(
            f"the next key {upcoming.kid} has been published for {age}s, less than "
            f"keys.jwks_max_age + keys.refresh_interval = {min_age}s, so some resource servers "
            "may not have it yet; wait, or pass --force to rotate anyway"
        )
    await key_rows.set_state(
        conn,
        current.kid,
        RETIRED,
        retired_at=now,
        publish_until=retired_publish_until(settings, now),
    )
    await key_rows.set_state(conn, upcoming.kid, ACTIVE, activated_at=now)
    fresh = _new_row(settings.signing_alg, NEXT, now)
    await key_rows.add(conn, fresh)
    await audit.append(
        conn,
        audit.AuditEvent(
            event=audit.KEY_ROTATED,
            kid=upcoming.kid,
            details={"active": upcoming.kid, "retired": current.kid, "next": fresh.kid},
        ),
        now,
    )
    await _drop_expired_retired(conn, rows, now)
    return upcoming


class Keyring:
    """The instance's current view of the signing keys."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._view: KeyringView | None = None

    @property
    def view(self) -> KeyringView:
        if self._view is None:
            raise RuntimeError("keyring not loaded")
        return self._view

    async def start(self, db: Database, now: int) -> None:
        async with db.startup_lock() as conn:
            await ensure_keys(conn, self.settings, now)
            await conn.commit()
        await self.refresh(db, now)

    async def refresh(self, db: Database, now: int) -> None:
        async with db.begin() as conn:
            rows = await key_rows.load(conn)
        view = self._view
        if (
            view is None
            or tuple(rows) != view.rows
            or tuple(row.kid for row in published(rows, now)) != view.published
        ):
            self._view = build_view(rows, now)
