"""Reading the tokens a token exchange presents (RFC 8693 §2.1): what they prove and allow.

A subject token is one of
- an access token Deputize issued: a delegation token (its holder re-exchanges or delegates
  further) or a hand-off token (its named recipient redeems it); a client's own token is never
  a subject, because it speaks for the client, not for a person;
- a JWT or ID token from a configured trusted issuer: a person at the root of a new chain.

An actor token names the party that will act: it must be that client's own, DPoP-bound token.
Every failure is ``invalid_request``, with the reason: RFC 8693 §2.2.2 answers so "if either
the subject_token or actor_token are invalid for any reason, or are unacceptable based on
policy" (``docs/endpoints.md`` has the table of token-exchange refusals).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from deputize.keys import (
    SUPPORTED_ALGORITHMS,
    JoseError,
    KeySet,
    check_audience,
    check_times,
    parse,
)
from deputize.keys.chain import Chain, audience_list, parse_chain, scope_list
from deputize.keys.dpop import bound_key
from deputize.keys.jwt import normalize_typ
from deputize.server.clients.remote_jwks import JWKSFetchError
from deputize.server.context import ServerContext
from deputize.server.errors import InvalidRequestError
from deputize.server.settings import TrustedIssuer
from deputize.server.storage.request_store import RequestStore
from deputize.server.storage.tokens import CLIENT, DELEGATION, HANDOFF, USER, TokenRecord
from deputize.server.tokens.own_tokens import verify_own_token

ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:id_token"
EXTERNAL: Final = "external"
#: Clock allowance for tokens from other issuers.
_LEEWAY: Final = 30
_EXTERNAL_TYPS: Final = {JWT_TYPE: {"", "jwt", "at+jwt"}, ID_TOKEN_TYPE: {"", "jwt"}}


@dataclass(slots=True)  # not frozen: built for every token request, 4x faster
class SubjectToken:
    kind: str
    """``external``, ``user`` (a person's own token from sign-in), ``delegation`` or
    ``handoff``."""
    chain: Chain
    exp: int
    scopes: list[str] | None
    """Scope ceiling; None for an external token that states no scope."""
    audience: list[str] | None
    """Audience ceiling for the next hop; None for an external token (the holder's own)."""
    jkt: str | None
    jti: str | None
    """Ledger jti of a Deputize token (the new token's parent); None for external tokens."""
    holder: str | None
    """The client that may present a Deputize token: its holder, or a hand-off's recipient."""
    task: str | None
    issuer: str
    may_act: Any = None
    roles: tuple[str, ...] | None = None
    """The person's roles as this token states them: a Deputize token's ``roles`` claim
    (RFC 9068 §2.2.3.1), or a trusted issuer's claim mapped by ``trusted_issuers[].roles``."""
    details: Any = None
    """The ``authorization_details`` claim of a Deputize token (RFC 9396), as signed; None
    when it has none (an external token's own are not taken over)."""
    client_id: str | None = None
    """The client a Deputize token was issued to (its RFC 9068 ``client_id``): for a hand-off,
    the client that made it.  A person's consent to agents is bound to this client (rule 4).
    None for external tokens."""


@dataclass(frozen=True, slots=True)
class ActorToken:
    client_id: str
    jkt: str


def _jkt(claims: Mapping[str, Any]) -> str | None:
    try:
        return bound_key(claims)
    except JoseError:
        raise InvalidRequestError("token has a malformed cnf claim") from None


def _as_recorded(claims: Mapping[str, Any]) -> TokenRecord | None:
    """The ledger row a delegation token's own (verified) claims describe, or None for other
    kinds.  Lets a batched store skip the read and check at commit that the row agrees; the
    claims do not carry ``parent_jti``, so it is None here (the exchange does not use it)."""
    act, client_id = claims.get("act"), claims.get("client_id")
    if not isinstance(act, Mapping) or "resources" in claims or not isinstance(client_id, str):
        return None
    task = claims.get("task")
    return TokenRecord(
        jti=claims["jti"],
        client_id=client_id,
        subject=claims["sub"],
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        jkt=_jkt(claims),
        kind=DELEGATION,
        task=task if isinstance(task, str) else None,
        actor=act.get("sub"),
    )


async def _own(
    ctx: ServerContext, store: RequestStore, token: str, now: int, *, what: str, lock: bool
) -> tuple[Mapping[str, Any], TokenRecord]:
    claims = verify_own_token(ctx, token, now=now)
    if claims is None:
        raise InvalidRequestError(f"{what} is invalid, expired or not issued by this server")
    claimed = None if lock else _as_recorded(claims)
    record = await store.token(claims["jti"], lock=lock, claimed=claimed)
    if record is None or record.revoked_at is not None:
        raise InvalidRequestError(f"{what} has been revoked")
    return claims, record


async def read_subject(
    ctx: ServerContext, store: RequestStore, token: str, token_type: str, now: int
) -> SubjectToken:
    if token_type == ACCESS_TOKEN_TYPE:
        return await _read_own_subject(ctx, store, token, now)
    if token_type in _EXTERNAL_TYPS:
        return await _read_external(ctx, token, token_type, now)
    raise InvalidRequestError(f"unsupported subject_token_type {token_type!r}")


async def _read_own_subject(
    ctx: ServerContext, store: RequestStore, token: str, now: int
) -> SubjectToken:
    # Read without locking: the exchange takes its locks at the end (hold_lineage), and a
    # hand-off's redemption locks its row by updating it.
    claims, record = await _own(ctx, store, token, now, what="subject token", lock=False)
    if record.kind == CLIENT:
        raise InvalidRequestError(
            "a client's own token cannot be exchanged: it acts for the client, not for a person"
        )
    if record.kind not in (DELEGATION, HANDOFF, USER):
        raise InvalidRequestError("subject token is not exchangeable")
    chain, scopes, audience, jkt = _parsed(ctx, token, claims, record.kind)
    exp = int(claims["exp"])
    if record.kind == HANDOFF and record.parent_jti is not None:
        # A hand-off lives seconds, but only to be redeemed: what it hands on may live as long
        # as the token it was made from.
        parent = await store.token(record.parent_jti)
        exp = parent.expires_at if parent is not None else exp
    return SubjectToken(
        kind=record.kind,
        chain=chain,
        exp=exp,
        scopes=list(scopes),
        audience=list(audience),
        jkt=jkt,
        jti=record.jti,
        holder=record.client_id,
        task=record.task,
        issuer=ctx.settings.issuer,
        client_id=claims.get("client_id"),
        details=claims.get("authorization_details"),
        roles=_roles_claim(claims.get("roles")),
    )


_Parsed = tuple[Chain, tuple[str, ...], tuple[str, ...], str | None]


def _parsed(ctx: ServerContext, token: str, claims: Mapping[str, Any], kind: str) -> _Parsed:
    """The chain, scope and audience ceilings and key binding a verified token of ``kind``
    states: parsed once per token and kept beside its verified claims (an agent re-exchanges
    the same parent for every sub-task)."""
    kept = ctx.own_tokens.derived(token, claims)
    if isinstance(kept, tuple) and kept[0] == kind:
        return cast(_Parsed, kept[1])
    try:
        chain = parse_chain(claims)
        scopes = tuple(scope_list(claims))
        audience = tuple(
            [a for a in claims.get("resources", []) if isinstance(a, str)]
            if kind == HANDOFF
            else audience_list(claims)
        )
    except JoseError as exc:
        raise InvalidRequestError(f"subject token is malformed: {exc.description}") from None
    parsed: _Parsed = (chain, scopes, audience, _jkt(claims))
    ctx.own_tokens.remember_derived(token, claims, (kind, parsed))
    return parsed


async def _issuer_keys(ctx: ServerContext, issuer: str, *, refresh: bool) -> KeySet:
    trusted = ctx.trusted_issuers[issuer]
    if trusted.jwks is not None:
        keys = ctx.inline_jwks.get(f"issuer:{issuer}")
        if keys is None:
            keys = ctx.inline_jwks[f"issuer:{issuer}"] = KeySet.from_jwks(trusted.jwks)
        return keys
    assert trusted.jwks_uri is not None
    try:
        return await ctx.remote_jwks.get(trusted.jwks_uri, now=ctx.clock(), refresh=refresh)
    except JWKSFetchError as exc:
        raise InvalidRequestError(
            "the subject token's issuer keys are unavailable", debug=str(exc)
        ) from None


def _roles_claim(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(r, str) for r in value):
        return tuple(value)
    return None


def _mapped_roles(issuer: TrustedIssuer, claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The policy roles a trusted issuer's claim gives (``trusted_issuers[].roles``): only
    values the mapping names count, so the issuer cannot mint a role of ours by naming it."""
    if issuer.roles_claim is None:
        return ()
    value = claims.get(issuer.roles_claim)
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(
        dict.fromkeys(r for v in values if isinstance(v, str) for r in issuer.roles.get(v, ()))
    )


async def _read_external(ctx: ServerContext, token: str, token_type: str, now: int) -> SubjectToken:
    try:
        parsed = parse(token, algorithms=SUPPORTED_ALGORITHMS, typ=None)
        typ = parsed.header.get("typ", "")
        if not isinstance(typ, str) or normalize_typ(typ) not in _EXTERNAL_TYPS[token_type]:
            raise InvalidRequestError("subject token has an unexpected typ")
        iss = parsed.claims.get("iss")
        if not isinstance(iss, str) or iss not in ctx.trusted_issuers:
            raise InvalidRequestError("subject token is not from a trusted issuer")
        key = (await _issuer_keys(ctx, iss, refresh=False)).find(parsed)
        if key is None:  # the issuer may have rotated: refetch (rate-limited) once
            key = (await _issuer_keys(ctx, iss, refresh=True)).find(parsed)
        if key is None:
            raise InvalidRequestError("subject token is signed with an unknown key")
        claims = parsed.verify(key)
        check_times(claims, now=now, leeway=_LEEWAY, require_exp=True)
        check_audience(claims, [ctx.trusted_issuers[iss].audience])
        if "act" in claims:
            raise InvalidRequestError(
                "Deputize does not continue delegation chains it did not issue"
            )
        chain = parse_chain(claims)
        scopes = scope_list(claims) if "scope" in claims else None
    except JoseError as exc:
        raise InvalidRequestError(f"subject token rejected: {exc.description}") from None
    return SubjectToken(
        kind=EXTERNAL,
        chain=chain,
        exp=int(claims["exp"]),
        scopes=scopes,
        audience=None,
        jkt=_jkt(claims),
        jti=None,
        holder=None,
        task=None,
        issuer=iss,
        may_act=claims.get("may_act"),
        roles=_mapped_roles(ctx.trusted_issuers[iss], claims),
    )


async def read_actor(
    ctx: ServerContext, store: RequestStore, token: str, token_type: str | None, now: int
) -> ActorToken:
    """RFC 8693 §2.1 ``actor_token``: here, the actor's own DPoP-bound client token."""
    if token_type != ACCESS_TOKEN_TYPE:
        raise InvalidRequestError(f"actor_token_type must be {ACCESS_TOKEN_TYPE}")
    claims, record = await _own(ctx, store, token, now, what="actor token", lock=True)
    jkt = _jkt(claims)
    if record.kind != CLIENT or jkt is None:
        raise InvalidRequestError("the actor token must be the actor's own DPoP-bound token")
    return ActorToken(client_id=record.client_id, jkt=jkt)
