"""RFC 9449 §4.3 check 9: ``htu`` is compared after RFC 3986 §6.2.2-§6.2.3 normalisation.

The proof's ``htu`` and the URI the server itself considers the target are normalised the same
way (case, percent-encoding, dot segments, default port, empty path) with query and fragment
ignored (§4.2), then compared as strings.
"""

from __future__ import annotations

import pytest

from deputize.keys import InvalidProofError, SigningKey, create_proof, normalize_htu, verify_proof

NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://server.example.com/token", "https://server.example.com/token"),
        ("https://server.example.com:443/token", "https://server.example.com/token"),
        ("http://server.example.com:80/token", "http://server.example.com/token"),
        ("https://server.example.com:/token", "https://server.example.com/token"),
        ("https://server.example.com:8443/token", "https://server.example.com:8443/token"),
        ("http://server.example.com:443/token", "http://server.example.com:443/token"),
        ("https://server.example.com:80/token", "https://server.example.com:80/token"),
        ("https://SERVER.Example.COM/token", "https://server.example.com/token"),
        ("HTTPS://server.example.com/token", "https://server.example.com/token"),
        ("HtTp://server.example.com/token", "http://server.example.com/token"),
        ("https://server.example.com/%7euser", "https://server.example.com/~user"),
        ("https://server.example.com/%7Euser", "https://server.example.com/~user"),
        ("https://server.example.com/%41%62%2D%2e%5F", "https://server.example.com/Ab-._"),
        ("https://server.example.com/a%2fb", "https://server.example.com/a%2Fb"),
        ("https://server.example.com/a%2Fb", "https://server.example.com/a%2Fb"),
        ("https://server.example.com/caf%c3%a9", "https://server.example.com/caf%C3%A9"),
        ("https://server.example.com/a%20b", "https://server.example.com/a%20b"),
        ("https://server.example.com/a/./b", "https://server.example.com/a/b"),
        ("https://server.example.com/a/b/../c", "https://server.example.com/a/c"),
        ("https://server.example.com/a/b/../../../c", "https://server.example.com/c"),
        ("https://server.example.com/a/.", "https://server.example.com/a/"),
        ("https://server.example.com/a/..", "https://server.example.com/"),
        ("https://server.example.com/a/%2e%2E/b", "https://server.example.com/b"),
        ("https://server.example.com", "https://server.example.com/"),
        ("https://server.example.com/", "https://server.example.com/"),
        ("https://server.example.com/token?a=1&b=2", "https://server.example.com/token"),
        ("https://server.example.com/token#section", "https://server.example.com/token"),
        ("https://server.example.com?a=1", "https://server.example.com/"),
        ("https://server.example.com/token?", "https://server.example.com/token"),
        ("https://[::1]/token", "https://[::1]/token"),
        ("https://[::1]:443/token", "https://[::1]/token"),
        ("https://[::1]:8443/token", "https://[::1]:8443/token"),
        ("https://[2001:DB8::1]/token", "https://[2001:db8::1]/token"),
        ("http://127.0.0.1:8000/token", "http://127.0.0.1:8000/token"),
        ("https://server.example.com/Token", "https://server.example.com/Token"),
        ("https://server.example.com//token", "https://server.example.com//token"),
        ("https://server.example.com/token/", "https://server.example.com/token/"),
    ],
    ids=[
        "a plain URL is already normal",
        "the default https port is dropped",
        "the default http port is dropped",
        "an empty port is dropped",
        "a non-default port is kept",
        "port 443 is not a default for http",
        "port 80 is not a default for https",
        "the host is lower-cased",
        "the scheme is lower-cased",
        "a mixed-case http scheme is lower-cased",
        "%7e is decoded to a tilde",
        "%7E is decoded to a tilde",
        "every percent-encoded unreserved character is decoded",
        "%2f stays encoded and is upper-cased to %2F",
        "%2F stays encoded",
        "percent-encoded UTF-8 is upper-cased but not decoded",
        "an encoded space stays encoded",
        "a single-dot segment is removed",
        "a double-dot segment removes its parent",
        "double-dot segments never climb above the root",
        "a trailing single dot leaves a trailing slash",
        "a trailing double dot leaves the root",
        "encoded dots are decoded and then removed as dot segments",
        "an empty path becomes a slash",
        "a root path stays a slash",
        "the query is ignored",
        "the fragment is ignored",
        "a query on an empty path is ignored and the path becomes a slash",
        "an empty query is ignored",
        "an IPv6 literal keeps its brackets",
        "an IPv6 literal loses the default port",
        "an IPv6 literal keeps a non-default port",
        "an IPv6 literal is lower-cased",
        "an IPv4 address with a port is kept",
        "the path is case-sensitive",
        "an empty path segment is kept",
        "a trailing slash is kept",
    ],
)
def test_normalize_htu(url: str, normalized: str) -> None:
    assert normalize_htu(url) == normalized


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://server.example.com/token", "https://server.example.com/other"),
        ("https://server.example.com/token", "https://other.example.com/token"),
        ("https://server.example.com/token", "http://server.example.com/token"),
        ("https://server.example.com/token", "https://server.example.com:8443/token"),
        ("https://server.example.com/token", "https://server.example.com/token/"),
        ("https://server.example.com/token", "https://server.example.com/TOKEN"),
        ("https://server.example.com/a/b", "https://server.example.com/a%2Fb"),
        ("https://server.example.com/a b", "https://server.example.com/a%20b"),
        ("https://server.example.com/token", "https://server.example.com.evil.example/token"),
    ],
    ids=[
        "another path differs",
        "another host differs",
        "another scheme differs",
        "another port differs",
        "a trailing slash differs",
        "a path in another case differs",
        "an encoded slash differs from a path separator",
        "a raw space differs from an encoded one",
        "a longer host with the same prefix differs",
    ],
)
def test_normalize_htu_keeps_different_uris_apart(a: str, b: str) -> None:
    assert normalize_htu(a) != normalize_htu(b)


