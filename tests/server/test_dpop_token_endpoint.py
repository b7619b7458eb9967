"""RFC 9449 DPoP at the token endpoint over real HTTP: nonces (§8), proof checks (§4.3),
replay (§11.1) and binding the token to the proof key (§5, §6.1).

Time moves by the server's clock (``LiveServer.clock.offset``), never by sleeping.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from deputize.keys import KeySet, SigningKey, create_proof, parse, thumbprint
from deputize.server.settings import Settings

from support import JWT_BEARER, LiveServer, ServerFactory, assert_error


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def craft(
    server: LiveServer,
    key: SigningKey,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop_header: Sequence[str] = (),
    drop_claims: Sequence[str] = (),
    signer: SigningKey | None = None,
    nonce: str | None = "auto",
) -> str:
    """A DPoP proof for the token endpoint with the given header/claims changed."""
    body: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": "POST",
        "htu": server.token_endpoint,
        "iat": int(server.clock()),
    }
    if nonce is not None:
        body["nonce"] = server.nonce() if nonce == "auto" else nonce
    body.update(claims or {})
    head: dict[str, Any] = {"alg": key.alg, "typ": "dpop+jwt", "jwk": key.public.to_jwk()}
    head.update(header or {})
    for name in drop_header:
        del head[name]
    for name in drop_claims:
        del body[name]
    signing_input = f"{segment(head)}.{segment(body)}"
    signature = (signer or key).sign(signing_input.encode())
    return f"{signing_input}.{b64url(signature)}"


def unsigned(server: LiveServer, key: SigningKey, alg: str) -> str:
    """A proof with ``alg`` none or an HMAC keyed with the public JWK (algorithm confusion)."""
    head = {"alg": alg, "typ": "dpop+jwt", "jwk": key.public.to_jwk()}
    body = {
        "jti": secrets.token_urlsafe(16),
        "htm": "POST",
        "htu": server.token_endpoint,
        "iat": int(server.clock()),
        "nonce": server.nonce(),
    }
    signing_input = f"{segment(head)}.{segment(body)}"
    if alg == "none":
        return signing_input + "."
    secret = json.dumps(key.public.to_jwk()).encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def post(
    server: LiveServer,
    proofs: Sequence[str | bytes],
    *,
    form: dict[str, str] | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """A client_credentials request from svc-basic with the given DPoP header values."""
    headers = [(name.encode(), value.encode()) for name, value in server.basic("svc-basic").items()]
    headers += [
        (b"DPoP", proof if isinstance(proof, bytes) else proof.encode()) for proof in proofs
    ]
    return (client or server.client).post(
        "/token", data={"grant_type": "client_credentials", **(form or {})}, headers=headers
    )


def token_claims(server: LiveServer, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    keys = KeySet.from_jwks(server.client.get("/jwks").json())
    parsed = parse(response.json()["access_token"], algorithms=["ES256"], typ="at+jwt")
    key = keys.find(parsed)
    assert key is not None
    return dict(parsed.verify(key))


def mid_window(server: LiveServer) -> None:
    """Move the server clock to the middle of a nonce window, so a test's own run time can
    never carry it across a window boundary."""
    lifetime = server.settings.dpop_nonce_lifetime
    server.clock.offset = lifetime / 2 - time.time() % lifetime


# --- nonces (§8) ----------------------------------------------------------------------------


def test_nonce_challenge_then_retry(server: LiveServer) -> None:
    key = SigningKey.generate()
    challenged = post(server, [server.proof(key, nonce=None)])
    body = assert_error(challenged, 400, "use_dpop_nonce")
    assert body["error_description"]
    nonce = challenged.headers["dpop-nonce"]
    assert nonce

    retried = post(server, [server.proof(key, nonce=nonce)])
    assert retried.status_code == 200, retried.text
    assert retried.json()["token_type"] == "DPoP"
    assert retried.headers["dpop-nonce"]  # §8.2: a success may carry the next nonce too


def flip_last(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


@pytest.mark.parametrize(
    "forge",
    [
        lambda real: b64url(secrets.token_bytes(24)),
        lambda real: b64url(base64.urlsafe_b64decode(real + "==")[:8] + bytes(16)),
        lambda real: flip_last(real),
        lambda real: real + "A",
        lambda real: real[:-2],
        lambda real: "",
        lambda real: "not a nonce!",
        lambda real: b64url(
            (int.from_bytes(base64.urlsafe_b64decode(real + "==")[:8], "big") + 5).to_bytes(
                8, "big"
            )
            + base64.urlsafe_b64decode(real + "==")[8:]
        ),
    ],
    ids=[
        "refuses random bytes of the right length",
        "refuses a real window with a zeroed MAC",
        "refuses a real nonce with its last character changed",
        "refuses a real nonce with a character appended",
        "refuses a truncated real nonce",
        "refuses an empty nonce",
        "refuses a nonce that is not base64url",
        "refuses a real MAC moved to another window",
    ],
)
def test_refuses_nonces_it_did_not_issue(server: LiveServer, forge: Callable[[str], str]) -> None:
    key = SigningKey.generate()
    mid_window(server)
    real = server.nonce()
    response = post(server, [server.proof(key, nonce=forge(real))])
    assert_error(response, 400, "use_dpop_nonce")
    assert response.headers["dpop-nonce"] == real  # the clock has not moved: same window


@pytest.mark.parametrize(
    ("windows", "accepted"),
    [(1, True), (-1, True), (2, False), (-2, False), (5, False)],
    ids=[
        "accepts a nonce from the previous window",
        "accepts a nonce from the next window (an instance slightly ahead)",
        "refuses a nonce two windows old",
        "refuses a nonce from two windows ahead",
        "refuses a nonce from long ago",
    ],
)
def test_nonce_lifetime_follows_the_server_clock(
    server: LiveServer, windows: int, accepted: bool
) -> None:
    key = SigningKey.generate()
    mid_window(server)
    nonce = server.nonce()
    server.clock.offset += windows * server.settings.dpop_nonce_lifetime
    response = post(server, [server.proof(key, nonce=nonce)])
    if accepted:
        assert response.status_code == 200, response.text
        return
    assert_error(response, 400, "use_dpop_nonce")
    fresh = response.headers["dpop-nonce"]
    assert fresh != nonce
    retried = post(server, [server.proof(key, nonce=fresh)])
    assert retried.status_code == 200, retried.text


def test_nonce_is_shared_by_instances_on_one_database(server_factory: ServerFactory) -> None:
    first, second = server_factory.start(), server_factory.start()
    key = SigningKey.generate()
    response = post(second, [second.proof(key, nonce=first.nonce())])
    assert response.status_code == 200, response.text


# --- replay (§11.1) -------------------------------------------------------------------------


def test_replayed_proof_is_refused(server: LiveServer) -> None:
    proof = server.proof(SigningKey.generate())
    first = post(server, [proof])
    assert first.status_code == 200, first.text
    body = assert_error(post(server, [proof]), 400, "invalid_dpop_proof")
    assert "already been used" in body["error_description"]


def test_same_jti_under_another_key_is_a_different_proof(server: LiveServer) -> None:
    jti = secrets.token_urlsafe(16)
    one, two = SigningKey.generate(), SigningKey.generate()
    assert post(server, [craft(server, one, claims={"jti": jti})]).status_code == 200
    assert post(server, [craft(server, two, claims={"jti": jti})]).status_code == 200
    again = post(server, [craft(server, one, claims={"jti": jti})])
    assert_error(again, 400, "invalid_dpop_proof")


def test_replay_across_instances_is_refused(server_factory: ServerFactory) -> None:
    """Two instances behind one public URL, sharing one database, as a load balancer sees them."""
    first = server_factory.start()
    ports: list[int] = []

    def same_issuer(settings: Settings) -> Settings:
        ports.append(int(settings.issuer.rsplit(":", 1)[1]))
        return dataclasses.replace(settings, issuer=first.url)

    server_factory.start(configure=same_issuer)
    key = SigningKey.generate()
    # Requests wait in the second instance's listen backlog until it is up.
    with httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30) as second:
        fresh = post(first, [first.proof(key)], client=second)
        assert fresh.status_code == 200, fresh.text  # the second instance takes first's proofs

        proof = first.proof(key)
        assert post(first, [proof]).status_code == 200
        replayed = post(first, [proof], client=second)
        body = assert_error(replayed, 400, "invalid_dpop_proof")
        assert "already been used" in body["error_description"]


def test_concurrent_replay_succeeds_exactly_once(server: LiveServer) -> None:
    proof = server.proof(SigningKey.generate())
    attempts = 6
    barrier = threading.Barrier(attempts)

    def attempt(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            client.get("/jwks")  # connect before the race starts
            barrier.wait(timeout=30)
            return post(server, [proof], client=client)

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        responses = list(pool.map(attempt, range(attempts)))
    accepted = [r for r in responses if r.status_code == 200]
    assert len(accepted) == 1, [r.text for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_error(response, 400, "invalid_dpop_proof")


def test_refused_request_still_uses_up_the_proof(server: LiveServer) -> None:
    proof = server.proof(SigningKey.generate())
    assert_error(post(server, [proof], form={"scope": "admin"}), 400, "invalid_scope")
    assert_error(post(server, [proof]), 400, "invalid_dpop_proof")


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"scope": "admin"}, "invalid_scope"),
        ({"resource": "https://evil.example"}, "invalid_target"),
    ],
    ids=[
        "an invalid scope still uses up the client assertion",
        "an invalid resource still uses up the client assertion",
    ],
)
def test_refused_request_still_uses_up_the_assertion(
    server: LiveServer, form: dict[str, str], error: str
) -> None:
    key = SigningKey.generate()
    assertion = {"client_assertion_type": JWT_BEARER, "client_assertion": server.assertion()}
    data = {"grant_type": "client_credentials", **assertion}
    refused = server.client.post("/token", data=data | form, headers={"DPoP": server.proof(key)})
    assert_error(refused, 400, error)
    again = server.client.post("/token", data=data, headers={"DPoP": server.proof(key)})
    body = assert_error(again, 401, "invalid_client")
    assert "already been used" in body["error_description"]


def test_nonce_challenge_consumes_neither_assertion_nor_proof(server: LiveServer) -> None:
    """The nonce challenge is answered before client authentication: the client retries with
    the same assertion, and a refused proof's jti was not recorded."""
    key = SigningKey.generate()
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": server.assertion(),
    }
    challenged = server.client.post(
        "/token", data=data, headers={"DPoP": server.proof(key, nonce=None)}
    )
    assert_error(challenged, 400, "use_dpop_nonce")
    nonce = challenged.headers["dpop-nonce"]
    retry = server.client.post(
        "/token", data=data, headers={"DPoP": server.proof(key, nonce=nonce)}
    )
    assert retry.status_code == 200, retry.text
    # ... and the assertion is used up now that it was accepted.
    again = server.client.post(
        "/token", data=data, headers={"DPoP": server.proof(key, nonce=nonce)}
    )
    assert_error(again, 401, "invalid_client")


