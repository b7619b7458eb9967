"""An access token the agent holds, with what it needs to use and renew it."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from deputize.keys._json import loads


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    token_type: str
    """``DPoP`` for a key-bound token; ``N_A`` for a hand-off token (not for resource servers)."""
    expires_at: float
    scope: tuple[str, ...] = ()
    issued_token_type: str | None = None
    _claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def bound(self) -> bool:
        return self.token_type.lower() == "dpop"

    @property
    def claims(self) -> dict[str, Any]:
        """The token's claims, decoded WITHOUT verification: for display and routing only.
        Resource servers verify; the agent merely reads what it was given."""
        if not self._claims:
            self._claims.update(peek_claims(self.access_token))
        return self._claims

    def fresh(self, now: float, margin: float) -> bool:
        return now < self.expires_at - margin

    def __str__(self) -> str:
        return self.access_token


def peek_claims(token: str) -> dict[str, Any]:
    """A JWT's payload without verifying it ({} if it is not a JWT)."""
    try:
        payload = token.split(".")[1]
        value = loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
