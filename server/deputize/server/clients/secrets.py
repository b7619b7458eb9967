"""Client secrets: 256 random bits, stored only as a hash, compared in constant time.

Deputize generates every secret it hands out (``deputize clients add``) and refuses configured
secrets shorter than :data:`MIN_SECRET_LENGTH`, so a secret is a high-entropy random string, not
a password.  A plain SHA-256 digest is then as safe to store as a slow password hash (no
dictionary to try) while costing nanoseconds on the token endpoint instead of milliseconds — a
slow hash there would be a denial-of-service lever.  The ``sha256:`` prefix leaves room for
other schemes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

MIN_SECRET_LENGTH: Final = 32
_PREFIX: Final = "sha256:"


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    digest = hashlib.sha256(secret.encode("utf-8")).digest()
    return _PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_secret_hash(value: str) -> bool:
    return value.startswith(_PREFIX) and len(value) == len(_PREFIX) + 43


def verify_secret(presented: str, stored_hash: str) -> bool:
    """Constant-time check of a presented secret against its stored hash."""
    return hmac.compare_digest(hash_secret(presented), stored_hash)