# --- the §4.3 checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "accepted"),
    [(-90, False), (90, False), (-3600, False), (-30, True), (30, True)],
    ids=[
        "refuses an iat older than proof_max_age",
        "refuses an iat further ahead than proof_max_age",
        "refuses an iat from an hour ago",
        "accepts an iat half a minute old",
        "accepts an iat half a minute ahead",
    ],
)
def test_iat_window(server: LiveServer, seconds: int, accepted: bool) -> None:
    key = SigningKey.generate()
    proof = server.proof(key, now=server.clock() + seconds)
    response = post(server, [proof])
    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 400, "invalid_dpop_proof")


@pytest.mark.parametrize(
    "method",
    ["GET", "post", "PUT", "POST "],
    ids=[
        "refuses htm GET",
        "compares htm case-sensitively",
        "refuses htm PUT",
        "does not trim htm",
    ],
)
def test_wrong_htm(server: LiveServer, method: str) -> None:
    proof = craft(server, SigningKey.generate(), claims={"htm": method})
    assert_error(post(server, [proof]), 400, "invalid_dpop_proof")


def port_of(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    "htu",
    [
        lambda s: s.url + "/introspect",
        lambda s: s.url + "/token/",
        lambda s: s.url,
        lambda s: s.url + "/",
        lambda s: f"http://127.0.0.1:{port_of(s) + 1}/token",
        lambda s: f"http://localhost:{port_of(s)}/token",
        lambda s: f"http://127.0.0.2:{port_of(s)}/token",
        lambda s: f"https://127.0.0.1:{port_of(s)}/token",
        lambda s: f"http://user@127.0.0.1:{port_of(s)}/token",
        lambda s: "/token",
        lambda s: f"127.0.0.1:{port_of(s)}/token",
        lambda s: f"http://127.0.0.1:{port_of(s)}/TOKEN",
        lambda s: f"http://127.0.0.1:{port_of(s)}/%2Ftoken",
        lambda s: "http://127.0.0.1:99999/token",
        lambda s: "http://[::1/token",
        lambda s: "",
    ],
    ids=[
        "refuses another path",
        "refuses a trailing slash",
        "refuses the bare issuer",
        "refuses the issuer root",
        "refuses another port",
        "refuses another host name for the same address",
        "refuses another host",
        "refuses another scheme",
        "refuses user information",
        "refuses a relative URI",
        "refuses a URI without a scheme",
        "compares the path case-sensitively",
        "does not decode an encoded slash",
        "refuses an out-of-range port",
        "refuses a broken IPv6 literal",
        "refuses an empty htu",
    ],
)
def test_wrong_htu(server: LiveServer, htu: Callable[[LiveServer], str]) -> None:
    proof = craft(server, SigningKey.generate(), claims={"htu": htu(server)})
    assert_error(post(server, [proof]), 400, "invalid_dpop_proof")


