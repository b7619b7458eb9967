"""Why a request was refused, as data: an OAuth error code, a status and a challenge.

RFC 6750 §3 and RFC 9449 §7.1 say how a resource server refuses: a ``WWW-Authenticate``
challenge naming the scheme (``DPoP``, and ``Bearer`` when bearer tokens are accepted), the
error code and, for ``insufficient_scope``, the scope needed.  ``use_dpop_nonce`` also carries a
``DPoP-Nonce`` header (RFC 9449 §9).  Descriptions are safe to show to the caller; they never
contain a token or key material.
"""

from __future__ import annotations

from collections.abc import Sequence


class VerificationError(Exception):
    """Base class: the request does not carry an acceptable token and proof."""

    error: str = "invalid_token"
    status_code: int = 401

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

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
            params.append(f'realm="{_quoted(realm)}"')
        params.append(f'error="{self.error}"')
        params.append(f'error_description="{_quoted(self.description)}"')
        if scope:
            params.append(f'scope="{_quoted(scope)}"')
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
        params = [f'realm="{_quoted(realm)}"'] if realm is not None else []
        if scope:
            params.append(f'scope="{_quoted(scope)}"')
        if algorithms:
            params.append(f'algs="{" ".join(algorithms)}"')
        value = ("DPoP " + ", ".join(params)) if params else "DPoP"
        if bearer:
            value += ", Bearer" + (f' realm="{_quoted(realm)}"' if realm is not None else "")
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


def _quoted(value: str) -> str:
    """RFC 9110 §5.6.4 quoted-string content; RFC 6750 §3 limits error_description to
    %x20-21 / %x23-5B / %x5D-7E, so quotes, backslashes and controls are dropped."""
    return "".join(c for c in value if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
