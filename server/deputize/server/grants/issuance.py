"""Tokens for a signed-in person: the access token, the OpenID Connect ID token and the refresh
token, shared by the authorization code and refresh token grants.

- The access token (RFC 9068) has the person as ``sub``.  A client that is an agent holds it as
  the first actor (``act``: delegation, never impersonation); any other client holds the
  person's own token, which agents can receive only by token exchange under rule 4.
- Every access token of one sign-in hangs under one ledger row (kind ``grant``), so revoking
  that row — code reuse, refresh token reuse, withdrawn consent — reaches all of them and
  everything delegated from them.
- The ID token (OpenID Connect Core §2) is signed with the same keys, ``typ: JWT``.
- Refresh tokens go only to clients allowed the ``refresh_token`` grant.  A public client's
  are bound to its DPoP key (RFC 9449 §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.keys import sign
from deputize.keys.chain import AttenuationError, Chain
from deputize.server.delegation.permissions import Person, allow, profile_of
from deputize.server.errors import InvalidGrantError
from deputize.server.grants import TokenRequest
from deputize.server.settings import PUBLIC_CLIENT, REFRESH_TOKEN
from deputize.server.storage import consents, refresh, tokens, users
from deputize.server.storage.tokens import DELEGATION, GRANT, USER, TokenRecord
from deputize.server.tokens.minting import mint_access_token, new_jti
from deputize.server.tokens.scopes import forbidden_for

ID_TOKEN_TYP = "JWT"


@dataclass(frozen=True, slots=True)
class Grant:
    """What one sign-in allowed, carried from the code to each refresh."""

    sub: str
    scopes: Sequence[str]
    resources: Sequence[str]
    auth_time: int
    consent_id: str
    grant_jti: str
    family: str
    family_expires_at: int
    nonce: str | None = None
    details: list[dict[str, Any]] | None = None
    """RFC 9396 entries the person allowed at sign-in; the refresh token keeps them whole."""


async def still_authorised(
    conn: AsyncConnection, consent_id: str, sub: str, now: int
) -> consents.Consent:
    """The consent a code or refresh token was issued under, share-locked until commit (so a
    withdrawal waits for this request and then revokes what it issued), if it is still live
    and its user still enabled; ``invalid_grant`` otherwise."""
    consent = await consents.get(conn, consent_id, lock=True)
    if consent is None or not consent.live(now):
        raise InvalidGrantError("the user's consent was withdrawn")
    user = await users.get(conn, sub)
    if user is None or not user.active:
        raise InvalidGrantError("the user is disabled")
    return consent


async def start_grant(request: TokenRequest, sub: str) -> tuple[str, int]:
    """The ledger row a new sign-in's tokens hang under; returns its jti and expiry."""
    settings = request.ctx.settings
    if REFRESH_TOKEN in request.client.grant_types:
        expires_at = request.now + settings.refresh_token_max_lifetime
    else:
        expires_at = request.now + settings.access_token_lifetime
    jti = new_jti()
    await tokens.record(
        request.conn,
        TokenRecord(
            jti=jti,
            client_id=request.client.client_id,
            subject=sub,
            issued_at=request.now,
            expires_at=expires_at,
            kind=GRANT,
        ),
    )
    return jti, expires_at


