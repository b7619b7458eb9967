"""Resource-server DPoP nonces (RFC 9449 §9): ``deputize.keys.nonces`` with their own label, so
a resource server's nonces never pass at the authorization server or the other way round."""

from __future__ import annotations

from deputize.keys.nonces import NonceSource as _NonceSource


class NonceSource(_NonceSource):
    def __init__(self, secret: bytes | None = None, *, lifetime: int = 300) -> None:
        super().__init__(secret, lifetime=lifetime, label=b"rs-nonce")
