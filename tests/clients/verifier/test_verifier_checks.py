"""The verifier's negative corpus: every check, and a request that fails exactly that check.

Real keys, real signatures; a pinned JWKS so no network is involved (rotation, discovery and
status lists over HTTP are in ``test_verifier_live.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from verifier_support import (
    AGENT_KEY,
    AS_KEY,
    ISSUER,
    RESOURCE,
    URL,
    Clock,
    make_proof,
    make_token,
    pinned,
)

from deputize.keys import SigningKey, access_token_hash, sign
from deputize.keys._b64 import b64url_encode
from deputize.verifier import (
    ChainPolicy,
    ChainPolicyError,
    InsufficientScopeError,
    InvalidDPoPProofError,
    InvalidRequestError,
    InvalidTokenError,
    MissingTokenError,
    NonceSource,
    Principal,
    ReplayCache,
    UseDPoPNonceError,
    VerificationError,
    Verifier,
)

OTHER_KEY = SigningKey.generate("ES256")
EDDSA_KEY = SigningKey.generate("EdDSA")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def check(
    verifier: Verifier,
    token: str,
    proof: str | list[str] | None,
    *,
    scheme: str = "DPoP",
    method: str = "GET",
    url: str = URL,
    scopes: tuple[str, ...] = ("docs:read",),
) -> Principal:
    return verifier.verify(
        authorization=f"{scheme} {token}", dpop=proof, method=method, url=url, scopes=scopes
    )


def test_a_good_request_gives_the_principal(clock: Clock) -> None:
    token = make_token(clock)
    principal = check(pinned(clock), token, make_proof(clock, token))
    assert principal.user == "alice"
    assert principal.actor == "analysis-agent"
    assert principal.chain.actors == ("scheduling-agent", "analysis-agent")
    assert principal.scopes == {"docs:read"}
    assert principal.audience == (RESOURCE,)
    assert principal.task == "quarterly-report"
    assert principal.client_id == "analysis-agent"
    assert principal.jkt == AGENT_KEY.kid


# --- the token --------------------------------------------------------------------------------

TokenCase = Callable[[Clock], str]
TOKEN_CASES: list[tuple[str, TokenCase, str]] = [
    ("wrong alg: EdDSA not on the allow-list", lambda c: make_token(c, key=EDDSA_KEY), "alg"),
    ("alg none", lambda c: _unsigned(c), "alg"),
    ("wrong typ: JWT instead of at+jwt", lambda c: make_token(c, typ="JWT"), "typ"),
    ("wrong aud", lambda c: make_token(c, aud="https://mail.example.com"), "audience"),
    ("wrong iss", lambda c: make_token(c, iss="https://evil.example.com"), "issuer"),
    ("expired", lambda c: make_token(c, iat=int(c()) - 900, exp=int(c()) - 600), "expired"),
    ("not yet valid", lambda c: make_token(c, nbf=int(c()) + 600), "not yet valid"),
    ("issued in the future", lambda c: make_token(c, iat=int(c()) + 600), "future"),
    ("no exp", lambda c: make_token(c, exp=None), "exp"),
    ("exp too large for a float", lambda c: make_token(c, exp=10**400), "finite"),
    ("iat too large for a float", lambda c: make_token(c, iat=10**400), "finite"),
    ("nbf too small for a float", lambda c: make_token(c, nbf=-(10**400)), "finite"),
    ("wrong key, same kid", lambda c: make_token(c, key=OTHER_KEY, headers={"kid": AS_KEY.kid}),
     "signature"),
    ("unknown kid", lambda c: make_token(c, key=OTHER_KEY), "unknown key"),
    ("not DPoP-bound", lambda c: make_token(c, cnf=None), "cnf"),
    ("cnf not an object", lambda c: make_token(c, cnf="abc"), "cnf"),
    ("cnf with another confirmation method", lambda c: make_token(
        c, cnf={"x5t#S256": "abc"}), "cnf"),
    ("cnf.jkt not a string", lambda c: make_token(c, cnf={"jkt": 7}), "cnf"),
    ("no jti", lambda c: make_token(c, jti=None), "jti"),
    ("no client_id", lambda c: make_token(c, client_id=None), "client_id"),
    ("actor twice in the chain", lambda c: make_token(
        c, act={"sub": "a", "act": {"sub": "a"}}), "twice"),
    ("malformed act", lambda c: make_token(c, act="scheduling-agent"), "act"),
    ("malformed status claim", lambda c: make_token(c, status={"status_list": {"idx": -1}}),
     "status"),
    ("status list URI with a control character", lambda c: _status_at(c, "\x01"), "issuer"),
    ("status list URI with DEL", lambda c: _status_at(c, "\x7f"), "issuer"),
    ("status list URI with a tab", lambda c: _status_at(c, "\t"), "issuer"),
    ("status list URI with non-ASCII", lambda c: _status_at(c, "é"), "issuer"),
    ("status list URI with a fragment", lambda c: _status_at(c, "#"), "issuer"),
    ("status list outside the issuer", lambda c: make_token(
        c, status={"status_list": {"idx": 1, "uri": "https://evil.example.com/list"}}), "issuer"),
    ("tampered payload", lambda c: _tampered(c), "signature"),
]  # fmt: skip


def _status_at(clock: Clock, strange: str) -> str:
    """A token whose status list URI is the issuer's, but for one strange character."""
    uri = f"{ISSUER}/statuslists/{strange}0"
    return make_token(clock, status={"status_list": {"idx": 1, "uri": uri}})


