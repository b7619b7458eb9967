"""Bounded GETs for the verifier's few network reads (metadata, JWKS, status lists).

Each read has a size cap and no redirects: the issuer's documents come from the issuer.
Sync and async variants share the checks so the two paths cannot drift.
"""

from __future__ import annotations

import json
from typing import Any, Final

import httpx

from deputize.verifier.errors import UnavailableError

MAX_DOCUMENT_BYTES: Final = 1024 * 1024


def _body(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    if response.status_code != 200:
        raise UnavailableError(f"{url} answered {response.status_code}")
    content = response.content
    if len(content) > max_bytes:
        raise UnavailableError(f"{url} sent more than {max_bytes} bytes")
    return content


def _json(content: bytes, url: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        raise UnavailableError(f"{url} did not send JSON") from None


def get(
    client: httpx.Client, url: str, *, accept: str, max_bytes: int = MAX_DOCUMENT_BYTES
) -> bytes:
    try:
        response = client.get(url, headers={"Accept": accept}, follow_redirects=False)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
        raise UnavailableError(f"cannot fetch {url}: {type(exc).__name__}") from None
    return _body(response, url, max_bytes)


async def aget(
    client: httpx.AsyncClient, url: str, *, accept: str, max_bytes: int = MAX_DOCUMENT_BYTES
) -> bytes:
    try:
        response = await client.get(url, headers={"Accept": accept}, follow_redirects=False)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
        raise UnavailableError(f"cannot fetch {url}: {type(exc).__name__}") from None
    return _body(response, url, max_bytes)


def get_json(client: httpx.Client, url: str) -> Any:
    return _json(get(client, url, accept="application/json"), url)


async def aget_json(client: httpx.AsyncClient, url: str) -> Any:
    return _json(await aget(client, url, accept="application/json"), url)
