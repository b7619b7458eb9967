"""Reading back access tokens Deputize itself issued (for introspection, revocation, exchange)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deputize.keys import JoseError, check_times, parse
from deputize.keys.jwt import string_claim
from deputize.server.context import ServerContext
from deputize.server.tokens.minting import ACCESS_TOKEN_TYP

#: Allowance for clock skew between instances (as in ``keyring.py``).
_SKEW = 60


def verify_own_token(
    ctx: ServerContext, token: str, *, now: float, allow_expired: bool = False
) -> Mapping[str, Any] | None:
    """The claims of ``token`` if Deputize signed it as an access token, else None.

    Only keys from our own key set are tried; the token's header cannot point elsewhere.
    """
    view = ctx.keyring.view
    try:
        claims = ctx.own_tokens.get(token, view)
        if claims is None:
            parsed = parse(token, algorithms=view.algorithms, typ=ACCESS_TOKEN_TYP)
            key = view.verification.find(parsed)
            if key is None:
                return None
            claims = parsed.verify(key)
            if claims.get("iss") != ctx.settings.issuer:
                return None
            string_claim(claims, "jti", max_length=64)
            ctx.own_tokens.put(token, claims)
        if not allow_expired:
            # iat (and nbf) get the skew allowance: another instance, its clock a little ahead
            # of ours, may have minted the token "in our future".  Expiry stays exact.
            check_times(claims, now=now, leeway=_SKEW, require_exp=True)
            if now >= claims["exp"]:
                return None
    except JoseError:
        return None
    return claims
