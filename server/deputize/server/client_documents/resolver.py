"""Clients whose ``client_id`` is the URL of their metadata document: cached, else fetched
(``fetch.py``) and validated (``document.py``).  One fetch at a time per URL, so a burst of
sign-ins for one new client costs one request to its publisher.

A fetch may take up to ``client_documents.deadline``; it must not hold a database connection
that long, or slow publishers could drain the pool.  So the endpoints :meth:`settle` the
request's ``client_id`` before their transaction begins, and the lookup inside the
transaction finds the result (client or refusal) in a per-request memo, a context variable:
the same request never fetches twice, and nothing outlives the request (``no-store`` holds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container
from contextvars import ContextVar
from dataclasses import replace

import httpx

from deputize.server.client_documents.cache import DocumentCache, lifetime
from deputize.server.client_documents.document import parse_document
from deputize.server.client_documents.errors import ClientDocumentError
from deputize.server.client_documents.fetch import (
    fetch_document,
    looks_like_document_url,
    new_http_client,
)
from deputize.server.configuration.client_documents import ClientDocumentSettings
from deputize.server.settings import ClientConfig

#: This request's settled lookups (see the module docstring); each request task has its own.
_SETTLED: ContextVar[dict[str, ClientConfig | ClientDocumentError] | None] = ContextVar(
    "settled_client_documents", default=None
)


class ClientDocuments:
    def __init__(
        self,
        settings: ClientDocumentSettings,
        clock: Callable[[], float],
        http: httpx.AsyncClient | None = None,
        *,
        audiences: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        #: The resources such clients may ask tokens for: ``registration.audiences``, the same
        #: as clients that registered themselves (an MCP client always names its server).
        self.audiences = audiences
        self._clock = clock
        self._http = http or new_http_client()
        self.cache = DocumentCache(settings.cache_entries)
        self._locks: dict[str, asyncio.Lock] = {}

    async def settle(self, client_id: str | None, *, known: Container[str] = ()) -> None:
        """Resolve ``client_id`` now, outside any transaction, if it is a document URL not in
        ``known`` (the configured clients); the outcome waits in this request's memo."""
        if client_id is None or client_id in known or not looks_like_document_url(client_id):
            return
        settled: dict[str, ClientConfig | ClientDocumentError] = {}
        _SETTLED.set(settled)
        try:
            settled[client_id] = await self._resolve(client_id)
        except ClientDocumentError as exc:
            settled[client_id] = exc

    async def resolve(self, client_id: str) -> ClientConfig:
        """The client at ``client_id``; ``ClientDocumentError`` when it cannot be used."""
        settled = _SETTLED.get()
        if settled is not None and client_id in settled:
            found = settled[client_id]
            if isinstance(found, ClientDocumentError):
                raise found
            return found
        return await self._resolve(client_id)

    async def _resolve(self, client_id: str) -> ClientConfig:
        client = self.cache.get(client_id, self._clock())
        if client is not None:
            return client
        lock = self._locks.setdefault(client_id, asyncio.Lock())
        try:
            async with lock:
                client = self.cache.get(client_id, self._clock())
                if client is not None:
                    return client
                return await self._fetch(client_id)
        finally:
            if not lock.locked() and self._locks.get(client_id) is lock:
                del self._locks[client_id]  # bounded: a lock lives only while it is used

    async def _fetch(self, client_id: str) -> ClientConfig:
        s = self.settings
        fetched = await fetch_document(
            self._http,
            client_id,
            max_bytes=s.max_bytes,
            deadline=s.deadline,
            allow_http_loopback=s.allow_http_loopback,
            allow_private=s.allow_private_addresses,
        )
        client = replace(parse_document(fetched.body, client_id), audiences=self.audiences)
        seconds = lifetime(fetched.cache_control, low=s.cache_min_seconds, high=s.cache_max_seconds)
        self.cache.put(client, self._clock(), seconds)
        return client

    async def aclose(self) -> None:
        await self._http.aclose()
