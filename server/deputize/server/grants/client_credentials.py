"""RFC 6749 §4.4 client credentials: a client obtains a token for itself.

The token's ``sub`` is the client's own ID (RFC 9068 §2.2): it is the agent's identity, never a
user's, and carries no ``act`` — later delegation can't turn it into acting for a person.
No refresh token is issued (§4.4.3).  An agent never gets ``delegation.forbidden_agent_scopes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from deputize.keys.chain import Chain
from deputize.server.delegation.permissions import Person, allow, profile_of
from deputize.server.errors import InvalidAuthorizationDetailsError
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
        requested = parse_scope(request.form.get("scope"))
        scopes = select_scopes(requested, allowed)
        audience = select_audience(request.form, client.audiences, settings.issuer)
        scopes, carried, policy = _apply_policy(request, scopes, explicit=requested is not None)
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
            extra_claims=carried,
            policy=policy,
        )
        response: dict[str, Any] = {
            "access_token": minted.token,
            # RFC 9449 §5: a DPoP-bound token is of type DPoP, not Bearer.
            "token_type": "DPoP" if jkt is not None else "Bearer",
            "expires_in": minted.expires_at - request.now,
        }
        if scopes:
            response["scope"] = " ".join(scopes)
        if "authorization_details" in carried:  # RFC 9396 §7: as granted to this token
            response["authorization_details"] = carried["authorization_details"]
        return response


def _apply_policy(
    request: TokenRequest, scopes: list[str], *, explicit: bool
) -> tuple[list[str], dict[str, Any], str | None]:
    """An agent acting for itself is bounded by its profile and the tiers (no person, so no
    roles: ``delegation/permissions.py``).  Other clients, and every client without a policy,
    are not the policy's business; asking for ``authorization_details`` then is refused."""
    source = request.ctx.settings.policy
    asked = request.form.get("authorization_details")
    if source is None or not request.client.agent:
        if asked is not None:
            raise InvalidAuthorizationDetailsError(
                "authorization_details are decided by the delegation policy, for agents only"
            )
        return scopes, {}, None
    allowed = allow(
        source.policy, Person(None, None), [profile_of(request.client, '')], scopes=scopes,
        explicit_scopes=explicit, requested_details=asked, parent_details=None, task=None,
    )  # fmt: skip
    carried = {} if allowed.details is None else {"authorization_details": allowed.details}
    return allowed.scopes, carried, allowed.policy
