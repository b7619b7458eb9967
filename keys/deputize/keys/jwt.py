"""Compact JWS / JWT: sign, parse, verify — with an explicit algorithm allow-list and ``typ``.

Verification is two steps, as RFC 8725 asks: :func:`parse` decodes and screens the header
(size, ``alg`` on the allow-list, ``typ``, no ``crit``), then the caller picks the key *it*
trusts (by ``kid`` from its own key set, never from ``jwk``/``jku``/``x5u``/``x5c`` headers) and
calls :meth:`ParsedJWT.verify`.  Claims are checked afterwards with an explicit clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final

from deputize.keys import _json
from deputize.keys._b64 import b64url_decode, b64url_encode
from deputize.keys.errors import (
    InvalidClaimsError,
    MalformedError,
    UnsupportedAlgorithmError,
    shown,
)
from deputize.keys.jwk import PublicKey, SigningKey

#: Upper bound on a compact token we are willing to parse (a deep delegation chain fits easily).
MAX_TOKEN_LENGTH: Final = 16 * 1024


def normalize_typ(typ: str) -> str:
    """RFC 7515 §4.1.9: compare media types case-insensitively, ``application/`` optional."""
    typ = typ.lower()
    return typ[len("application/") :] if typ.startswith("application/") else typ


@dataclass(frozen=True, slots=True)
class ParsedJWT:
    """A decoded but not yet verified compact JWS with a JSON object payload."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        alg: str = self.header["alg"]
        return alg

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    def verify(self, key: PublicKey) -> Mapping[str, Any]:
        """Check the signature with ``key`` (chosen by the caller) and return the claims."""
        key.verify(self.alg, self.signing_input, self.signature)
        return self.claims


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: One decoder, built once (``json.loads`` with options builds a new one per call).
_DECODER: Final = json.JSONDecoder(parse_constant=_no_constant)
#: Its C scanner: ``_SCAN(text, 0)`` is the JSON value starting at 0 and where it ends.
#: (``JSONDecoder.__init__`` sets ``scan_once``; typeshed does not declare it.)
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        # RFC 7515 §4 / RFC 8259: UTF-8 JSON only; NaN and Infinity are not JSON.
        text = b64url_decode(segment).decode("utf-8")
        # ``_DECODER.decode(text)``, minus two regular expressions and two Python frames when
        # ``text`` has no surrounding whitespace (every JWT we sign or see): the value is
        # scanned directly, and whatever else ``text`` is goes through ``decode``, which alone
        # decides.
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:  # leading whitespace, or not JSON at all
            value, end = None, -1
        if end != len(text):
            value = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedError(f"JWT {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedError(f"JWT {what} is not a JSON object")
    # Only a ``\u`` escape can put either in decoded text; most JWTs have none.
    if "\\u" in text and _has_unusable_text(value):
        raise MalformedError(f"JWT {what} holds a NUL character or a lone surrogate")
    return value


def _has_unusable_text(value: object) -> bool:
    """Whether any string in a decoded JSON value holds a NUL or a lone surrogate.

    I-JSON (RFC 7493 §2.1) forbids lone surrogates: no UTF-8 text can hold one, so neither can a
    database, a log line or another JSON encoder downstream.  NUL has no use in any claim, and
    PostgreSQL's text refuses it.  Refused here, both become a malformed token, not a crash
    wherever the value is stored or encoded next.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


@lru_cache(maxsize=512)
def _header(segment: str) -> Mapping[str, Any]:
    """A decoded header, memoised (bounded): one issuer's tokens, and one agent's DPoP proofs,
    all share a header, so it is decoded once rather than per token.  Read-only."""
    return MappingProxyType(_json_object(segment, "header"))


def parse(
    token: str,
    *,
    algorithms: Collection[str],
    typ: str | Collection[str] | None,
    max_length: int = MAX_TOKEN_LENGTH,
) -> ParsedJWT:
    """Decode a compact JWS and screen its header; does NOT verify the signature.

    ``typ`` lists the explicit types the caller accepts (RFC 8725 §3.11); include ``""`` to
    accept a token without ``typ``.  ``None`` skips the check, for JWTs whose kind is fixed by
    where they arrive and that have no registered type (RFC 7523 client assertions).
    """
    header, claims, signing_input, signature = parse_parts(
        token, algorithms=algorithms, typ=typ, max_length=max_length
    )
    return ParsedJWT(header=header, claims=claims, signing_input=signing_input, signature=signature)


#: :func:`parse_parts`' result: the screened header, the claims (not yet verified), the
#: signing input and the signature.
JWSParts = tuple[Mapping[str, Any], dict[str, Any], bytes, bytes]


def parse_parts(
    token: str,
    *,
    algorithms: Collection[str],
    typ: str | Collection[str] | None,
    max_length: int = MAX_TOKEN_LENGTH,
) -> JWSParts:
    """:func:`parse`, the same checks, as a plain tuple rather than a :class:`ParsedJWT`.

    For a verifier's hot path: each field of a frozen dataclass is set through
    ``object.__setattr__``, about 2,000 instructions apiece.  Verify with
    ``key.verify(header["alg"], signing_input, signature)`` (what :meth:`ParsedJWT.verify`
    does) before trusting the claims.
    """
    if not isinstance(token, str) or len(token) > max_length:
        raise MalformedError("JWT too long or not a string")
    # Three segments.  partition finds a "." with memchr; split walks every character.
    signing_input, dot, signature_segment = token.rpartition(".")
    header_segment, dot, payload_segment = signing_input.partition(".") if dot else ("", "", "")
    if not dot or "." in payload_segment:
        raise MalformedError("JWT must have three segments")
    header = _header(header_segment)
    alg = header.get("alg")
    allowed = (algorithms,) if isinstance(algorithms, str) else algorithms
    if not isinstance(alg, str) or alg not in allowed:
        # Covers alg "none" and every HMAC: neither is ever on an allow-list here.
        raise UnsupportedAlgorithmError(f"alg {shown(alg)} is not allowed")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so any "crit" means reject.
        raise MalformedError("JWT header has unsupported critical parameters")
    if typ is not None:
        accepted = (typ,) if isinstance(typ, str) else typ
        got = header.get("typ", "")
        if not isinstance(got, str) or (
            got not in accepted  # the exact spelling: no normalising on the common path
            and normalize_typ(got) not in {normalize_typ(t) for t in accepted}
        ):
            raise InvalidClaimsError(f"unexpected JWT typ {shown(got)}")
    claims = _json_object(payload_segment, "payload")
    signature = b64url_decode(signature_segment)
    return header, claims, signing_input.encode("ascii"), signature


def sign(
    claims: Mapping[str, Any],
    key: SigningKey,
    *,
    typ: str,
    headers: Mapping[str, Any] | None = None,
    include_kid: bool = True,
) -> str:
    """Sign ``claims`` as a compact JWS with the key's own ``alg`` (and ``kid``)."""
    if headers:
        header: dict[str, Any] = {"alg": key.alg, "typ": typ}
        if include_kid:
            header["kid"] = key.kid
        header.update(headers)
        header_segment = _segment(header)
    else:
        header_segment = _plain_header(key.alg, typ, key.kid if include_kid else None)
    signing_input = header_segment + "." + _segment(claims)
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode("ascii")))


