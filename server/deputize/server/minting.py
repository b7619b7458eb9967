"""Minting RFC 9068 JWT access tokens and recording them in the ledger."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.keys import sign
from deputize.server.keyring import Keyring
from deputize.server.storage import tokens
from deputize.server.storage.tokens import TokenRecord

#: RFC 9068 §2.1: the media type of JWT access tokens, in its short form.
ACCESS_TOKEN_TYP: Final = "at+jwt"


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str
    jti: str
    issued_at: int
    expires_at: int
    claims: Mapping[str, Any]


async def mint_access_token(
    conn: AsyncConnection,
    keyring: Keyring,
    *,
    issuer: str,
    subject: str,
    client_id: str,
    audience: Sequence[str],
    scopes: Sequence[str],
    now: int,
    lifetime: int,
    jkt: str | None,
    parent_jti: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> MintedToken:
    """Sign the token and record it in the same transaction as the rest of the request."""
    jti = secrets.token_urlsafe(24)
    exp = now + lifetime
    # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti are required; scope per §2.2.3.
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience[0] if len(audience) == 1 else list(audience),
        "client_id": client_id,
        "iat": now,
        "exp": exp,
        "jti": jti,
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1
    if extra_claims:
        claims.update(extra_claims)
    token = sign(claims, keyring.view.active, typ=ACCESS_TOKEN_TYP)
    await tokens.record(
        conn,
        TokenRecord(
            jti=jti,
            client_id=client_id,
            subject=subject,
            issued_at=now,
            expires_at=exp,
            jkt=jkt,
            parent_jti=parent_jti,
        ),
    )
    return MintedToken(token=token, jti=jti, issued_at=now, expires_at=exp, claims=claims)
