"""Fetching a client ID metadata document without becoming a tool for SSRF.

The draft (draft-ietf-oauth-client-id-metadata-document-00 §6.5, "Server-Side Request
Forgery") warns that the authorization server fetches a URL an anonymous party chose.  So,
failing closed at each step:

1. the URL itself (§3): ``https``, a host, a path other than ``/``, no userinfo, no fragment,
   no ``.``/``..`` segments; ``http`` only to a loopback host when ``allow_http_loopback``;
2. the host is resolved off the event loop, and every address it resolves to must be public
   (no loopback, private, shared, link-local, multicast, reserved or unspecified address,
   IPv4 or IPv6, IPv4-mapped and NAT64/6to4-embedded included) unless
   ``allow_private_addresses``;
3. the connection goes to the address that was checked — the URL is rewritten to the IP,
   ``Host`` keeps the name and TLS uses it for SNI and certificate checks (httpcore's
   ``sni_hostname`` extension) — so a second DNS answer cannot swap in another address;
4. no redirect is followed (§4: the server MUST NOT): a 3xx is a refusal, as is any status
   but 200 and a content type other than ``application/json`` or ``application/*+json``;
5. the body is read as a stream and cut off past ``max_bytes`` (§6.6 suggests 5 KB), and
   one deadline covers resolving, connecting and reading, so a slow peer is cut off too.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx

from deputize.server.client_documents.errors import ClientDocumentError

#: Every ``client_id`` column is 128 characters (``storage/tables.py``).
MAX_URL_LENGTH: Final = 128
#: What a configured client_id may hold (``settings._CLIENT_ID``), so a query or a
#: percent-encoded path is refused here, with a reason, rather than deeper down.
_URL_CHARACTERS: Final = re.compile(r"[A-Za-z0-9._~:@/-]+")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED: Final = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
_DNS_THREADS: Final = ThreadPoolExecutor(max_workers=8, thread_name_prefix="client-document-dns")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    cache_control: str


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def looks_like_document_url(client_id: str) -> bool:
    """Whether ``client_id`` is meant as a metadata document URL (then it is checked in full)."""
    return client_id.startswith(("https://", "http://"))


def check_url(client_id: str, *, allow_http_loopback: bool) -> str:
    """The host of ``client_id`` if it may be a document URL (draft §3), else a refusal."""

    def refuse(reason: str) -> ClientDocumentError:
        return ClientDocumentError(reason, client_id=client_id)

    if len(client_id) > MAX_URL_LENGTH:
        raise refuse(f"the client_id URL is longer than {MAX_URL_LENGTH} characters")
    if not _URL_CHARACTERS.fullmatch(client_id):
        raise refuse("the client_id URL may hold only letters, digits and . _ ~ : @ / - (no query)")
    try:
        parts = urlsplit(client_id)
        port = parts.port
    except ValueError:
        raise refuse("the client_id is not a valid URL") from None
    host = parts.hostname or ""
    if parts.scheme == "http":
        if not (allow_http_loopback and is_loopback_host(host)):
            raise refuse("the client_id URL must use https")
    elif parts.scheme != "https":
        raise refuse("the client_id URL must use https")
    if not host:
        raise refuse("the client_id URL has no host")
    if "@" in parts.netloc:
        raise refuse("the client_id URL must not hold a user name or password")
    if "#" in client_id:
        raise refuse("the client_id URL must not have a fragment")
    if parts.path in ("", "/"):
        raise refuse("the client_id URL must have a path")
    segments = parts.path.split("/")
    if any(s.lower() in (".", "..", "%2e", "%2e%2e", ".%2e", "%2e.") for s in segments):
        raise refuse("the client_id URL must not have . or .. path segments")
    if port == 0:
        raise refuse("the client_id URL has no usable port")
    return host


def address_allowed(ip: IPAddress, *, allow_private: bool) -> bool:
    """Whether a fetch may connect to ``ip``: public unicast only, unless ``allow_private``."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_allowed(embedded, allow_private=allow_private)
    if ip.is_unspecified or ip.is_multicast:
        return False  # never a peer, whatever the setting
    if allow_private:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
    )