@lru_cache(maxsize=64)
def _plain_header(alg: str, typ: str, kid: str | None) -> str:
    """The encoded header of a JWS with no other parameters, memoised (bounded): a server
    signs every token of a key with the same one."""
    header = {"alg": alg, "typ": typ} if kid is None else {"alg": alg, "typ": typ, "kid": kid}
    return _segment(header)


def _segment(value: Mapping[str, Any]) -> str:
    return b64url_encode(_json.dumps(value))


# --- claim checks (RFC 7519 §4.1), with the caller's clock ------------------------------------


#: Integers a float holds exactly: the common case of a NumericDate, converted without checks.
_EXACT: Final = 2**53


def finite_number(value: object) -> float | None:
    """A JSON number (never a bool) as a finite float; None for anything else.

    The one rule for NumericDates (RFC 7519 §2) and other numbers read from JSON.  NaN and
    infinity are not JSON (our decoder refuses them; a caller's claims may still hold them),
    and an integer too large for a float (``10**400`` in digits) is legal JSON whose
    arithmetic with a float clock raises ``OverflowError``: all three are refused here.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _number(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidClaimsError(f"missing {name!r} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidClaimsError(f"{name!r} claim must be a number")
    number = finite_number(value)
    if number is None:
        raise InvalidClaimsError(f"{name!r} claim must be a finite number")
    return number


def check_times(
    claims: Mapping[str, Any],
    *,
    now: float,
    leeway: float = 0,
    require_exp: bool = True,
    require_iat: bool = False,
    max_lifetime: float | None = None,
) -> None:
    """Validate ``exp``, ``nbf`` and ``iat`` against ``now`` with a small leeway for clock skew."""
    get = claims.get
    # An exact int (never a bool, whose type is bool) that a float holds exactly is a valid
    # NumericDate as it stands; any other value goes through _number's checks.  Saves three
    # calls on every token.
    exp, nbf, iat = get("exp"), get("nbf"), get("iat")
    if type(exp) is int and -_EXACT <= exp <= _EXACT:
        exp = float(exp)
    else:
        exp = _number(claims, "exp", required=require_exp)
    if nbf is not None:  # usually absent
        if type(nbf) is int and -_EXACT <= nbf <= _EXACT:
            nbf = float(nbf)
        else:
            nbf = _number(claims, "nbf", required=False)
    if type(iat) is int and -_EXACT <= iat <= _EXACT:
        iat = float(iat)
    else:
        iat = _number(claims, "iat", required=require_iat)
    if exp is not None and now - leeway >= exp:
        raise InvalidClaimsError("token has expired")
    if nbf is not None and now + leeway < nbf:
        raise InvalidClaimsError("token is not yet valid")
    if iat is not None and iat > now + leeway:
        raise InvalidClaimsError("token was issued in the future")
    if max_lifetime is not None and exp is not None and exp - now > max_lifetime + leeway:
        raise InvalidClaimsError("token lifetime is too long")


def check_audience(claims: Mapping[str, Any], accepted: Collection[str]) -> None:
    """RFC 7519 §4.1.3: the token must name at least one audience we answer to."""
    aud = claims.get("aud")
    values: Collection[str]
    if isinstance(aud, str):
        values = (aud,)
    elif isinstance(aud, list) and aud and all(isinstance(v, str) for v in aud):
        values = aud
    else:
        raise InvalidClaimsError("missing or malformed 'aud' claim")
    wanted = (accepted,) if isinstance(accepted, str) else accepted
    # Membership in ``accepted`` as given (usually a frozenset): nothing is built per token.
    for value in values:
        if value in wanted:
            return
    raise InvalidClaimsError("token is not intended for this audience")


def string_claim(claims: Mapping[str, Any], name: str, *, max_length: int = 512) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidClaimsError(f"missing or malformed {name!r} claim")
    return value