def _unsigned(clock: Clock) -> str:
    import json

    header = b64url_encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    payload = b64url_encode(json.dumps({"iss": ISSUER}).encode())
    return f"{header}.{payload}."


def _tampered(clock: Clock) -> str:
    genuine = make_token(clock)
    other = make_token(clock, scope="docs:read docs:write")
    return ".".join([genuine.split(".")[0], other.split(".")[1], genuine.split(".")[2]])


@pytest.mark.parametrize(
    ("make", "message"),
    [(make, message) for _, make, message in TOKEN_CASES],
    ids=[f"refuses a token: {name}" for name, _, _ in TOKEN_CASES],
)
def test_token_checks(clock: Clock, make: TokenCase, message: str) -> None:
    verifier = pinned(clock, algorithms=("ES256",))
    token = make(clock)
    with pytest.raises(InvalidTokenError, match=message) as caught:
        check(verifier, token, make_proof(clock, token))
    assert caught.value.error == "invalid_token"
    assert caught.value.status_code == 401


def test_leeway_tolerates_small_skew(clock: Clock) -> None:
    token = make_token(clock, iat=int(clock()) + 20, exp=int(clock()) - 10 + 300)
    check(pinned(clock, leeway=30), token, make_proof(clock, token))
    just_expired = make_token(clock, exp=int(clock()) - 20)
    check(pinned(clock, leeway=30), just_expired, make_proof(clock, just_expired))
    long_expired = make_token(clock, exp=int(clock()) - 40)
    with pytest.raises(InvalidTokenError, match="expired"):
        check(pinned(clock, leeway=30), long_expired, make_proof(clock, long_expired))


# --- the proof --------------------------------------------------------------------------------

ProofCase = Callable[[Clock, str], Any]
PROOF_CASES: list[tuple[str, ProofCase, str]] = [
    ("missing", lambda c, t: None, "exactly one"),
    ("two DPoP headers", lambda c, t: [make_proof(c, t), make_proof(c, t)], "exactly one"),
    ("wrong ath: proof for another token", lambda c, t: make_proof(c, make_token(c)), "ath"),
    ("no ath", lambda c, t: make_proof(c, None), "ath"),
    ("wrong htu", lambda c, t: make_proof(c, t, url=RESOURCE + "/documents/2"), "htu"),
    ("wrong htm", lambda c, t: make_proof(c, t, method="POST"), "htm"),
    ("wrong key: not the token's cnf.jkt", lambda c, t: make_proof(c, t, key=OTHER_KEY), "jkt"),
    ("iat too old", lambda c, t: make_proof(c, t, iat_offset=-120), "iat"),
    ("iat in the future", lambda c, t: make_proof(c, t, iat_offset=120), "iat"),
    ("wrong typ", lambda c, t: sign({"jti": "x", "htm": "GET", "htu": URL, "iat": int(c())},
                                    AGENT_KEY, typ="JWT",
                                    headers={"jwk": AGENT_KEY.public.to_jwk()},
                                    include_kid=False), "typ"),
    ("an access token instead of a proof", lambda c, t: t, "typ"),
    # Any key will do: the iat is read before the proof key is compared with cnf.jkt.
    ("iat too large for a float", lambda c, t: _any_key_proof(t, iat=10**400), "numeric iat"),
    ("iat too small for a float", lambda c, t: _any_key_proof(t, iat=-(10**400)), "numeric iat"),
    ("an ath that is not even ASCII", lambda c, t: sign(
        {"jti": "x", "htm": "GET", "htu": URL, "iat": int(c()), "ath": "é" * 43}, AGENT_KEY,
        typ="dpop+jwt", headers={"jwk": AGENT_KEY.public.to_jwk()}, include_kid=False), "ath"),
]  # fmt: skip


