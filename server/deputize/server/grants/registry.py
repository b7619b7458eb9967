"""The grant types the token endpoint knows, by ``grant_type``.

A module of its own so that the grants (which import ``TokenRequest`` from the package) and
the registry (which imports every grant) form no import circle.
"""

from __future__ import annotations

from collections.abc import Mapping

from deputize.server.grants import Grant
from deputize.server.grants.authorization_code import AuthorizationCodeGrant
from deputize.server.grants.ciba import CibaGrant
from deputize.server.grants.client_credentials import ClientCredentialsGrant
from deputize.server.grants.refresh_token import RefreshTokenGrant
from deputize.server.grants.token_exchange import TokenExchangeGrant


def registry() -> Mapping[str, Grant]:
    grants: list[Grant] = [
        ClientCredentialsGrant(),
        TokenExchangeGrant(),
        AuthorizationCodeGrant(),
        RefreshTokenGrant(),
        CibaGrant(),
    ]
    return {grant.grant_type: grant for grant in grants}