@pytest.mark.parametrize(
    "htu",
    [
        lambda s: s.token_endpoint + "?a=b&c=d",
        lambda s: s.token_endpoint + "#fragment",
        lambda s: s.token_endpoint.replace("http://", "HTTP://"),
        lambda s: s.token_endpoint.replace("/token", "/%74oken"),
        lambda s: s.token_endpoint.replace("/token", "/x/../token"),
        lambda s: s.token_endpoint.replace("/token", "/./token"),
    ],
    ids=[
        "ignores a query",
        "ignores a fragment",
        "compares the scheme case-insensitively",
        "decodes percent-encoded unreserved characters",
        "removes dot segments",
        "removes a single-dot segment",
    ],
)
def test_htu_normalisation(server: LiveServer, htu: Callable[[LiveServer], str]) -> None:
    proof = craft(server, SigningKey.generate(), claims={"htu": htu(server)})
    response = post(server, [proof])
    assert response.status_code == 200, response.text


def test_htu_host_is_case_insensitive(server_factory: ServerFactory) -> None:
    def named_host(settings: Settings) -> Settings:
        return dataclasses.replace(
            settings, issuer=settings.issuer.replace("127.0.0.1", "localhost")
        )

    server = server_factory.start(configure=named_host)
    assert server.url.startswith("http://localhost:")
    key = SigningKey.generate()
    upper = craft(
        server, key, claims={"htu": server.token_endpoint.replace("localhost", "LocalHost")}
    )
    response = post(server, [upper])
    assert response.status_code == 200, response.text
    # Hosts are compared as names: the address the name resolves to is not the same host.
    by_address = craft(
        server, key, claims={"htu": server.token_endpoint.replace("localhost", "127.0.0.1")}
    )
    assert_error(post(server, [by_address]), 400, "invalid_dpop_proof")


