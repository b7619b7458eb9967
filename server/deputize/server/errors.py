"""OAuth errors as data: raise one anywhere, and ``app.py`` turns it into the response.

RFC 6749 §5.2 JSON bodies with ``Cache-Control: no-store``; client authentication failures are
401 with a ``WWW-Authenticate`` challenge; RFC 9449 §12.2 adds ``invalid_dpop_proof`` and
``use_dpop_nonce``.  ``description`` is shown to the client; ``debug`` only ever goes to logs.
"""

from __future__ import annotations

from deputize.keys.errors import error_description


class OAuthError(Exception):
    error: str = "invalid_request"
    status_code: int = 400

    def __init__(self, description: str, *, debug: str | None = None) -> None:
        super().__init__(description)
        self.description = error_description(description)  # it may quote hostile input
        self.debug = debug
        self.headers: dict[str, str] = {}


class InvalidRequestError(OAuthError):
    """RFC 6749 §5.2: malformed request, missing or duplicated parameter, unsupported value."""

    error = "invalid_request"


class InvalidClientError(OAuthError):
    """RFC 6749 §5.2: client authentication failed.

    401 needs a challenge (RFC 9110 §15.5.2); Basic is the one HTTP authentication scheme a
    token endpoint client can answer with, whichever method it tried.
    """

    error = "invalid_client"
    status_code = 401

    def __init__(
        self, description: str, *, debug: str | None = None, client_id: str | None = None
    ) -> None:
        super().__init__(description, debug=debug)
        self.headers["WWW-Authenticate"] = 'Basic realm="deputize"'
        #: The client the request claimed to be, from wherever it said so (Basic credentials,
        #: the form, an assertion's ``sub``), for the audit entry; never proven.
        self.client_id = client_id


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class InvalidAuthorizationDetailsError(OAuthError):
    """RFC 9396 §5: ``authorization_details`` malformed, of an unknown type, or beyond what
    the parent token, the person's roles or the agent's profile allow."""

    error = "invalid_authorization_details"


class InvalidTargetError(OAuthError):
    """RFC 8707 §2 / RFC 8693 §2.2.2: the requested resource or audience is not acceptable."""

    error = "invalid_target"


class UnsupportedTokenTypeError(OAuthError):
    """RFC 7009 §2.2.1."""

    error = "unsupported_token_type"


class InvalidDPoPProofError(OAuthError):
    """RFC 9449 §5: the DPoP proof in the token request is invalid."""

    error = "invalid_dpop_proof"


class UseDPoPNonceError(OAuthError):
    """RFC 9449 §8: the proof must carry the server nonce sent in the ``DPoP-Nonce`` header."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, *, nonce: str) -> None:
        super().__init__(description)
        self.headers["DPoP-Nonce"] = nonce


class PayloadTooLargeError(OAuthError):
    status_code = 413


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500


class TemporarilyUnavailableError(OAuthError):
    """The database is unavailable (``storage/outage.py``): the request may succeed later.

    RFC 6749 §4.1.2.1 defines ``temporarily_unavailable`` for "a temporary overloading or
    maintenance of the server"; the same code at every endpoint, with the status that says so
    to any HTTP client (503, RFC 9110 §15.6.4) and when to retry (``Retry-After``, §10.2.3).
    """

    error = "temporarily_unavailable"
    status_code = 503
    #: Seconds a client should wait before retrying: about the time a restarted or failed-over
    #: PostgreSQL takes to accept connections again, and long enough that clients retrying in
    #: step do not hammer a database that is coming back.
    retry_after = 5

    def __init__(self, description: str, *, debug: str | None = None) -> None:
        super().__init__(description, debug=debug)
        self.headers["Retry-After"] = str(self.retry_after)


class InvalidClientMetadataError(OAuthError):
    """RFC 7591 §3.2.2: a metadata value is invalid, or the registration policy refuses it."""

    error = "invalid_client_metadata"


class InvalidRedirectURIError(OAuthError):
    """RFC 7591 §3.2.2: a redirect URI is malformed or not one Deputize would redirect to."""

    error = "invalid_redirect_uri"


class InvalidSoftwareStatementError(OAuthError):
    """RFC 7591 §3.2.2: the software statement is refused (Deputize accepts none)."""

    error = "invalid_software_statement"


class InvalidTokenError(OAuthError):
    """RFC 6750 §3.1: a missing, wrong or expired bearer token (the initial or registration
    access token of RFC 7591 §3 / RFC 7592 §2), with the challenge that says so."""

    error = "invalid_token"
    status_code = 401

    def __init__(self, description: str, *, debug: str | None = None) -> None:
        super().__init__(description, debug=debug)
        self.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'


class TooManyRequestsError(OAuthError):
    """RFC 6585 §4: the source sent too many requests; ``Retry-After`` says when to retry."""

    error = "too_many_requests"
    status_code = 429

    def __init__(self, description: str, *, retry_after: int) -> None:
        super().__init__(description)
        self.headers["Retry-After"] = str(retry_after)


# OpenID CIBA Core 1.0 §13 (the backchannel endpoint) and §11 (the token endpoint, 400).
class InvalidBindingMessageError(OAuthError):
    error = "invalid_binding_message"


class AuthorizationPendingError(OAuthError):
    """The person has not answered yet: poll again after ``interval`` seconds."""

    error = "authorization_pending"


class SlowDownError(OAuthError):
    """Polled faster than ``interval``: it grows by 5 seconds for this and later polls."""

    error = "slow_down"


class ExpiredTokenError(OAuthError):
    """The ``auth_req_id`` expired before the person answered: ask again."""

    error = "expired_token"


class AccessDeniedError(OAuthError):
    """The person (or an operator) denied the request."""

    error = "access_denied"
