"""RFC 6749 §4.4 client credentials: a client obtains a token for itself.

The token's ``sub`` is the client's own ID (RFC 9068 §2.2): it is the agent's identity, never a
user's, and carries no ``act`` — later delegation can't turn it into acting for a person.
No refresh token is issued (§4.4.3).  An agent never gets ``delegation.forbidden_agent_scopes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from deputize.keys.chain import Chain
from deputize.server.grants import TokenRequest
from deputize.server.tokens.minting import mint_access_token
from deputize.server.tokens.scopes import forbidden_for, parse_scope, select_audience, select_scopes


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = "client_credentials"
    repeatable: ClassVar[frozenset[str]] = frozenset({"resource"})
    batched: ClassVar[bool] = True

    async def handle(self, request: TokenRequest) -> Mapping[str, Any]:
        client = request.client
        settings = request.ctx.settings
        forbidden = forbidden_for(client, settings)
        allowed = [scope for scope in client.scopes if scope not in forbidden]
        scopes = select_scopes(parse_scope(request.form.get("scope")), allowed)
        audience = select_audience(request.form, client.audiences, settings.issuer)
        jkt = request.proof.jkt if request.proof is not None else None
        minted = await mint_access_token(
            request.store,
            request.ctx.keyring,
            issuer=settings.issuer,
            chain=Chain(client.client_id),
            client_id=client.client_id,
            audience=audience,
            scopes=scopes,
            now=request.now,
            expires_at=request.now + settings.access_token_lifetime,
            jkt=jkt,
            status=request.ctx.status_allocator,
        )
        response: dict[str, Any] = {
            "access_token": minted.token,
            # RFC 9449 §5: a DPoP-bound token is of type DPoP, not Bearer.
            "token_type": "DPoP" if jkt is not None else "Bearer",
            "expires_in": minted.expires_at - request.now,
        }
        if scopes:
            response["scope"] = " ".join(scopes)
        return response
