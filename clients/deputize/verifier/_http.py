"""Bounded GETs for the verifier's few network reads (metadata, JWKS, status lists).

Each read has a size cap, enforced as the body arrives rather than after; one deadline for the
whole read (httpx's timeouts are per connect and per read, so a server sending a byte every
few seconds could otherwise hold a refresh, and the requests waiting on it, indefinitely);
and no redirects: the issuer's documents come from the issuer.  Sync and async variants share
the checks so the two paths cannot drift.

The client may be an ``httpx`` one (the default) or an ``httpx2`` one (the MCP SDK's library):
both stream the same way, and both libraries' transport errors are caught, so a fetch fails
closed as :class:`UnavailableError` whichever made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from typing import TYPE_CHECKING, Any, Final

import httpx

from deputize.keys._json import loads
from deputize.verifier.errors import UnavailableError

if TYPE_CHECKING:
    import httpx2

    SyncHTTP = httpx.Client | httpx2.Client
    AsyncHTTP = httpx.AsyncClient | httpx2.AsyncClient
    Response = httpx.Response | httpx2.Response
else:
    SyncHTTP = httpx.Client
    AsyncHTTP = httpx.AsyncClient
    Response = httpx.Response


def _transport_errors() -> tuple[type[Exception], ...]:
    """httpx's request errors, and httpx2's when it is installed (``InvalidURL`` is no
    ``HTTPError`` in either)."""
    errors: list[type[Exception]] = [httpx.HTTPError, httpx.InvalidURL]
    with contextlib.suppress(ImportError):
        other = importlib.import_module("httpx2")
        errors += [other.HTTPError, other.InvalidURL]
    return tuple(errors)


_ERRORS: Final = _transport_errors()
MAX_DOCUMENT_BYTES: Final = 1024 * 1024
#: Seconds one read may take in all, from connecting to the body's last byte.
DEADLINE: Final = 10.0


def _check_status(response: Response, url: str) -> None:
    if response.status_code != 200:
        raise UnavailableError(f"{url} answered {response.status_code}")


def _add(body: bytearray, chunk: bytes, url: str, max_bytes: int) -> None:
    body += chunk
    if len(body) > max_bytes:
        raise UnavailableError(f"{url} sent more than {max_bytes} bytes")


def _json(content: bytes, url: str) -> Any:
    try:
        return loads(content)
    except ValueError:
        raise UnavailableError(f"{url} did not send JSON") from None


def _failed(url: str, exc: Exception) -> UnavailableError:
    return UnavailableError(f"cannot fetch {url}: {type(exc).__name__}")


def get(
    client: SyncHTTP,
    url: str,
    *,
    accept: str,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    deadline: float = DEADLINE,
) -> bytes:
    give_up = time.monotonic() + deadline
    body = bytearray()
    try:
        with client.stream("GET", url, headers={"Accept": accept}, follow_redirects=False) as r:
            _check_status(r, url)
            # A thread cannot be interrupted mid-read: the deadline is checked as each piece
            # arrives, so a read ends at most one read timeout after it.
            for chunk in r.iter_bytes():
                _add(body, chunk, url, max_bytes)
                if time.monotonic() > give_up:
                    raise UnavailableError(f"{url} took longer than {deadline} s")
    except _ERRORS as exc:
        raise _failed(url, exc) from None
    return bytes(body)


async def aget(
    client: AsyncHTTP,
    url: str,
    *,
    accept: str,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    deadline: float = DEADLINE,
) -> bytes:
    body = bytearray()
    try:
        async with asyncio.timeout(deadline):
            headers = {"Accept": accept}
            async with client.stream("GET", url, headers=headers, follow_redirects=False) as r:
                _check_status(r, url)
                async for chunk in r.aiter_bytes():
                    _add(body, chunk, url, max_bytes)
    except _ERRORS as exc:
        raise _failed(url, exc) from None
    except TimeoutError:
        raise UnavailableError(f"{url} took longer than {deadline} s") from None
    return bytes(body)


def get_json(client: SyncHTTP, url: str, **limits: Any) -> Any:
    """``limits``: ``max_bytes`` and ``deadline``, as for :func:`get`."""
    return _json(get(client, url, accept="application/json", **limits), url)


async def aget_json(client: AsyncHTTP, url: str, **limits: Any) -> Any:
    return _json(await aget(client, url, accept="application/json", **limits), url)
