"""The ``client_documents`` section: clients named by the URL of a Client ID Metadata Document
(draft-ietf-oauth-client-id-metadata-document; decision 0015).

Read here rather than in ``settings.py`` to keep that module small; like the rest of this
package it imports nothing of the server (``client_documents/`` applies these values).
"""

from __future__ import annotations

from dataclasses import dataclass

from deputize.server.configuration.sections import ConfigError, Section


@dataclass(frozen=True, kw_only=True)
class ClientDocumentSettings:
    """``client_documents``: clients identified by a Client ID Metadata Document URL
    (draft-ietf-oauth-client-id-metadata-document; decision 0015)."""

    enabled: bool = True
    allow_http_loopback: bool = False
    """Development only: an ``http`` client_id on a loopback host."""
    allow_private_addresses: bool = False
    """Development only: fetch from loopback, private, link-local and other non-public
    addresses (an SSRF defence turned off)."""
    max_bytes: int = 5120
    deadline: float = 3.0
    cache_entries: int = 1000
    cache_min_seconds: int = 60
    cache_max_seconds: int = 3600


def read_client_documents(section: Section) -> ClientDocumentSettings:
    cache_min = section.integer("cache_min_seconds", 60, low=0, high=86_400)
    cache_max = section.integer("cache_max_seconds", 3600, low=0, high=7 * 86_400)
    if cache_max < cache_min:
        raise ConfigError(
            "client_documents.cache_max_seconds: must be at least "
            "client_documents.cache_min_seconds"
        )
    result = ClientDocumentSettings(
        enabled=section.boolean("enabled", True),
        allow_http_loopback=section.boolean("allow_http_loopback", False),
        allow_private_addresses=section.boolean("allow_private_addresses", False),
        max_bytes=section.integer("max_bytes", 5120, low=512, high=256 * 1024),
        deadline=section.seconds("deadline", 3.0, low=0.1, high=30),
        cache_entries=section.integer("cache_entries", 1000, low=0, high=100_000),
        cache_min_seconds=cache_min,
        cache_max_seconds=cache_max,
    )
    section.done()
    return result
