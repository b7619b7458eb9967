"""RFC 9449 DPoP proofs: create one, and check one the way §4.3 lists.

This module holds the stateless checks.  The two that need state stay with the caller, who
owns it: the ``jti`` replay cache (§11.1) and the server-provided ``nonce`` (§8, §9).
:class:`DPoPProof` hands back what they need.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

from deputize.keys._b64 import b64url_encode
from deputize.keys.compare import same_text
from deputize.keys.errors import InvalidClaimsError, InvalidProofError, JoseError
from deputize.keys.jwk import PublicKey, SigningKey, load_public_jwk
from deputize.keys.jwt import _EXACT, _header, finite_number, parse_parts, sign

TYP: Final = "dpop+jwt"
#: Asymmetric algorithms we accept in proofs (§4.3 check 5); advertised as
#: ``dpop_signing_alg_values_supported``.
ALGORITHMS: Final = ("ES256", "ES384", "EdDSA", "RS256", "PS256")
#: Proofs are small; anything bigger is not a proof.
MAX_PROOF_LENGTH: Final = 8 * 1024
_MAX_JTI: Final = 256
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def bound_key(claims: Mapping[str, Any]) -> str | None:
    """The thumbprint a token is bound to (§6.1: ``cnf.jkt``), or None for a bearer token.

    A ``cnf`` that is there but holds no usable ``jkt`` — another confirmation method (RFC 7800
    §3.1) or a malformed one — is refused, never read as "unbound": misreading a binding must
    not drop it.  The server and the verifier both read tokens through this one function.
    """
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    if not isinstance(jkt, str) or not jkt or len(jkt) > 128:
        raise InvalidClaimsError("malformed 'cnf' claim: no 'jkt' key thumbprint")
    return jkt


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim (§4.2): base64url SHA-256 of the ASCII access token."""
    try:
        raw = access_token.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidProofError("access token is not ASCII") from None
    return b64url_encode(hashlib.sha256(raw).digest())


def _normalize_pct(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, on an absolute path."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if path.split("/")[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)


@lru_cache(maxsize=1024)
def normalize_htu(url: str) -> str:
    """The form in which ``htu`` values are compared (§4.3 check 9).

    Pure, so memoised (bounded): a resource's few URLs are normalised once, not per request.

    Query and fragment are dropped; the rest is normalised per RFC 3986 §6.2.2 (case,
    percent-encoding, dot segments) and §6.2.3 (default port, empty path is ``/``).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidProofError("htu is not a valid URI") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        raise InvalidProofError("htu must be an http(s) URI without user information")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    authority = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _remove_dot_segments(_PCT.sub(_normalize_pct, parts.path or "/"))
    return f"{scheme}://{authority}{path}"


@lru_cache(maxsize=1024)
def _header_key(segment: str) -> PublicKey:
    """The public key in a proof's (already screened) header segment, memoised (bounded).

    An agent signs all its proofs with one key under one header, so its JWK is validated
    and loaded once, not per proof.  A JWK that fails raises every time: failures are not
    cached.
    """
    return load_public_jwk(_header(segment).get("jwk"))


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A proof that passed the stateless checks.  The caller still owes replay and nonce checks."""

    key: PublicKey
    jti: str
    iat: int
    nonce: str | None
    ath: str | None = None
    """The proof's access token hash, for callers that learn which token it covers later."""

    def covers(self, access_token: str) -> bool:
        """Whether ``ath`` is the hash of ``access_token`` (RFC 9449 §4.3 check 12)."""
        return self.ath is not None and same_text(self.ath, access_token_hash(access_token))

    @property
    def jkt(self) -> str:
        """RFC 7638 thumbprint of the proof key: what ``cnf.jkt`` binds a token to (§6.1)."""
        return self.key.thumbprint


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    max_age: float = 60,
    algorithms: Collection[str] = ALGORITHMS,
    access_token: str | None = None,
    jkt: str | None = None,
) -> DPoPProof:
    """Run the §4.3 checks that need no state; raise :class:`InvalidProofError` on any failure.

    ``url`` is the URI the caller *itself* considers the target (its configured public URL),
    never one rebuilt from request headers an attacker controls.  ``max_age`` bounds how far
    ``iat`` may be from ``now`` either way (check 11).  With ``access_token``, the proof must
    carry its hash in ``ath`` (check 12) and, with ``jkt``, be signed by the bound key (check 13).
    """
    key, jti, iat, nonce, ath = check_proof(
        proof, method=method, url=url, now=now, max_age=max_age, algorithms=algorithms,
        access_token=access_token, jkt=jkt,
    )  # fmt: skip
    return DPoPProof(key=key, jti=jti, iat=iat, nonce=nonce, ath=ath)


