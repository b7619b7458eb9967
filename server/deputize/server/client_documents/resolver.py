"""Clients whose ``client_id`` is the URL of their metadata document: cached, else fetched
(``fetch.py``) and validated (``document.py``).  One fetch at a time per URL, so a burst of
sign-ins for one new client costs one request to its publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from deputize.server.client_documents.cache import DocumentCache, lifetime
from deputize.server.client_documents.document import parse_document
from deputize.server.client_documents.fetch import fetch_document, new_http_client
from deputize.server.settings import ClientConfig, ClientDocumentSettings


class ClientDocuments:
    def __init__(
        self,
        settings: ClientDocumentSettings,
        clock: Callable[[], float],
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._http = http or new_http_client()
        self.cache = DocumentCache(settings.cache_entries)
        self._locks: dict[str, asyncio.Lock] = {}

    async def resolve(self, client_id: str) -> ClientConfig:
        """The client at ``client_id``; ``ClientDocumentError`` when it cannot be used."""
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
        client = parse_document(fetched.body, client_id)
        seconds = lifetime(fetched.cache_control, low=s.cache_min_seconds, high=s.cache_max_seconds)
        self.cache.put(client, self._clock(), seconds)
        return client

    async def aclose(self) -> None:
        await self._http.aclose()