async def issue(
    request: TokenRequest,
    grant: Grant,
    scopes: Sequence[str],
    audience: Sequence[str],
    *,
    with_refresh: bool,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The access token for ``audience`` and ``details`` (from :func:`narrow_audience` and
    :func:`signin_details.narrow`, decided by the grant before it spends the code or rotates
    the refresh token), and ID and refresh tokens."""
    ctx, client, now = request.ctx, request.client, request.now
    settings = ctx.settings
    # Never to an agent, even if the code or refresh token predates the setting.
    forbidden = forbidden_for(client, settings)
    scopes = [scope for scope in scopes if scope not in forbidden]
    jkt = request.proof.jkt if request.proof is not None else None
    chain = Chain(grant.sub)
    expires_at = min(now + settings.access_token_lifetime, grant.family_expires_at)
    if client.agent:  # the agent acts for the person: delegation, with the agent's limits
        depth = settings.delegation_max_depth
        if client.max_delegation_depth is not None:
            depth = min(depth, client.max_delegation_depth)
        try:
            chain = chain.extend(client.client_id, max_depth=depth)
        except AttenuationError as exc:
            raise InvalidGrantError(exc.description) from None
        if client.max_token_lifetime is not None:
            expires_at = min(expires_at, now + client.max_token_lifetime)
    scopes, carried, policy = await _apply_policy(request, grant.sub, scopes, details)
    minted = await mint_access_token(
        request.store, ctx.keyring, issuer=settings.issuer, chain=chain,
        client_id=client.client_id, audience=list(audience), scopes=scopes, now=now,
        expires_at=expires_at, jkt=jkt, kind=DELEGATION if client.agent else USER,
        parent_jti=grant.grant_jti, status=ctx.status_allocator, extra_claims=carried,
        policy=policy,
    )  # fmt: skip
    response: dict[str, Any] = {
        "access_token": minted.token,
        "token_type": "DPoP" if jkt is not None else "Bearer",
        "expires_in": minted.expires_at - now,
        "scope": " ".join(scopes),
    }
    if "authorization_details" in carried:  # RFC 9396 §7: as granted to this access token
        response["authorization_details"] = carried["authorization_details"]
    if "openid" in scopes:
        response["id_token"] = id_token(request, grant)
    if with_refresh and REFRESH_TOKEN in client.grant_types:
        response["refresh_token"] = await refresh.issue(
            request.conn,
            refresh.RefreshToken(
                family=grant.family,
                grant_jti=grant.grant_jti,
                client_id=client.client_id,
                sub=grant.sub,
                scopes=tuple(grant.scopes),
                resources=tuple(grant.resources),
                # RFC 9449 §5: a public client's refresh token is bound to its DPoP key.
                jkt=jkt if client.token_endpoint_auth_method == PUBLIC_CLIENT else None,
                auth_time=grant.auth_time,
                consent_id=grant.consent_id,
                issued_at=now,
                expires_at=min(now + settings.refresh_token_lifetime, grant.family_expires_at),
                family_expires_at=grant.family_expires_at,
                authorization_details=grant.details,
            ),
        )
    return response


async def _apply_policy(
    request: TokenRequest, sub: str, scopes: list[str], details: list[dict[str, Any]] | None
) -> tuple[list[str], dict[str, Any], str | None]:
    """An agent signing a person in acts for them: the delegation policy cuts its scopes to
    the person's roles and the agent's profile, silently (the person consented to them at
    sign-in; the policy has the last word), and the token carries the roles for later hops.
    ``details`` (RFC 9396, as the person allowed them) are decided again — the policy may have
    changed since — for an app as for an agent: a refusal names the rule."""
    source, client = request.ctx.settings.policy, request.client
    carried: dict[str, Any] = {}
    if source is None or (not client.agent and details is None):
        if details is not None:  # consented under a policy since removed: as the exchange does
            carried["authorization_details"] = details
        return scopes, carried, None
    person = Person(sub, await request.store.roles(sub))
    agents = [profile_of(client, client.client_id)] if client.agent else []
    allowed = allow(
        source.policy, person, agents, scopes=scopes if client.agent else [],
        explicit_scopes=False, requested_details=None, parent_details=details, task=None,
    )  # fmt: skip
    if client.agent:
        scopes = allowed.scopes
        carried["roles"] = list(allowed.roles or ())
    if allowed.details is not None:
        carried["authorization_details"] = allowed.details
    return scopes, carried, allowed.policy


def id_token(request: TokenRequest, grant: Grant) -> str:
    """OpenID Connect Core §2 / §3.1.3.6: who signed in, for this client, and when."""
    settings = request.ctx.settings
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": grant.sub,
        "aud": request.client.client_id,
        "azp": request.client.client_id,
        "iat": request.now,
        "exp": request.now + settings.id_token_lifetime,
        "auth_time": grant.auth_time,
        "amr": ["pwd"],  # RFC 8176: the user signed in with a password
    }
    if grant.nonce is not None:
        claims["nonce"] = grant.nonce
    return sign(claims, request.ctx.keyring.view.active, typ=ID_TOKEN_TYP)
