"""Errors raised by the JOSE core.

Each error carries a stable ``error`` code so a caller (the server's token endpoint, the
resource-server verifier) can turn it into the right OAuth response without parsing messages.
The message is safe to show to the party that sent the input; it never contains key material
or a whole token.
"""

from __future__ import annotations

#: How a value that is not a string is named in a message.
_KINDS = {list: "an array", dict: "an object", bool: "a boolean", int: "a number",
          float: "a number", type(None): "null"}  # fmt: skip


def shown(value: object, limit: int = 40) -> str:
    """``value``, from the network, as a message may show it: a string quoted and cut to
    ``limit`` characters, anything else named by its JSON kind only.  The ``repr`` of a
    list nested a thousand deep overflows the stack, and a long string is not worth echoing.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + "…"
    return f"({_KINDS.get(type(value), 'a value')})"


class JoseError(Exception):
    """Base class: something about a JWS, JWT, JWK or DPoP proof is unacceptable."""

    error: str = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class MalformedError(JoseError):
    """The input is not a well-formed compact JWS / JSON object / JWK."""


class UnsupportedAlgorithmError(JoseError):
    """The ``alg`` is not on the caller's allow-list, or does not fit the key."""


class InvalidKeyError(JoseError):
    """A JWK is unusable: unknown ``kty``/``crv``, too small, or carries private members."""


class InvalidSignatureError(JoseError):
    """The signature does not verify with the selected key."""


class InvalidClaimsError(JoseError):
    """A header or claim is missing, of the wrong type, or out of range (exp, iat, aud, typ ...)."""


class InvalidProofError(JoseError):
    """RFC 9449 §7.1: a DPoP proof failed one of the checks of §4.3."""

    error = "invalid_dpop_proof"