def private_key_with_d() -> tuple[SigningKey, dict[str, str]]:
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey(private, "ES256")
    d = b64url(private.private_numbers().private_value.to_bytes(32, "big"))
    return key, key.public.to_jwk() | {"d": d}


OTHER = SigningKey.generate()


@pytest.mark.parametrize(
    "make_proof",
    [
        lambda s, k: (lambda pair: craft(s, pair[0], header={"jwk": pair[1]}))(
            private_key_with_d()
        ),
        lambda s, k: craft(s, k, signer=OTHER),
        lambda s, k: craft(s, k, header={"jwk": OTHER.public.to_jwk()}),
        lambda s, k: craft(s, k, drop_header=["jwk"]),
        lambda s, k: craft(s, k, drop_header=["jwk"], header={"kid": k.kid}),
        lambda s, k: craft(s, k, header={"jwk": "not an object"}),
        lambda s, k: craft(s, k, header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        lambda s, k: craft(s, k, header={"typ": "JWT"}),
        lambda s, k: craft(s, k, drop_header=["typ"]),
        lambda s, k: craft(s, k, header={"typ": "application/dpop+jwt"}),
        lambda s, k: craft(s, k, header={"typ": "DPoP+JWT"}),
        lambda s, k: craft(s, k, header={"typ": "at+jwt"}),
        lambda s, k: unsigned(s, k, "none"),
        lambda s, k: unsigned(s, k, "HS256"),
        lambda s, k: craft(s, k, header={"alg": "ES384"}),
        lambda s, k: craft(s, k, header={"alg": "RS256"}),
        lambda s, k: craft(s, k, header={"crit": ["htu"]}),
        lambda s, k: craft(s, k, drop_claims=["jti"]),
        lambda s, k: craft(s, k, claims={"jti": ""}),
        lambda s, k: craft(s, k, claims={"jti": "j" * 257}),
        lambda s, k: craft(s, k, claims={"jti": 12345}),
        lambda s, k: craft(s, k, claims={"jti": "j\x00"}),
        lambda s, k: craft(s, k, claims={"jti": "j\ud800"}),
        lambda s, k: craft(s, k, header={"pad": "\x00"}),
        lambda s, k: craft(s, k, drop_claims=["htm"]),
        lambda s, k: craft(s, k, drop_claims=["htu"]),
        lambda s, k: craft(s, k, claims={"htu": ["http://127.0.0.1/token"]}),
        lambda s, k: craft(s, k, drop_claims=["iat"]),
        lambda s, k: craft(s, k, claims={"iat": str(int(s.clock()))}),
        lambda s, k: craft(s, k, claims={"iat": float("nan")}),
        lambda s, k: craft(s, k, claims={"iat": float("inf")}),
        lambda s, k: craft(s, k, claims={"iat": 10**400}),
        lambda s, k: craft(s, k, claims={"iat": -(10**400)}),
        lambda s, k: craft(s, k, claims={"iat": True}),
        lambda s, k: craft(s, k, claims={"nonce": 12345}),
        lambda s, k: craft(s, k, nonce="n" * 513),
        lambda s, k: craft(s, k, claims={"pad": "x" * 9000}),
        lambda s, k: craft(s, k)[:-4] + "AAAA",
    ],
    ids=[
        "refuses private key members in the jwk header",
        "refuses a proof signed by a key other than its jwk",
        "refuses a jwk header swapped for another key",
        "refuses a proof without a jwk header",
        "refuses a kid in place of the jwk header",
        "refuses a jwk header that is not an object",
        "refuses a symmetric jwk",
        "refuses typ JWT",
        "refuses a proof without typ",
        "refuses typ in its long media type form",
        "refuses typ in other letter case",
        "refuses an access token typ",
        "refuses alg none",
        "refuses HS256 keyed with the public JWK",
        "refuses an alg that does not fit the jwk",
        "refuses an RSA alg with an EC jwk",
        "refuses critical header parameters",
        "refuses a proof without jti",
        "refuses an empty jti",
        "refuses a jti over 256 characters",
        "refuses a jti that is not a string",
        "refuses a NUL in the jti (PostgreSQL cannot store it)",
        "refuses a lone surrogate in the jti (no UTF-8 can hold it)",
        "refuses a NUL in the header",
        "refuses a proof without htm",
        "refuses a proof without htu",
        "refuses an htu that is not a string",
        "refuses a proof without iat",
        "refuses an iat that is a string",
        "refuses a NaN iat",
        "refuses an infinite iat",
        "refuses an iat too large for a float (no 500)",
        "refuses an iat too small for a float (no 500)",
        "refuses an iat that is a boolean",
        "refuses a nonce that is not a string",
        "refuses a nonce over 512 characters",
        "refuses a proof larger than 8 KiB",
        "refuses a corrupted signature",
    ],
)
def test_malformed_proofs(
    server: LiveServer, make_proof: Callable[[LiveServer, SigningKey], str]
) -> None:
    proof = make_proof(server, SigningKey.generate())
    assert_error(post(server, [proof]), 400, "invalid_dpop_proof")


@pytest.mark.parametrize(
    "headers",
    [
        lambda s, k: [s.proof(k), s.proof(k)],
        lambda s, k: [s.proof(k), "garbage"],
        lambda s, k: [s.proof(k) + "," + s.proof(k)],
        lambda s, k: [s.proof(k) + ".x"],
        lambda s, k: [""],
        lambda s, k: ["garbage"],
        lambda s, k: ["a.b.c"],
        lambda s, k: [b"\xe9\xe9.\xe9\xe9.\xe9\xe9"],
    ],
    ids=[
        "refuses two DPoP headers",
        "refuses a second DPoP header even if it is garbage",
        "refuses two proofs joined in one header",
        "refuses a proof with a fourth segment",
        "refuses an empty DPoP header",
        "refuses a DPoP header that is not a JWT",
        "refuses three segments of garbage",
        "refuses non-ASCII bytes in the DPoP header",
    ],
)
def test_bad_dpop_headers(
    server: LiveServer, headers: Callable[[LiveServer, SigningKey], list[str | bytes]]
) -> None:
    response = post(server, headers(server, SigningKey.generate()))
    assert_error(response, 400, "invalid_dpop_proof")
    assert response.headers["dpop-nonce"]


def test_dpop_bound_client_must_send_a_proof(server: LiveServer) -> None:
    response = post(server, [])
    body = assert_error(response, 400, "invalid_request")
    assert "DPoP" in body["error_description"]
    assert response.headers["dpop-nonce"]  # any refusal hands out the current nonce


def test_bearer_client_gets_a_bound_token_when_it_sends_a_proof(server: LiveServer) -> None:
    key = SigningKey.generate()
    response = server.token(client_id="svc-bearer", dpop_key=key)
    claims = token_claims(server, response)
    assert response.json()["token_type"] == "DPoP"
    assert claims["cnf"] == {"jkt": key.kid}


# --- nonces switched off --------------------------------------------------------------------


def test_without_required_nonce(server_factory: ServerFactory) -> None:
    server = server_factory.start({"dpop": {"require_nonce": False}})
    key = SigningKey.generate()
    response = post(server, [server.proof(key, nonce=None)])
    assert response.status_code == 200, response.text
    assert "dpop-nonce" not in response.headers
    assert token_claims(server, response)["cnf"] == {"jkt": key.kid}

    refused = post(server, [server.proof(key, nonce=None)], form={"scope": "admin"})
    assert_error(refused, 400, "invalid_scope")
    assert "dpop-nonce" not in refused.headers
    # Replay protection does not depend on nonces.
    proof = server.proof(key, nonce=None)
    assert post(server, [proof]).status_code == 200
    assert_error(post(server, [proof]), 400, "invalid_dpop_proof")


# --- binding (§5, §6.1) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "alg",
    ["ES256", "ES384", "EdDSA", "RS256", "PS256"],
    ids=[
        "binds the token to an ES256 proof key",
        "binds the token to an ES384 proof key",
        "binds the token to an Ed25519 proof key",
        "binds the token to an RS256 proof key",
        "binds the token to a PS256 proof key",
    ],
)
def test_token_is_bound_to_the_proof_key(server: LiveServer, alg: str) -> None:
    key = SigningKey.generate(alg)
    response = post(server, [server.proof(key)])
    claims = token_claims(server, response)
    assert response.json()["token_type"] == "DPoP"
    assert claims["cnf"] == {"jkt": thumbprint(key.public.to_jwk())}
    assert claims["cnf"] == {"jkt": key.kid}


def test_fractional_iat_is_a_numeric_date(server: LiveServer) -> None:
    # RFC 7519 §2: NumericDate may be non-integer.
    key = SigningKey.generate()
    proof = craft(server, key, claims={"iat": server.clock() - 0.5})
    assert token_claims(server, post(server, [proof]))["cnf"] == {"jkt": key.kid}


def test_proof_made_by_the_library_helper(server: LiveServer) -> None:
    key = SigningKey.generate()
    proof = create_proof(key, "POST", server.token_endpoint + "?ignored=1", nonce=server.nonce())
    assert token_claims(server, post(server, [proof]))["cnf"] == {"jkt": key.kid}
