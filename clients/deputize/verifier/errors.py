"""Why a request was refused, as data: an OAuth error code, a status and a challenge.

RFC 6750 §3 and RFC 9449 §7.1 say how a resource server refuses: a ``WWW-Authenticate``
challenge naming the scheme (``DPoP``, and ``Bearer`` when bearer tokens are accepted), the
error code and, for ``insufficient_scope``, the scope needed.  ``use_dpop_nonce`` also carries a
``DPoP-Nonce`` header (RFC 9449 §9).  Descriptions are safe to show to the caller; they never
contain a token or key material.
"""

from __future__ import annotations

from collections.abc import Sequence

from deputize.keys.errors import error_description


class VerificationError(Exception):
    """Base class: the request does not carry an acceptable token and proof."""

    error: str = "invalid_token"
    status_code: int = 401

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = error_description(description)  # it may quote hostile input

    def challenge(
        self,
        *,
        algorithms: Sequence[str] = (),
        realm: str | None = None,
        bearer: bool = False,
        scope: str | None = None,
    ) -> str:
        """The ``WWW-Authenticate`` value for this refusal (RFC 6750 §3, RFC 9449 §7.1)."""
        params: list[str] = []
        if realm is not None:
            params.append(f'realm="{error_description(realm)}"')
        params.append(f'error="{self.error}"')
        params.append(f'error_description="{self.description}"')
        if scope:
            params.append(f'scope="{error_description(scope)}"')
        if algorithms:
            params.append(f'algs="{" ".join(algorithms)}"')
        value = "DPoP " + ", ".join(params)
        if bearer:
            bearer_params = [p for p in params if not p.startswith("algs=")]
            value += ", Bearer " + ", ".join(bearer_params)
        return value

    def headers(
        self, *, algorithms: Sequence[str] = (), realm: str | None = None, bearer: bool = False
    ) -> dict[str, str]:
        """Response headers for this refusal; ``insufficient_scope`` names the scope needed."""
        scope = " ".join(getattr(self, "required", ())) or None
        value = self.challenge(algorithms=algorithms, realm=realm, bearer=bearer, scope=scope)
        return {"WWW-Authenticate": value}


class MissingTokenError(VerificationError):
    """RFC 6750 §3.1: no credentials at all.  The challenge then carries no error code."""

    def challenge(
        self,
        *,
        algorithms: Sequence[str] = (),
        realm: str | None = None,
        bearer: bool = False,
        scope: str | None = None,
    ) -> str:
        # Realm and scope come from this resource's own settings, yet fit the same character set
        # (RFC 6750 §3: quoted-strings, scope in NQCHARs), so they are cut down the same way.
        params = [f'realm="{error_description(realm)}"'] if realm is not None else []
        if scope:
            params.append(f'scope="{error_description(scope)}"')
        if algorithms:
            params.append(f'algs="{" ".join(algorithms)}"')
        value = ("DPoP " + ", ".join(params)) if params else "DPoP"
        if bearer:
            value += ", Bearer" + (" " + params[0] if realm is not None else "")
        return value


class InvalidRequestError(VerificationError):
    """RFC 6750 §3.1: a malformed request (two Authorization headers, two DPoP headers ...)."""

    error = "invalid_request"
    status_code = 400


class InvalidTokenError(VerificationError):
    """RFC 6750 §3.1: expired, revoked, malformed, wrong issuer/audience/signature ..."""


class InsufficientScopeError(VerificationError):
    """RFC 6750 §3.1: the token is good but lacks a scope this resource needs."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str, *, required: Sequence[str] = ()) -> None:
        super().__init__(description)
        self.required = tuple(required)


class ChainPolicyError(InsufficientScopeError):
    """The delegation chain breaks this resource's policy (depth, actors, human root).

    Reported as ``insufficient_scope`` (403): the token is genuine, but not good enough here.
    """


class InvalidDPoPProofError(VerificationError):
    """RFC 9449 §7.1: the DPoP proof is missing, malformed, replayed or bound to another key."""

    error = "invalid_dpop_proof"


class UseDPoPNonceError(VerificationError):
    """RFC 9449 §9: retry with the nonce in the ``DPoP-Nonce`` header."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, *, nonce: str) -> None:
        super().__init__(description)
        self.nonce = nonce

    def headers(
        self, *, algorithms: Sequence[str] = (), realm: str | None = None, bearer: bool = False
    ) -> dict[str, str]:
        headers = super().headers(algorithms=algorithms, realm=realm, bearer=bearer)
        return {**headers, "DPoP-Nonce": self.nonce}


class UnavailableError(InvalidTokenError):
    """The issuer's keys or status list could not be obtained: refuse (fail closed)."""