#: :func:`check_proof`'s result: the proof's key, ``jti``, ``iat``, ``nonce`` and ``ath``.
ProofParts = tuple[PublicKey, str, int, str | None, str | None]


def check_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    max_age: float = 60,
    algorithms: Collection[str] = ALGORITHMS,
    access_token: str | None = None,
    jkt: str | None = None,
) -> ProofParts:
    """:func:`verify_proof`, the same checks, as a plain tuple rather than a :class:`DPoPProof`.

    For a verifier's hot path: each field of a frozen dataclass is set through
    ``object.__setattr__``, about 2,000 instructions apiece.
    """
    try:
        # Checks 2, 4, 5: well-formed JWS, typ dpop+jwt, asymmetric allow-listed alg.
        header, claims, signing_input, signature = parse_parts(
            proof, algorithms=algorithms, typ=TYP, max_length=MAX_PROOF_LENGTH
        )
        if header.get("typ") != TYP:
            raise InvalidProofError("typ must be exactly dpop+jwt")
        # Checks 6, 7: the key is the public JWK in the header; private members are refused.
        key = _header_key(proof[: proof.find(".")])
        key.verify(header["alg"], signing_input, signature)
    except InvalidProofError:
        raise
    except JoseError as exc:
        raise InvalidProofError(f"invalid DPoP proof: {exc.description}") from None

    jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
    if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
        raise InvalidProofError("DPoP proof needs a jti of at most 256 characters")
    if not isinstance(htm, str) or htm != method:  # check 8: methods are case-sensitive
        raise InvalidProofError("DPoP proof htm does not match the request method")
    if not isinstance(htu, str) or normalize_htu(htu) != normalize_htu(url):  # check 9
        raise InvalidProofError("DPoP proof htu does not match the request URI")
    # RFC 7519 NumericDate: a JSON number, possibly fractional; never a bool, NaN, infinity or
    # an int too large for a float.  (A small exact int is all of that: the usual case.)
    issued = iat if type(iat) is int and -_EXACT <= iat <= _EXACT else finite_number(iat)
    if issued is None:
        raise InvalidProofError("DPoP proof needs a numeric iat")
    if abs(now - issued) > max_age:  # check 11
        raise InvalidProofError("DPoP proof iat is outside the acceptable window")
    nonce = claims.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or len(nonce) > 512):
        raise InvalidProofError("DPoP proof nonce must be a string")
    if access_token is not None:
        # Check 12: ath binds the proof to the exact token presented with it.
        ath = claims.get("ath")
        if not isinstance(ath, str) or not same_text(ath, access_token_hash(access_token)):
            raise InvalidProofError("DPoP proof ath does not match the access token")
    if jkt is not None and not same_text(key.thumbprint, jkt):
        # Check 13: the proof key must be the key the token is bound to.
        raise InvalidProofError("DPoP proof key does not match the token's cnf.jkt")
    ath = claims.get("ath")  # when no access_token was given, checked by the caller later
    return key, jti, int(issued), nonce, ath if isinstance(ath, str) else None


def create_proof(
    key: SigningKey,
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
    now: float | None = None,
) -> str:
    """Make a fresh proof for one request (§4.2).  ``url`` may include a query: it is dropped."""
    parts = urlsplit(url)
    claims: dict[str, object] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": f"{parts.scheme}://{parts.netloc}{parts.path or '/'}",
        "iat": int(time.time() if now is None else now),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    return sign(claims, key, typ=TYP, headers={"jwk": key.public.to_jwk()}, include_kid=False)