async def resolve(host: str, port: int, *, allow_private: bool, client_id: str) -> IPAddress:
    """The address to connect to: every address ``host`` resolves to must be allowed (one bad
    answer refuses the lot, so round-robin DNS cannot smuggle one in)."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            # In threads of its own, never on the event loop, and never in the default pool
            # (password hashing runs there): a flood of lookups of names whose DNS never
            # answers queues here, and the deadline refuses it.
            infos = await asyncio.get_running_loop().run_in_executor(
                _DNS_THREADS,
                functools.partial(
                    socket.getaddrinfo, host, port, type=socket.SOCK_STREAM,
                    proto=socket.IPPROTO_TCP,
                ),
            )  # fmt: skip
        except (OSError, UnicodeError):
            raise ClientDocumentError(
                "the client_id URL's host does not resolve", client_id=client_id
            ) from None
        addresses = []
        for info in infos:
            try:
                addresses.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
            except ValueError:
                continue
    if not addresses:
        raise ClientDocumentError("the client_id URL's host does not resolve", client_id=client_id)
    for address in addresses:
        if not address_allowed(address, allow_private=allow_private):
            raise ClientDocumentError(
                "the client_id URL's host resolves to a private or reserved address",
                client_id=client_id,
            )
    return addresses[0]


def _json_content_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def new_http_client(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The client for documents only: no proxy from the environment (it would do its own DNS),
    no redirects, and no kept-alive connection (the pool is keyed by IP, and a connection made
    for one host name must never carry a request for another)."""
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(5.0),
        limits=httpx.Limits(max_keepalive_connections=0),
        transport=httpx.AsyncHTTPTransport(
            verify=verify, retries=0, limits=httpx.Limits(max_keepalive_connections=0)
        ),
    )


async def fetch_document(
    http: httpx.AsyncClient,
    client_id: str,
    *,
    max_bytes: int,
    deadline: float,
    allow_http_loopback: bool,
    allow_private: bool,
) -> Fetched:
    """GET the document at ``client_id`` under the rules above; a ``ClientDocumentError`` for
    anything else."""
    host = check_url(client_id, allow_http_loopback=allow_http_loopback)
    url = httpx.URL(client_id)
    port = url.port or (443 if url.scheme == "https" else 80)

    def refuse(reason: str) -> ClientDocumentError:
        return ClientDocumentError(reason, client_id=client_id)

    try:
        async with asyncio.timeout(deadline):
            address = await resolve(host, port, allow_private=allow_private, client_id=client_id)
            # Host keeps the name (from the URL); identity encoding: a compressed body could
            # expand far past the size cap in one chunk.
            request = http.build_request(
                "GET", url, headers={"Accept": "application/json", "Accept-Encoding": "identity"}
            )
            request.url = url.copy_with(host=str(address))
            if url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
            response = await http.send(request, stream=True, follow_redirects=False)
            try:
                if 300 <= response.status_code < 400:
                    raise refuse(
                        "the client_id URL answered with a redirect, which is not followed"
                    )
                if response.status_code != 200:
                    raise refuse(f"the client_id URL answered HTTP {response.status_code}")
                if not _json_content_type(response.headers.get("content-type", "")):
                    raise refuse("the document is not served as application/json")
                if response.headers.get("content-encoding", "identity").lower() != "identity":
                    raise refuse("the document is served compressed, which was not asked for")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise refuse(f"the document is larger than {max_bytes} bytes")
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > max_bytes:
                        raise refuse(f"the document is larger than {max_bytes} bytes")
            finally:
                await response.aclose()
    except TimeoutError:
        raise refuse(f"the document did not arrive within {deadline:g} s") from None
    except httpx.HTTPError as exc:
        raise refuse(f"the document could not be fetched ({type(exc).__name__})") from None
    return Fetched(bytes(body), response.headers.get("cache-control", ""))
