"""The agent works with ``httpx`` and with ``httpx2`` (the fork the MCP Python SDK and
Starlette's newest TestClient use when it is installed).  Neither needs the other: ``httpx``
is the default (``AgentClient`` makes an ``httpx.Client`` unless given a client), ``httpx2`` is
used only when the caller passes one of its clients.

The SDK reads responses and edits requests only through the small surface the two libraries
share (``status_code``, ``headers``, ``content``, ``url``), so no code path depends on which
library made the object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

# For the type checker, either library's types; at run time httpx2 is never imported here.
if TYPE_CHECKING:
    import httpx2

    SyncHTTP = httpx.Client | httpx2.Client
    AsyncHTTP = httpx.AsyncClient | httpx2.AsyncClient
    Request = httpx.Request | httpx2.Request
    Response = httpx.Response | httpx2.Response
else:
    SyncHTTP = httpx.Client
    AsyncHTTP = httpx.AsyncClient
    Request = httpx.Request
    Response = httpx.Response

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: object) -> str:
    """``scheme://host[:port]`` of a URL (string, ``httpx.URL`` or ``httpx2.URL``), lowercase,
    default port dropped: the key DPoP nonces are remembered by (RFC 9449 §8, §9: a nonce is
    the server's, so one per origin)."""
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"
