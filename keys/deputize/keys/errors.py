"""Errors raised by the JOSE core.

Each error carries a stable ``error`` code so a caller (the server's token endpoint, the
resource-server verifier) can turn it into the right OAuth response without parsing messages.
The message is safe to show to the party that sent the input; it never contains key material
or a whole token.
"""

from __future__ import annotations

import re

#: How a value that is not a string is named in a message.
_KINDS = {list: "an array", dict: "an object", bool: "a boolean", int: "a number",
          float: "a number", type(None): "null"}  # fmt: skip


def shown(value: object, limit: int = 40) -> str:
    """``value``, from the network, as a message may show it: a string quoted and cut to
    ``limit`` characters, anything else named by its JSON kind only.  The ``repr`` of a
    list nested a thousand deep overflows the stack, and a long string is not worth echoing.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."
    return f"({_KINDS.get(type(value), 'a value')})"


#: What RFC 6749 §5.2 leaves out of ``error_description``: anything but %x20-21 / %x23-5B /
#: %x5D-7E, that is controls, ``"``, ``\\`` and every non-ASCII character.
_NOT_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def error_description(text: str) -> str:
    """``text`` as RFC 6749 §5.2 (and RFC 6750 §3) allow an ``error_description``: each
    character outside that set becomes ``?``.  A message may quote a value from the network;
    so made, it fits a JSON body, a redirect's query and a ``WWW-Authenticate`` quoted-string
    alike, where a raw ``"`` would end the string and a non-Latin-1 character cannot be sent."""
    return _NOT_DESCRIPTION.sub("?", text)


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
