"""The issuer's signing keys: discovered (RFC 8414), fetched, cached, refreshed on rotation.

No network call per request: keys are looked up by ``kid`` in memory.  A token naming a
``kid`` we do not hold triggers one refetch of the JWKS — at most once per
``refresh_interval`` however many such tokens arrive — so a rotation at the issuer needs no
restart here, and a flood of made-up ``kid`` values costs the issuer one request per interval.
The set is also refetched after ``max_age`` so keys the issuer dropped are dropped here too.
A pinned JWKS (``jwks=``) works offline and is never refetched.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from deputize.keys import JoseError, KeySet, ParsedJWT, PublicKey
from deputize.verifier import _http
from deputize.verifier.errors import UnavailableError


def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known suffix goes between the host and any issuer path."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}"


class IssuerKeys:
    """Public keys of one issuer, by ``kid``."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        refresh_interval: float = 30,
        max_age: float = 3600,
        clock: Callable[[], float],
    ) -> None:
        self.issuer = issuer
        self.pinned = jwks is not None
        self._jwks_uri = jwks_uri
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._clock = clock
        self._keys = KeySet.from_jwks(jwks) if jwks is not None else KeySet()
        self._loaded_at: float | None = clock() if jwks is not None else None
        self._attempted_at: float | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self.fetches = 0
        """How many times the JWKS was fetched (for tests and monitoring)."""
        self.generation = 0
        """Changes whenever the key set does: results verified with older sets are rechecked."""

    def find(self, token: ParsedJWT) -> PublicKey | None:
        """The key for ``token`` from memory; None when it is not (yet) known."""
        return self._keys.find(token)

    def find_for_header(self, header: Mapping[str, Any]) -> PublicKey | None:
        """:meth:`find` for a screened header (:func:`deputize.keys.jwt.parse_parts`)."""
        return self._keys.find_for_header(header)

    def should_refresh(self, *, missing: bool) -> bool:
        """Whether a fetch is due: a key is missing, or the set is older than ``max_age`` —
        and the last attempt was more than ``refresh_interval`` ago."""
        if self.pinned:
            return False
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self._refresh_interval:
            return False
        return missing or self._loaded_at is None or now - self._loaded_at >= self._max_age

    # --- fetching -----------------------------------------------------------------------------

    def refresh(self, http: _http.SyncHTTP) -> None:
        with self._thread_lock:
            if not self.should_refresh(missing=True):
                return  # another thread just did it
            self._attempted_at = self._clock()
            uri = self._jwks_uri
            if uri is None:
                uri = self._jwks_uri_from(_http.get_json(http, metadata_url(self.issuer)))
            self._install(_http.get_json(http, uri), uri)

    async def arefresh(self, http: _http.AsyncHTTP) -> None:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            if not self.should_refresh(missing=True):
                return  # another task just did it
            self._attempted_at = self._clock()
            if self._jwks_uri is None:
                metadata = await _http.aget_json(http, metadata_url(self.issuer))
                uri = self._jwks_uri_from(metadata)
            else:
                uri = self._jwks_uri
            self._install(await _http.aget_json(http, uri), uri)

    def _jwks_uri_from(self, metadata: Any) -> str:
        # RFC 8414 §3.3: the metadata's issuer must be exactly the issuer we were configured
        # with, or an attacker-controlled document could name another key set.
        if not isinstance(metadata, Mapping) or metadata.get("issuer") != self.issuer:
            raise UnavailableError("authorization server metadata names another issuer")
        uri = metadata.get("jwks_uri")
        if not isinstance(uri, str) or urlsplit(uri).scheme not in ("https", "http"):
            raise UnavailableError("authorization server metadata has no usable jwks_uri")
        self._jwks_uri = uri
        return uri

    def _install(self, document: Any, uri: str) -> None:
        try:
            keys = KeySet.from_jwks(document)
        except JoseError as exc:
            raise UnavailableError(f"{uri}: unusable JWKS: {exc.description}") from None
        if keys.keys() != self._keys.keys():
            self.generation += 1
        self._keys = keys
        self._loaded_at = self._clock()
        self.fetches += 1