def _any_key_proof(token: str, *, iat: object) -> str:
    claims = {"jti": "x", "htm": "GET", "htu": URL, "iat": iat, "ath": access_token_hash(token)}
    jwk = OTHER_KEY.public.to_jwk()
    return sign(claims, OTHER_KEY, typ="dpop+jwt", headers={"jwk": jwk}, include_kid=False)


@pytest.mark.parametrize(
    ("make", "message"),
    [(make, message) for _, make, message in PROOF_CASES],
    ids=[f"refuses a proof: {name}" for name, _, _ in PROOF_CASES],
)
def test_proof_checks(clock: Clock, make: ProofCase, message: str) -> None:
    token = make_token(clock)
    with pytest.raises(InvalidDPoPProofError, match=message) as caught:
        check(pinned(clock), token, make(clock, token))
    assert caught.value.error == "invalid_dpop_proof"
    assert caught.value.status_code == 401


def test_a_replayed_proof_is_refused(clock: Clock) -> None:
    verifier = pinned(clock)
    token = make_token(clock)
    proof = make_proof(clock, token)
    check(verifier, token, proof)
    with pytest.raises(InvalidDPoPProofError, match="already been used"):
        check(verifier, token, proof)


def test_a_refused_request_does_not_use_up_its_proof(clock: Clock) -> None:
    verifier = pinned(clock)
    token = make_token(clock)
    proof = make_proof(clock, token)
    with pytest.raises(InsufficientScopeError):
        check(verifier, token, proof, scopes=("docs:write",))
    check(verifier, token, proof)


def test_replay_cache_is_bounded_and_fails_closed_when_full(clock: Clock) -> None:
    verifier = pinned(clock, replay=ReplayCache(max_entries=2))
    token = make_token(clock)
    for _ in range(2):
        check(verifier, token, make_proof(clock, token))
    with pytest.raises(InvalidDPoPProofError, match="too many recent DPoP proofs"):
        check(verifier, token, make_proof(clock, token))
    assert len(verifier.replay) == 2
    clock.now += 200  # the remembered proofs are past their window: room again
    fresh = make_token(clock)
    check(verifier, fresh, make_proof(clock, fresh))
    assert len(verifier.replay) == 1


def test_htu_ignores_query_and_normalises(clock: Clock) -> None:
    token = make_token(clock)
    proof = make_proof(clock, token, url="https://DOCS.example.com:443/documents/1")
    check(pinned(clock), token, proof, url=URL + "?format=pdf")


def test_resource_server_nonce(clock: Clock) -> None:
    nonces = NonceSource(lifetime=60)
    verifier = pinned(clock, nonces=nonces)
    token = make_token(clock)
    with pytest.raises(UseDPoPNonceError) as caught:
        check(verifier, token, make_proof(clock, token))
    nonce = caught.value.nonce
    assert caught.value.headers()["DPoP-Nonce"] == nonce
    assert 'error="use_dpop_nonce"' in caught.value.headers()["WWW-Authenticate"]
    with pytest.raises(UseDPoPNonceError):
        check(verifier, token, make_proof(clock, token, nonce="made-up"))
    check(verifier, token, make_proof(clock, token, nonce=nonce))
    clock.now += 200  # three windows on: the nonce has expired
    late = make_token(clock)
    with pytest.raises(UseDPoPNonceError):
        check(verifier, late, make_proof(clock, late, nonce=nonce))


# --- the Authorization header -----------------------------------------------------------------


def test_no_token_is_a_bare_challenge(clock: Clock) -> None:
    with pytest.raises(MissingTokenError) as caught:
        pinned(clock).verify(authorization=None, dpop=None, method="GET", url=URL)
    assert caught.value.headers()["WWW-Authenticate"] == "DPoP"


