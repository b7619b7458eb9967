"""JWK Sets (RFC 7517 §5): a read-only index of trusted public keys by ``kid``.

A ``kid`` is only ever a dictionary key here — never a path, URL or query — so a hostile
``kid`` can at worst miss.  Key selection also requires that the key can produce the token's
``alg`` (see :meth:`deputize.keys.jwk.PublicKey.verify`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from deputize.keys.errors import InvalidKeyError, MalformedError
from deputize.keys.jwk import PRIVATE_MEMBERS, PublicKey, load_public_jwk
from deputize.keys.jwt import ParsedJWT


class KeySet:
    """Public keys by ``kid``; a key published without ``kid`` is indexed by its thumbprint."""

    __slots__ = ("_by_kid",)

    def __init__(self, keys: Iterable[tuple[str, PublicKey]] = ()) -> None:
        self._by_kid: dict[str, PublicKey] = {}
        for kid, key in keys:
            if kid in self._by_kid:
                raise InvalidKeyError(f"duplicate kid {kid!r} in key set")
            self._by_kid[kid] = key

    @classmethod
    def from_jwks(cls, document: Any, *, max_keys: int = 64) -> KeySet:
        """Load a JWKS document, skipping encryption keys and key types we cannot use."""
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise MalformedError("JWKS must be an object with a 'keys' array")
        entries = document["keys"]
        if len(entries) > max_keys:
            raise MalformedError("JWKS has too many keys")
        keys: list[tuple[str, PublicKey]] = []
        for entry in entries:
            if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
                continue
            if PRIVATE_MEMBERS.intersection(entry):
                # A publisher leaking private keys is broken: refuse the whole set.
                raise InvalidKeyError("JWKS contains private key material")
            try:
                key = load_public_jwk(entry)
            except InvalidKeyError:
                continue  # RFC 7517 §5: skip keys of types or curves we do not support
            kid = entry.get("kid")
            keys.append((kid if isinstance(kid, str) and kid else key.thumbprint, key))
        return cls(keys)

    def __len__(self) -> int:
        return len(self._by_kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def keys(self) -> list[PublicKey]:
        return list(self._by_kid.values())

    def find(self, token: ParsedJWT) -> PublicKey | None:
        """The key for ``token``: by ``kid``, or the only fitting key when it names none."""
        return self.find_for_header(token.header)

    def find_for_header(self, header: Mapping[str, Any]) -> PublicKey | None:
        """:meth:`find` for a header that :func:`~deputize.keys.jwt.parse_parts` screened
        (so its ``alg`` is an allowed string)."""
        alg = header["alg"]
        kid = header.get("kid")
        if isinstance(kid, str):
            key = self._by_kid.get(kid)
            return key if key is not None and alg in key.algorithms else None
        if "kid" in header:  # RFC 7515 §4.1.4: a kid is a string; anything else names no key
            return None
        fitting = [k for k in self._by_kid.values() if alg in k.algorithms]
        return fitting[0] if len(fitting) == 1 else None
