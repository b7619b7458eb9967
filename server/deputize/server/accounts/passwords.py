"""User passwords: argon2id (RFC 9106) through argon2-cffi, off the event loop.

Hashing is deliberately slow (tens of milliseconds and 64 MiB), so it runs in a worker thread
and never inside a database transaction.  An unknown user costs the same work as a wrong
password, so sign-in timing does not tell which user names exist.
"""

from __future__ import annotations

import asyncio
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: NIST SP 800-63B §5.1.1.2: at least 8 characters; a cap keeps hashing cost bounded.
MIN_LENGTH: Final = 8
MAX_LENGTH: Final = 256

_HASHER: Final = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile
_DUMMY: Final = _HASHER.hash("deputize-timing-equaliser")


class PasswordPolicyError(ValueError):
    """The new password is unacceptable; the message says why."""


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"passwords must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"passwords must be at most {MAX_LENGTH} characters")
    if not password.isprintable():
        raise PasswordPolicyError("passwords must not contain control characters")


def hash_password(password: str) -> str:
    check_policy(password)
    return _HASHER.hash(password)


def _verify(password: str, stored: str | None) -> bool:
    if len(password) > MAX_LENGTH:
        return False  # never spend argon2 work on an oversized input
    try:
        ok = _HASHER.verify(stored or _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored is not None


async def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (None: an unknown user, always False)."""
    return await asyncio.to_thread(_verify, password, stored)