@pytest.mark.parametrize(
    "url",
    [
        "https://user@server.example.com/token",
        "https://user:password@server.example.com/token",
        "https://@server.example.com/token",
        "https://server.example.com@evil.example/token",
        "ftp://server.example.com/token",
        "wss://server.example.com/token",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "urn:example:token",
        "//server.example.com/token",
        "/token",
        "server.example.com/token",
        "",
        "https:///token",
        "https://server.example.com:99999/token",
        "https://server.example.com:port/token",
        "https://[::1/token",
    ],
    ids=[
        "userinfo is rejected",
        "userinfo with a password is rejected",
        "an empty userinfo is rejected",
        "a host smuggled in as userinfo is rejected",
        "a non-http scheme is rejected",
        "a websocket scheme is rejected",
        "a file URI is rejected",
        "a javascript URI is rejected",
        "a URN is rejected",
        "a scheme-relative reference is rejected",
        "a relative path is rejected",
        "a URI without a scheme is rejected",
        "an empty string is rejected",
        "a URI without a host is rejected",
        "an out-of-range port is rejected",
        "a non-numeric port is rejected",
        "an unclosed IPv6 literal is rejected",
    ],
)
def test_normalize_htu_rejects(url: str) -> None:
    with pytest.raises(InvalidProofError, match="htu"):
        normalize_htu(url)


@pytest.mark.parametrize(
    ("proof_url", "server_url"),
    [
        ("HTTPS://Server.Example.COM:443/token", "https://server.example.com/token"),
        ("https://server.example.com/a/../token", "https://server.example.com/token"),
        ("https://server.example.com/%7Eagent/token", "https://server.example.com/~agent/token"),
        ("https://server.example.com/token?x=1", "https://server.example.com/token"),
        ("https://server.example.com/token", "https://server.example.com/token?x=1"),
        ("https://server.example.com", "https://server.example.com/"),
    ],
    ids=[
        "a proof with the host in upper case and the default port verifies",
        "a proof with dot segments verifies",
        "a proof with an encoded tilde verifies",
        "a proof for a URL with a query verifies",
        "a server URL with a query still matches",
        "a proof for an empty path matches the root",
    ],
)
def test_verify_proof_compares_normalized_htu(
    es256_key: SigningKey, proof_url: str, server_url: str
) -> None:
    proof = create_proof(es256_key, "GET", proof_url, now=NOW)
    verify_proof(proof, method="GET", url=server_url, now=NOW)


@pytest.mark.parametrize(
    ("proof_url", "server_url"),
    [
        ("https://server.example.com/a%2Ftoken", "https://server.example.com/a/token"),
        ("http://server.example.com/token", "https://server.example.com/token"),
        ("https://server.example.com:8443/token", "https://server.example.com/token"),
        ("https://user@server.example.com/token", "https://server.example.com/token"),
    ],
    ids=[
        "an encoded slash does not match a path separator",
        "http does not match https",
        "an explicit non-default port does not match",
        "a proof with userinfo in htu is rejected",
    ],
)
def test_verify_proof_rejects_a_different_htu(
    es256_key: SigningKey, proof_url: str, server_url: str
) -> None:
    proof = create_proof(es256_key, "GET", proof_url, now=NOW)
    with pytest.raises(InvalidProofError, match="htu"):
        verify_proof(proof, method="GET", url=server_url, now=NOW)
