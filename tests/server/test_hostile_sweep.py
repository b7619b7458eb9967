"""A seeded sweep of hostile token exchanges: one field at a time made strange, never a 5xx.

The named attacks live in ``test_delegation_attacks.py`` and the per-field refusals beside
each check.  This sweep is the net under them: it takes a valid exchange (agent-a re-exchanging
its delegated token, private_key_jwt + DPoP) and, request by request, gives one member of the
assertion, the proof, their headers, the proof's key or the form a value of the wrong type,
size or text — NUL, lone surrogates, huge numbers, nested objects, non-ASCII.  Every answer must
be a success or an RFC 6749 §5.2 JSON error, and the server must log no unhandled error.
Seeded, so a failure is reproducible; it found a 500 on a non-ASCII ``ath``, one on a NUL in a
proof ``jti`` and one on an over-long claimed ``client_id``.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from delegation_support import (
    ACCESS_TOKEN,
    AUTH_KEYS,
    DPOP_KEYS,
    TOKEN_EXCHANGE,
    start,
    start_chain,
)

from deputize.keys import SigningKey
from deputize.keys._b64 import b64url_encode
from deputize.keys.dpop import access_token_hash

from support import JWT_BEARER, LiveServer, ServerFactory, watch_server_log

REQUESTS = 1000
WEIRD: list[Any] = [
    None, True, 0, -1, 2**64, -(2**63), 10**400, -(10**400), 1e308, 1.5, "", "x" * 3000, [], {},
    ["a"], {"a": 1}, "\x00", "a\x00b", "\ud800", "é", "1700000000", [[[[[]]]]], "none", "HS256",
    "EdDSA",
]  # fmt: skip
FORM_VALUES = [
    "", "x" * 3000, "urn:x", "https://api.example.com", "read write admin", "é", "a.b.c", "...",
    "e30.e30.e30", "https://docs.example.com/é", "agent-b", "agent-a agent-b",
]  # fmt: skip
FORM_NAMES = [
    "subject_token", "subject_token_type", "scope", "client_assertion_type", "audience",
    "resource", "actor_token", "actor_token_type", "requested_token_type", "task", "client_id",
]  # fmt: skip


def jws(header: dict[str, Any], payload: Any, key: SigningKey) -> str:
    """Signed as given: ``json.dumps`` escapes NUL, lone surrogates and non-ASCII as ``\\u``."""
    signing_input = ".".join(
        b64url_encode(json.dumps(part).encode("ascii")) for part in (header, payload)
    )
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


@pytest.fixture
def errors() -> Iterator[list[logging.LogRecord]]:
    """The server's log records at ERROR and above (the server runs in this process)."""
    with watch_server_log(logging.ERROR) as watch:
        yield watch.records


def test_hostile_exchanges_never_get_a_server_error(
    server_factory: ServerFactory, errors: list[logging.LogRecord]
) -> None:
    server: LiveServer = start(server_factory)
    parent = start_chain(server)
    rnd = random.Random(20261122)  # noqa: S311 - reproducible choices, not secrets
    auth_key, dpop_key = AUTH_KEYS["agent-a"], DPOP_KEYS["agent-a"]
    statuses: dict[int, int] = {}
    nonce = server.nonce()
    for number in range(REQUESTS):
        now = int(server.clock())
        assertion = {
            "iss": "agent-a", "sub": "agent-a", "aud": server.url, "iat": now, "exp": now + 60,
            "jti": secrets.token_urlsafe(12),
        }  # fmt: skip
        assertion_header = {"alg": "ES256", "typ": "JWT", "kid": auth_key.kid}
        proof = {
            "jti": secrets.token_urlsafe(12), "htm": "POST", "htu": server.token_endpoint,
            "iat": now, "ath": access_token_hash(parent), "nonce": nonce,
        }  # fmt: skip
        proof_header: dict[str, Any] = {
            "alg": "ES256", "typ": "dpop+jwt", "jwk": dpop_key.public.to_jwk()
        }  # fmt: skip
        form = {
            "grant_type": TOKEN_EXCHANGE, "subject_token": parent,
            "subject_token_type": ACCESS_TOKEN, "scope": "docs:read",
            "client_assertion_type": JWT_BEARER,
        }  # fmt: skip
        assertion_payload: Any = assertion
        match number % 7:
            case 0:
                assertion[rnd.choice([*assertion, "nbf", "act", "cnf"])] = rnd.choice(WEIRD)
            case 1:
                assertion_header[rnd.choice(["alg", "typ", "kid", "crit", "jwk"])] = rnd.choice(
                    WEIRD
                )
            case 2:
                proof[rnd.choice(list(proof))] = rnd.choice(WEIRD)
            case 3:
                proof_header[rnd.choice(["alg", "typ", "jwk", "kid", "crit"])] = rnd.choice(WEIRD)
            case 4:
                member = rnd.choice(["kty", "crv", "x", "y", "d", "n", "e", "alg"])
                proof_header["jwk"] = {**proof_header["jwk"], member: rnd.choice(WEIRD)}
            case 5:
                form[rnd.choice(FORM_NAMES)] = rnd.choice(FORM_VALUES)
            case 6:
                assertion_payload = rnd.choice(WEIRD)
        form["client_assertion"] = jws(assertion_header, assertion_payload, auth_key)
        response = server.client.post(
            "/token", data=form, headers={"DPoP": jws(proof_header, proof, dpop_key)}
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code in (200, 400, 401), (number, response.text)
        assert response.headers["content-type"] == "application/json"
        if response.status_code != 200:
            assert set(response.json()) == {"error", "error_description"}, response.text
        if response.headers.get("dpop-nonce"):
            nonce = response.headers["dpop-nonce"]
    assert not errors, [record.getMessage() for record in errors]
    # The sweep reached past every check, not only the first one.
    assert statuses.keys() >= {200, 400, 401}, statuses
