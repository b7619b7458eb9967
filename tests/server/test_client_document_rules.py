"""The rules of ``client_documents/`` one by one, without a server: which addresses a fetch
may reach (IPv4, IPv6, IPv4-mapped, NAT64, 6to4), which URLs may be client IDs, how long a
document is cached, and what a document must hold."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from dataclasses import replace
from typing import Any

import pytest

from deputize.keys import SigningKey
from deputize.server.client_documents import ClientDocumentError, parse_document
from deputize.server.client_documents.cache import DocumentCache, lifetime
from deputize.server.client_documents.fetch import address_allowed, check_url, resolve
from deputize.server.registration.policy import binding_required
from deputize.server.settings import ConfigError, Settings, parse_settings

URL = "https://app.example.com/oauth/client.json"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",  # noqa: S104
        "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1", "2001:db8::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1",
        "2002:a00:1::1", "2001::1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), allow_private=False)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), allow_private=False)


UNSPECIFIED_AND_MULTICAST = ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "::ffff:0.0.0.0"]  # noqa: S104


@pytest.mark.parametrize("address", UNSPECIFIED_AND_MULTICAST)
def test_unspecified_and_multicast_stay_refused_when_private_is_allowed(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), allow_private=True)


def test_private_addresses_are_allowed_only_by_the_setting() -> None:
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), allow_private=True)
    assert address_allowed(ipaddress.ip_address("::ffff:10.0.0.1"), allow_private=True)


def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(ClientDocumentError, match="private or reserved"):
        asyncio.run(resolve("localhost", 443, allow_private=False, client_id=URL))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://app.example.com/c.json", "https"),
        ("http://app.example.com/c.json", "https"),
        ("https://app.example.com", "path"),
        ("https://app.example.com/", "path"),
        ("https://app.example.com/c.json#x", "letters"),
        ("https://a:b@app.example.com/c.json", "user name"),
        ("https://app.example.com/a/%2e%2e/c.json", "letters"),
        ("https://app.example.com/a/../c.json", ". or .."),
        ("https://app.example.com/a/./c.json", ". or .."),
        ("https://app.example.com/c.json?x=1", "no query"),
        ("https://app.example.com:99999/c.json", "not a valid URL"),
        ("https:///c.json", "no host"),
        ("https://app.example.com/c .json", "letters"),
    ],
)
def test_client_id_urls_follow_the_draft(url: str, reason: str) -> None:
    with pytest.raises(ClientDocumentError, match=reason):
        check_url(url, allow_http_loopback=True)


def test_http_only_on_loopback_and_only_when_allowed() -> None:
    assert check_url("http://127.0.0.1:8000/c.json", allow_http_loopback=True) == "127.0.0.1"
    assert check_url("http://localhost/c.json", allow_http_loopback=True) == "localhost"
    with pytest.raises(ClientDocumentError, match="https"):
        check_url("http://127.0.0.1:8000/c.json", allow_http_loopback=False)
    assert check_url(URL, allow_http_loopback=False) == "app.example.com"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("", 60), ("max-age=30", 60), ("max-age=600", 600), ("max-age=999999", 3600),
        ("no-store", 0), ("no-cache", 0), ("private, max-age=600", 0), ("max-age=0", 0),
        ("max-age=abc", 0), ("public, max-age=600, s-maxage=120", 120), ("MAX-AGE=600", 600),
    ],
)  # fmt: skip
def test_cache_lifetime_is_bounded(header: str, seconds: int) -> None:
    assert lifetime(header, low=60, high=3600) == seconds


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = DocumentCache(2)
    clients = [
        parse_document(_doc(f"https://e.example/{i}"), f"https://e.example/{i}") for i in range(3)
    ]
    cache.put(clients[0], 0, 60)
    cache.put(clients[1], 0, 60)
    assert cache.get(clients[0].client_id, 1) is clients[0]  # now the most recent
    cache.put(clients[2], 0, 60)
    assert len(cache) == 2 and cache.get(clients[1].client_id, 1) is None
    assert cache.get(clients[0].client_id, 60) is None  # expired


def _doc(url: str, /, **changes: Any) -> bytes:
    doc = {"client_id": url, "redirect_uris": ["https://app.example.com/cb"], **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def test_a_good_document_is_a_public_client_that_is_no_agent() -> None:
    client = parse_document(_doc(URL, client_name="  Example\nApp "), URL)
    assert client.source == "metadata_document"
    assert client.token_endpoint_auth_method == "none" and not client.agent
    assert client.grant_types == ("authorization_code",) and client.scopes == ()
    assert client.redirect_uris == ("https://app.example.com/cb",)
    assert client.name == "Example App"
    # Binding is the registration policy's to decide, as for self-registered public clients:
    # required unless registration.allow_bearer_for_public_clients says otherwise.
    assert not client.dpop_bound_access_tokens
    strict = Settings(issuer="https://as.example.com")
    assert binding_required(client, strict)
    lenient = replace(
        strict, registration=replace(strict.registration, allow_bearer_for_public_clients=True)
    )
    assert not binding_required(client, lenient)
    bound = parse_document(_doc(URL, dpop_bound_access_tokens=True), URL)
    assert binding_required(bound, lenient)


def test_scope_in_a_document_grants_nothing() -> None:
    client = parse_document(_doc(URL, scope="admin:all docs:write"), URL)
    assert client.scopes == () and client.audiences == ()


def test_private_key_jwt_needs_inline_keys() -> None:
    jwks = {"keys": [SigningKey.generate("ES256").public_jwk()]}
    client = parse_document(_doc(URL, token_endpoint_auth_method="private_key_jwt", jwks=jwks), URL)
    assert client.token_endpoint_auth_method == "private_key_jwt" and client.jwks is not None
    with pytest.raises(ClientDocumentError, match="jwks"):
        parse_document(_doc(URL, token_endpoint_auth_method="private_key_jwt"), URL)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"client_id": "https://app.example.com/other.json"}, "not the URL"),
        ({"client_id": None}, "not the URL"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "no shared secrets"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "no shared secrets"),
        ({"client_secret_expires_at": 0}, "client_secret_expires_at"),
        ({"grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"]},
         "grant_types"),
        ({"grant_types": ["refresh_token"]}, "must include authorization_code"),
        ({"grant_types": "authorization_code"}, "grant_types"),
        ({"response_types": ["token"]}, "response_types"),
        ({"redirect_uris": []}, "redirect_uris is required"),
        ({"redirect_uris": "https://app.example.com/cb"}, "redirect_uris is required"),
        ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "without fragment"),
        ({"redirect_uris": ["myapp:/cb"]}, "reverse domain name"),
        ({"client_name": ""}, "client_name"),
        ({"client_name": "x" * 101}, "client_name"),
        ({"client_name": 7}, "client_name"),
        ({"logo_uri": "http://app.example.com/logo.png"}, "logo_uri"),
    ],
)  # fmt: skip
def test_bad_documents_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ClientDocumentError, match=reason):
        parse_document(_doc(URL, **changes), URL)


@pytest.mark.parametrize("body", [b"\xff\xfe", b"[" * 100_000, b"null", b'"x"', b"{"])
def test_bodies_that_are_not_objects_are_refused(body: bytes) -> None:
    with pytest.raises(ClientDocumentError):
        parse_document(body, URL)


def test_settings_defaults_and_errors() -> None:
    settings = parse_settings({"issuer": "https://id.example.com"}, env={})
    documents = settings.client_documents
    assert documents.enabled and not documents.allow_http_loopback
    assert not documents.allow_private_addresses and documents.max_bytes == 5120
    assert documents.deadline == 3.0
    with pytest.raises(ConfigError, match=r"client_documents\.cache_max_seconds"):
        parse_settings(
            {"issuer": "https://id.example.com",
             "client_documents": {"cache_min_seconds": 100, "cache_max_seconds": 10}},
            env={},
        )  # fmt: skip
    with pytest.raises(ConfigError, match=r"client_documents\.allow_privat"):
        parse_settings(
            {"issuer": "https://id.example.com", "client_documents": {"allow_privat": True}}, env={}
        )
