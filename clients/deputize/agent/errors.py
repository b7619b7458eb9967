"""Typed errors: an OAuth refusal carries its ``error`` code and ``error_description``.

The token endpoint's errors (RFC 6749 §5.2, RFC 8693, RFC 9449) map to one class per code, so
callers can ``except InvalidGrantError`` rather than compare strings; a resource server's
refusal (RFC 6750 §3 / RFC 9449 §7.1 challenge) is a :class:`ResourceError`.
"""

from __future__ import annotations

import re
from typing import ClassVar

from deputize.agent._http import Response
from deputize.keys._json import loads


class AgentError(Exception):
    """Base class of everything the agent SDK raises."""


class DiscoveryError(AgentError):
    """The issuer's metadata is unreachable or does not describe this issuer."""


class OAuthError(AgentError):
    """The authorization server refused a request."""

    error: ClassVar[str] = "oauth_error"

    def __init__(self, error: str, description: str | None, status_code: int) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error_code = error
        self.description = description
        self.status_code = status_code

    @classmethod
    def from_response(cls, response: Response) -> OAuthError:
        try:
            body = loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            return OAuthError(
                "invalid_response", f"HTTP {response.status_code}", response.status_code
            )
        error = body["error"]
        description = body.get("error_description")
        kind = _BY_CODE.get(error, OAuthError)
        return kind(
            error, description if isinstance(description, str) else None, response.status_code
        )


class InvalidRequestError(OAuthError):
    error = "invalid_request"


class InvalidClientError(OAuthError):
    error = "invalid_client"


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class InvalidTargetError(OAuthError):
    error = "invalid_target"


class InvalidDPoPProofError(OAuthError):
    error = "invalid_dpop_proof"


class UseDPoPNonceError(OAuthError):
    error = "use_dpop_nonce"


_BY_CODE: dict[str, type[OAuthError]] = {
    kind.error: kind
    for kind in (
        InvalidRequestError,
        InvalidClientError,
        InvalidGrantError,
        UnauthorizedClientError,
        UnsupportedGrantTypeError,
        InvalidScopeError,
        InvalidTargetError,
        InvalidDPoPProofError,
        UseDPoPNonceError,
    )
}

_PARAM = re.compile(r'([a-z_]+)="([^"]*)"')


class ResourceError(AgentError):
    """A resource server refused the request: the challenge's ``error`` and description."""

    def __init__(self, error: str, description: str | None, status_code: int) -> None:
        super().__init__(f"{status_code} {error}: {description}" if description else error)
        self.error_code = error
        self.description = description
        self.status_code = status_code

    @classmethod
    def from_response(cls, response: Response) -> ResourceError:
        """Read ``WWW-Authenticate`` (RFC 6750 §3); falls back to the status code."""
        params = dict(_PARAM.findall(response.headers.get("www-authenticate", "")))
        error = params.get("error") or (
            "forbidden" if response.status_code == 403 else "unauthorized"
        )
        return cls(error, params.get("error_description"), response.status_code)


def raise_for_resource_error(response: Response) -> None:
    """Raise :class:`ResourceError` for a 401 or 403 from a resource server."""
    if response.status_code in (401, 403):
        raise ResourceError.from_response(response)