def test_a_bearer_token_is_refused(clock: Clock) -> None:
    token = make_token(clock)
    with pytest.raises(InvalidTokenError, match="DPoP-bound tokens only"):
        check(pinned(clock), token, make_proof(clock, token), scheme="Bearer")


def test_two_authorization_headers_are_a_bad_request(clock: Clock) -> None:
    token = make_token(clock)
    with pytest.raises(InvalidRequestError) as caught:
        pinned(clock).verify(
            authorization=[f"DPoP {token}", f"DPoP {token}"],
            dpop=make_proof(clock, token), method="GET", url=URL,
        )  # fmt: skip
    assert caught.value.status_code == 400


# --- scopes and the chain policy --------------------------------------------------------------


def test_missing_scope_is_insufficient_scope(clock: Clock) -> None:
    token = make_token(clock)
    with pytest.raises(InsufficientScopeError) as caught:
        check(pinned(clock), token, make_proof(clock, token), scopes=("docs:read", "docs:write"))
    assert caught.value.status_code == 403
    challenge = caught.value.headers()["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="docs:read docs:write"' in challenge


POLICY_CASES: list[tuple[str, ChainPolicy, dict[str, Any]]] = [
    ("depth over policy", ChainPolicy(max_depth=1), {}),
    ("blocked actor at the root end of the chain", ChainPolicy(blocked_actors={"scheduling-agent"}),
     {}),
    ("blocked actor acting now", ChainPolicy(blocked_actors={"analysis-agent"}), {}),
    ("actor outside the allowed list", ChainPolicy(allowed_actors={"analysis-agent"}), {}),
    ("a client's own token where a person is required", ChainPolicy(require_human_root=True),
     {"sub": "analysis-agent", "act": None}),
    ("a blocked client with its own token", ChainPolicy(blocked_actors={"analysis-agent"}),
     {"sub": "analysis-agent", "act": None}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "overrides"),
    [(policy, overrides) for _, policy, overrides in POLICY_CASES],
    ids=[f"refuses {name}" for name, _, _ in POLICY_CASES],
)
def test_chain_policy(clock: Clock, policy: ChainPolicy, overrides: dict[str, Any]) -> None:
    token = make_token(clock, **overrides)
    with pytest.raises(ChainPolicyError) as caught:
        check(pinned(clock, policy=policy), token, make_proof(clock, token))
    assert caught.value.error == "insufficient_scope"


def test_chain_policy_lets_a_conforming_chain_through(clock: Clock) -> None:
    policy = ChainPolicy(
        max_depth=2,
        allowed_actors={"scheduling-agent", "analysis-agent"},
        blocked_actors={"payments-agent"},
        require_human_root=True,
    )
    token = make_token(clock)
    assert check(pinned(clock, policy=policy), token, make_proof(clock, token)).user == "alice"


def test_every_error_has_a_challenge_without_the_token(clock: Clock) -> None:
    token = make_token(clock, aud="https://mail.example.com")
    with pytest.raises(VerificationError) as caught:
        check(pinned(clock), token, make_proof(clock, token))
    challenge = caught.value.headers(algorithms=("ES256",))["WWW-Authenticate"]
    assert challenge.startswith('DPoP error="invalid_token", error_description="')
    assert 'algs="ES256"' in challenge
    assert token not in challenge


@pytest.mark.parametrize("alg", ['a"b', "\u20ac256", "A" * 60], ids=[
    "a quote", "non-ASCII", "long (cut)"])  # fmt: skip
def test_a_refusal_quoting_the_proof_keeps_to_rfc_6749s_characters(clock: Clock, alg: str) -> None:
    """The refusal names the proof's ``alg``.  Its description goes into the JSON body the
    adapters send as it is; only the challenge header used to be cleaned, so the body carried
    the quote, the non-ASCII text and the "…" of a cut value."""
    token = make_token(clock)
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": AGENT_KEY.public_jwk()}
    claims = {"jti": "j", "htm": "GET", "htu": URL, "iat": int(clock()),
              "ath": access_token_hash(token)}  # fmt: skip
    segments = [b64url_encode(json.dumps(part).encode()) for part in (header, claims)]
    proof = ".".join([*segments, "AAAA"])
    with pytest.raises(VerificationError) as caught:
        check(pinned(clock), token, proof)
    description = caught.value.description
    assert "alg" in description
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description), description
    assert description in caught.value.headers()["WWW-Authenticate"]
