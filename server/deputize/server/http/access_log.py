"""The access log (``deputize serve --access-log``) without tokens or secrets in it.

uvicorn logs each request's path with its query string.  Some queries carry credentials:
``/logout?id_token_hint=<a whole ID token>`` (OpenID Connect RP-Initiated Logout §2), or an
access token a client put in ``/userinfo?access_token=...`` (RFC 6750 §2.3; refused here, but
logged all the same).  So every query value is replaced by ``...`` unless its parameter is on a
short list of names whose values are never secret; the names stay, so the log still says what
was asked.
"""

from __future__ import annotations

import logging
from typing import Final

#: Parameters whose values tell an operator what was asked and grant nothing.  Deny by default:
#: ``state``, ``nonce``, ``code_challenge``, ``login_hint`` and every unknown name are hidden.
SHOWN: Final = frozenset(
    {"client_id", "response_type", "response_mode", "scope", "prompt", "max_age",
     "code_challenge_method", "redirect_uri", "post_logout_redirect_uri", "error"}
)  # fmt: skip


def redact(path: str) -> str:
    """``path`` with the value of each query parameter not in :data:`SHOWN` replaced."""
    base, mark, query = path.partition("?")
    if not mark:
        return path
    parts = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        parts.append(item if not equals or name in SHOWN else f"{name}=...")
    return f"{base}?{'&'.join(parts)}"


class RedactQuery(logging.Filter):
    """For the ``uvicorn.access`` logger, whose records carry ``(client, method, path,
    http_version, status)`` as their arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact(args[2]), args[3], args[4])
        return True
