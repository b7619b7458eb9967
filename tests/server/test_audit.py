"""The audit trail: every decision recorded with the state change, and tampering detected."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from delegation_support import (
    ACCESS_TOKEN,
    AUTH_KEYS,
    DOCS,
    DPOP_KEYS,
    JWT,
    TOKEN_EXCHANGE,
    claims_of,
    exchange,
    introspect,
    own_token,
    start,
    start_chain,
    user_token,
)
from sqlalchemy import text

from deputize.keys import SigningKey
from deputize.server import cli
from deputize.server.settings import async_database_url
from deputize.server.storage.database import Database

from support import JWT_BEARER, SECRETS, LiveServer, ServerFactory


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


@pytest.fixture
def config(server: LiveServer, tmp_path: Path) -> Path:
    return _config_for(server, tmp_path)


def _config_for(server: LiveServer, folder: Path) -> Path:
    """A config file for the CLI, pointing at the live server's database."""
    path = folder / "deputize.yaml"
    path.write_text(
        yaml.safe_dump({"issuer": server.url, "database": {"url": server.settings.database_url}})
    )
    return path


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def _audit(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> list[dict[str, Any]]:
    code, out = _cli(capsys, "audit", "--config", str(config), "--json", *args)
    assert code == 0
    entries: list[dict[str, Any]] = json.loads(out)
    return entries


def _sql(server: LiveServer, statement: str) -> None:
    async def run() -> None:
        db = Database(async_database_url(server.settings.database_url))
        try:
            async with db.begin() as conn:
                await conn.execute(text(statement))
        finally:
            await db.dispose()

    asyncio.run(run())


def test_issued_and_refused_exchanges_are_audited(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = start_chain(server, task="t-42", resource=DOCS)
    refused = exchange(server, "agent-b", user_token(), subject_type=JWT)
    assert refused.status_code == 400
    issued = _audit(capsys, config, "--user", "alice")
    (entry,) = [e for e in issued if e["event"] == "token_issued"]
    assert entry["actors"] == ["agent-a"]
    assert entry["task"] == "t-42"
    assert entry["client_id"] == "agent-a"
    assert entry["jkt"] and entry["jti"]
    assert token not in json.dumps(issued)  # identifiers only, never a token
    refusals = [
        e for e in _audit(capsys, config, "--actor", "agent-b") if e["event"] == "exchange_refused"
    ]
    assert refusals and "authorised" in refusals[0]["reason"]
    assert [e["task"] for e in _audit(capsys, config, "--task", "t-42")] == ["t-42"]


def test_a_claimed_client_id_too_long_to_store_is_audited_cut(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused request's client_id is only claimed, and may be any length; the audit column
    holds 128 characters.  The refusal is still a 401 and still audited (it was a 500 on
    PostgreSQL), with the id's start, marked as cut."""
    claimed = "c" * 300
    response = server.client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": claimed, "client_secret": "s" * 40},
    )
    assert response.status_code == 401
    (entry,) = [e for e in _audit(capsys, config) if e["event"] == "client_auth_failed"]
    assert entry["client_id"] == "c" * 127 + "…"
    assert _cli(capsys, "audit", "--config", str(config), "--verify")[0] == 0


def test_revoke_by_task_from_the_cli(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = start_chain(server, task="t-7")
    assert introspect(server, token)["active"] is True
    code, out = _cli(capsys, "revoke", "--config", str(config), "--task", "t-7")
    assert code == 0 and "Revoked 1 live token(s)" in out
    assert introspect(server, token) == {"active": False}
    (entry,) = [e for e in _audit(capsys, config) if e["event"] == "token_revoked"]
    assert entry["details"] == {"by": "cli", "revoked": 1, "handoffs_closed": 0, "task": "t-7"}


def test_verify_passes_on_an_untouched_trail(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(5):
        start_chain(server)
    code, out = _cli(capsys, "audit", "--config", str(config), "--verify")
    assert code == 0, out
    assert "intact" in out


@pytest.mark.parametrize(
    ("tamper", "finding"),
    [
        ("UPDATE audit_log SET subject = 'mallory' WHERE seq = 1", "edited"),
        ("DELETE FROM audit_log WHERE seq = 1", "deleted or reordered"),
        (
            "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)",
            "newest entries missing",
        ),
        ("UPDATE audit_log SET at = at + 1 WHERE seq = 1", "edited"),
    ],
    ids=[
        "detects an edited entry",
        "detects a deleted entry",
        "detects the newest entries cut off",
        "detects a changed timestamp",
    ],
)
def test_verify_detects_tampering(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str], tamper: str, finding: str
) -> None:
    for _ in range(40):  # enough entries that every one of the 16 chains likely has several
        start_chain(server)
    _sql(server, tamper)
    code, out = _cli(capsys, "audit", "--config", str(config), "--verify")
    assert code == 1
    assert "TAMPERED" in out and finding in out


def test_verify_detects_reordering(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(40):
        start_chain(server)
    # Swap the first two entries of one chain (both keep valid hashes of their own).
    _sql(
        server,
        "UPDATE audit_log SET seq = -seq WHERE seq IN (1, 2) AND chain = "
        "(SELECT chain FROM audit_heads WHERE seq >= 2 ORDER BY chain LIMIT 1)",
    )
    _sql(server, "UPDATE audit_log SET seq = CASE seq WHEN -1 THEN 2 ELSE 1 END WHERE seq < 0")
    code, out = _cli(capsys, "audit", "--config", str(config), "--verify")
    assert code == 1
    assert "does not follow" in out or "deleted or reordered" in out


def test_the_hashed_text_of_an_entry_never_changes_encoder() -> None:
    """``hash_tail`` encodes with orjson for speed; stored chains were hashed over the standard
    library's text, so the two must agree on every value an entry can hold, or old entries
    would stop verifying.  Every code point, alone and inside text, with integers and None."""
    from deputize.server.storage import audit

    reference = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    row: dict[str, Any] = {name: None for name in audit._FIELDS}
    row.update(chain=3, seq=9, at=1_800_000_000, event="token_issued", actors="a b")
    for first in range(0, 0x110000, 64):
        text = "".join(chr(cp) for cp in range(first, first + 64))
        row.update(subject=text, client_id="x" + text[:5] + "y", jti=str(first), task=None)
        expected = reference.encode([row[name] for name in audit._FIELDS[2:]])[1:]
        assert audit.hash_tail(row) == expected, hex(first)
    row.update(at=2**70)  # beyond orjson's integers: the standard library takes over
    assert audit.hash_tail(row).startswith(str(2**70) + ",")


def test_details_are_json_with_sorted_keys_whatever_the_values() -> None:
    from deputize.server.storage import audit

    for details in ({"scope": "read", "aud": ["ü"], "kind": "x"}, {"n": 2**70, "b": None}):
        text = audit._details_text(details)
        assert json.loads(text) == details
        assert list(json.loads(text)) == sorted(details)


# --- audit filters from the CLI ----------------------------------------------------------------

#: The JSON members of one ``deputize audit --json`` entry.
ENTRY_KEYS = {
    "chain", "seq", "at", "event", "client_id", "subject", "actors", "task", "jti", "parent_jti",
    "jkt", "reason", "details", "prev_hash", "hash", "id", "at_us", "kid", "time",
}  # fmt: skip
TWO_HOURS = 7200


def _key(entry: dict[str, Any]) -> tuple[int, int]:
    return entry["chain"], entry["seq"]


def _keys_of(entries: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [_key(e) for e in entries]


def _delegate(server: LiveServer, holder: str, token: str, actor: str) -> str:
    response = exchange(
        server, holder, token, actor_token=own_token(server, actor), actor_token_type=ACCESS_TOKEN
    )
    assert response.status_code == 200, response.text
    child: str = response.json()["access_token"]
    return child


def _filter_scenario(server: LiveServer) -> dict[str, str]:
    """Entries the filters must tell apart; returns the tokens of alice's newer chain.

    Two hours ago (by the server's clock): alice -> agent-a, task t-old.  Now: alice -> agent-a
    -> agent-b -> agent-c (task t-new), bob -> agent-b (task t-bob), a refused exchange of bob's
    token by agent-c, and svc-basic's own token."""
    now = int(time.time())
    server.clock.offset = -TWO_HOURS
    old_id_token = user_token(iat=now - TWO_HOURS - 60, exp=now + 3600)
    response = exchange(server, "agent-a", old_id_token, subject_type=JWT, task="t-old")
    assert response.status_code == 200, response.text
    server.clock.offset = 0
    a = start_chain(server, task="t-new")
    ab = _delegate(server, "agent-a", a, "agent-b")
    abc = _delegate(server, "agent-b", ab, "agent-c")
    response = exchange(server, "agent-b", user_token("bob"), subject_type=JWT, task="t-bob")
    assert response.status_code == 200, response.text
    stolen = exchange(server, "agent-c", response.json()["access_token"])
    assert stolen.status_code == 400, stolen.text
    assert server.token(client_id="svc-basic", dpop_key=SigningKey.generate("ES256")).is_success
    return {"a": a, "ab": ab, "abc": abc}


@pytest.fixture
def two_users(server_factory: ServerFactory, tmp_path: Path) -> tuple[LiveServer, Path]:
    """A delegation server where alice delegates to agent-a and bob to agent-b, with a config
    for the CLI on its database."""
    grants = [
        {"subject": "alice", "agents": ["agent-a"]},
        {"subject": "bob", "agents": ["agent-b"]},
    ]
    server = start(server_factory, grants=grants)
    return server, _config_for(server, tmp_path)


def test_audit_user_and_actor_filters_include_exactly_the_matching_entries(
    two_users: tuple[LiveServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to break ``audit --user`` and ``--actor``: each must return exactly the entries of
    the unfiltered trail that match (compared entry by entry), so a filter that is ignored
    lets other users' or actors' entries through, and one that matches too little (only the
    acting client, only the first or last actor of a chain) drops some.  An actor name is
    matched whole: ``agent`` or ``agent_b`` (a LIKE wildcard) matches nobody."""
    server, config = two_users
    _filter_scenario(server)
    everything = _audit(capsys, config)

    for user in ("alice", "bob"):
        expected = [e for e in everything if e["subject"] == user]
        others = [e for e in everything if e["subject"] not in (None, user)]
        assert expected and others
        assert _keys_of(_audit(capsys, config, "--user", user)) == _keys_of(expected)
    alice_tasks = {e["task"] for e in _audit(capsys, config, "--user", "alice")}
    assert alice_tasks == {"t-old", "t-new"}

    for actor in ("agent-a", "agent-b", "agent-c"):
        expected = [e for e in everything if e["client_id"] == actor or actor in e["actors"]]
        assert _keys_of(_audit(capsys, config, "--actor", actor)) == _keys_of(expected)
    by_b = _audit(capsys, config, "--actor", "agent-b")
    chains = {tuple(e["actors"]) for e in by_b if e["event"] == "token_issued"}
    # agent-b alone (for bob), last (alice -> a -> b) and in the middle (a -> b -> c); plus its
    # own client token (no actors), used to delegate to it.
    assert chains == {("agent-b",), ("agent-a", "agent-b"), ("agent-a", "agent-b", "agent-c"), ()}
    assert not [e for e in by_b if e["task"] == "t-old" or e["subject"] == "svc-basic"]
    (refused,) = [e for e in _audit(capsys, config, "--actor", "agent-c") if e["reason"]]
    assert refused["event"] == "exchange_refused" and refused["client_id"] == "agent-c"
    for partial in ("agent", "agent-", "agent_b", "%", "gent-b"):
        assert _audit(capsys, config, "--actor", partial) == [], partial


def test_audit_since_filter_in_every_accepted_form(
    two_users: tuple[LiveServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to break ``audit --since``: entries written two hours ago (by the server's
    injectable clock) must be left out and the newer ones kept, whether the time is given as
    Unix seconds, an ISO date-time without a zone (UTC), one with a zone, or a duration; and
    combined with ``--user`` both filters apply.  Fails if ``since`` is ignored."""
    server, config = two_users
    _filter_scenario(server)
    everything = _audit(capsys, config)
    cutoff = int(time.time()) - 3600
    old = [e for e in everything if e["at"] < cutoff]
    new = [e for e in everything if e["at"] >= cutoff]
    assert "t-old" in {e["task"] for e in old} and new
    assert "t-old" not in {e["task"] for e in new}
    assert all(e["at"] <= cutoff - 3000 for e in old)  # well clear of the cutoff

    when = datetime.fromtimestamp(cutoff, UTC)
    forms = [
        str(cutoff),
        when.strftime("%Y-%m-%dT%H:%M:%S"),  # no zone: UTC
        when.astimezone(timezone(timedelta(hours=2))).isoformat(),
        "60m",  # the duration forms count back from the CLI's own clock
        "1h",
    ]
    for form in forms:
        assert _keys_of(_audit(capsys, config, "--since", form)) == _keys_of(new), form

    recent_alice = _audit(capsys, config, "--user", "alice", "--since", "1h")
    assert recent_alice and {e["task"] for e in recent_alice} == {"t-new"}
    assert _keys_of(recent_alice) == _keys_of([e for e in new if e["subject"] == "alice"])
    assert {e["task"] for e in _audit(capsys, config, "--since", "3h")} >= {"t-old", "t-new"}


def test_audit_json_shape(
    two_users: tuple[LiveServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``audit --json`` prints a list of entries, oldest first, each with every stored field:
    actors as a list (current actor last), details as an object, identifiers of the token,
    its parent and its DPoP key."""
    server, config = two_users
    tokens = _filter_scenario(server)
    everything = _audit(capsys, config)
    assert everything and all(set(e) == ENTRY_KEYS for e in everything)
    assert [e["at"] for e in everything] == sorted(e["at"] for e in everything)
    for e in everything:
        assert isinstance(e["at"], int) and isinstance(e["details"], dict)
        assert isinstance(e["actors"], list) and all(isinstance(a, str) for a in e["actors"])
        assert len(e["hash"]) == len(e["prev_hash"]) == 64
    abc = claims_of(tokens["abc"])
    (issued,) = [e for e in everything if e["jti"] == abc["jti"]]
    assert issued["event"] == "token_issued"
    assert issued["subject"] == "alice" and issued["client_id"] == "agent-c"
    assert issued["actors"] == ["agent-a", "agent-b", "agent-c"]
    assert issued["task"] == "t-new"
    assert issued["parent_jti"] == claims_of(tokens["ab"])["jti"]
    assert issued["jkt"] == DPOP_KEYS["agent-c"].kid
    assert issued["reason"] is None
    audience = abc["aud"] if isinstance(abc["aud"], list) else [abc["aud"]]
    assert issued["details"] == {"kind": "delegation", "scope": abc["scope"], "aud": audience}


# --- key rotation is audited --------------------------------------------------------------------


def _key_states(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, str]:
    code, out = _cli(capsys, "keys", "list", "--config", str(config), "--json")
    assert code == 0, out
    return {key["state"]: key["kid"] for key in json.loads(out) if key["state"] != "retired"}


def test_key_rotation_from_the_cli_is_audited_and_the_trail_still_verifies(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to break the audit of ``deputize keys rotate``: a refused rotation (no --force)
    leaves no entry; a forced one appends exactly one ``key_rotated`` entry naming the kids
    (RFC 7638 thumbprints) of the keys now active, retired and next, and no secret; and the
    hash chains, already holding the server's entries, still verify afterwards."""
    for _ in range(5):
        start_chain(server)
    before = _key_states(capsys, config)
    code, _ = _cli(capsys, "keys", "rotate", "--config", str(config))
    assert code == 1
    assert not [e for e in _audit(capsys, config) if e["event"] == "key_rotated"]

    code, out = _cli(capsys, "keys", "rotate", "--config", str(config), "--force")
    assert code == 0, out
    after = _key_states(capsys, config)
    assert after["active"] == before["next"]
    (entry,) = [e for e in _audit(capsys, config) if e["event"] == "key_rotated"]
    # A signing key's kid in its own field: ``jkt`` names a holder's DPoP key, never this.
    assert entry["kid"] == before["next"] and entry["jkt"] is None
    assert entry["details"] == {
        "active": before["next"],
        "retired": before["active"],
        "next": after["next"],
    }
    assert (entry["client_id"], entry["subject"], entry["jti"], entry["reason"]) == (None,) * 4
    assert "PRIVATE" not in json.dumps(entry)

    code, out = _cli(capsys, "audit", "--config", str(config), "--verify")
    assert code == 0, out
    assert "intact" in out
    code, out = _cli(capsys, "audit", "--config", str(config), "--verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    assert json.loads(out)["entries"] == len(_audit(capsys, config))


# --- nothing secret in the trail ----------------------------------------------------------------

#: A run of base64url starting like a JSON object ("{"...), long enough to be a JWT's segment.
JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{37,}")


class Sent:
    """Every credential and token the test sends or receives, to look for in the trail."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.jtis: set[str] = set()

    def __call__(self, value: str) -> str:
        self.values.append(value)
        return value

    def response(self, response: httpx.Response, status: int) -> httpx.Response:
        assert response.status_code == status, response.text
        if status == 200:
            token = self(response.json()["access_token"])
            self.jtis.add(claims_of(token)["jti"])
        return response

    def pieces(self, width: int = 24, step: int = 4) -> set[str]:
        """Overlapping runs of every value: a leaked part of one shows as well as the whole."""
        return {
            value[start : start + width]
            for value in self.values
            for start in range(0, max(len(value) - width, 0) + 1, step)
        }


def _exchange_sent(
    server: LiveServer,
    sent: Sent,
    agent: str,
    subject_token: str,
    *,
    subject_type: str = ACCESS_TOKEN,
    client_assertion: str | None = None,
    **params: str,
) -> httpx.Response:
    """A token exchange by ``agent`` (private_key_jwt + DPoP) whose assertion, proof and
    subject token are all recorded in ``sent``."""
    if client_assertion is None:
        client_assertion = server.assertion(agent, AUTH_KEYS[agent])
    covered = subject_token if subject_type == ACCESS_TOKEN else None
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": sent(subject_token),
        "subject_token_type": subject_type,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": sent(client_assertion),
        **params,
    }
    proof = sent(server.proof(DPOP_KEYS[agent], access_token=covered))
    return server.client.post("/token", data=form, headers={"DPoP": proof})


def test_no_secret_or_whole_token_reaches_the_audit_trail(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to leak credentials into the trail: wrong and right client secrets (Basic and
    form), a replayed client assertion, a proof for the wrong URL, refused exchanges whose
    subject token is a real token, and successful private_key_jwt + DPoP exchanges.  The whole
    trail, as JSON and as text, must hold none of the secrets, assertions, proofs or tokens,
    nor any segment of one, and no JWT-looking run except a jti or key thumbprint."""
    sent = Sent()
    secrets_ = [sent(secret) for secret in SECRETS.values()]
    wrong = [sent(f"wrong-secret-{n}-0123456789abcdefghijklmnop") for n in range(2)]
    holder = SigningKey.generate("ES256")

    # (a) client_secret authentication failures, Basic and form.
    sent.response(
        server.client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={**server.basic("svc-basic", wrong[0]), "DPoP": sent(server.proof(holder))},
        ),
        401,
    )
    sent.response(
        server.client.post(
            "/token",
            data={"grant_type": "client_credentials", "client_id": "svc-post",
                  "client_secret": wrong[1]},
            headers={"DPoP": sent(server.proof(holder))},
        ),
        401,
    )  # fmt: skip
    # (b) successful client_secret authentication, Basic and form.
    sent.response(
        server.client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={**server.basic("svc-basic"), "DPoP": sent(server.proof(holder))},
        ),
        200,
    )
    sent.response(
        server.client.post(
            "/token",
            data={"grant_type": "client_credentials", "client_id": "svc-post",
                  "client_secret": SECRETS["svc-post"]},
            headers={"DPoP": sent(server.proof(holder))},
        ),
        200,
    )  # fmt: skip
    # (d) successful private_key_jwt + DPoP exchanges: alice -> agent-a, a hand-off to agent-b,
    # agent-b's redemption.
    first_assertion = server.assertion("agent-a", AUTH_KEYS["agent-a"])
    first = sent.response(
        _exchange_sent(
            server, sent, "agent-a", user_token(), subject_type=JWT,
            client_assertion=first_assertion, task="t-secret",
        ),
        200,
    ).json()["access_token"]  # fmt: skip
    handoff = sent.response(
        _exchange_sent(server, sent, "agent-a", first, audience="agent-b"), 200
    ).json()["access_token"]
    redeemed = server.proof(DPOP_KEYS["agent-b"])
    sent.response(
        server.client.post(
            "/token",
            data={"grant_type": TOKEN_EXCHANGE, "subject_token": handoff,
                  "subject_token_type": ACCESS_TOKEN, "client_assertion_type": JWT_BEARER,
                  "client_assertion": sent(server.assertion("agent-b", AUTH_KEYS["agent-b"]))},
            headers={"DPoP": sent(redeemed)},
        ),
        200,
    )  # fmt: skip
    # (c) refused exchanges of a real token: stolen by agent-b, widened by agent-a, and a
    # replayed client assertion; plus a proof made out for another URL.
    sent.response(_exchange_sent(server, sent, "agent-b", first), 400)
    sent.response(_exchange_sent(server, sent, "agent-a", first, scope="payments:send"), 400)
    sent.response(
        _exchange_sent(server, sent, "agent-a", first, client_assertion=first_assertion), 401
    )
    wrong_url = sent(server.proof(DPOP_KEYS["agent-a"], url=server.url + "/elsewhere"))
    sent.response(
        server.client.post(
            "/token",
            data={"grant_type": TOKEN_EXCHANGE, "subject_token": first,
                  "subject_token_type": ACCESS_TOKEN,
                  **{"client_assertion_type": JWT_BEARER,
                     "client_assertion": sent(server.assertion("agent-a", AUTH_KEYS["agent-a"]))}},
            headers={"DPoP": wrong_url},
        ),
        400,
    )  # fmt: skip

    code, as_json = _cli(capsys, "audit", "--config", str(config), "--json")
    assert code == 0
    code, as_text = _cli(capsys, "audit", "--config", str(config))
    assert code == 0
    entries = json.loads(as_json)
    events = {e["event"] for e in entries}
    assert {"client_auth_failed", "token_issued", "exchange_refused"} <= events
    assert len([e for e in entries if e["event"] == "token_issued"]) == 5

    # Only the identifiers of what was issued may look like a token: jti values and the
    # thumbprints of the DPoP keys used.
    identifiers = sent.jtis | {holder.kid} | {key.kid for key in DPOP_KEYS.values()}
    pieces = sent.pieces()
    for trail in (as_json, as_text):
        for value in sent.values:
            assert value not in trail
        assert [piece for piece in pieces if piece in trail] == []
        for secret in (*secrets_, *wrong):
            assert secret[:16] not in trail
        assert set(JWT_LIKE.findall(trail)) <= identifiers


def test_refusals_are_audited_with_the_client_they_claimed(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exchange refused for its DPoP proof was refused before the request's transaction and
    left no entry at all; a wrong Basic secret and a replayed assertion left entries without
    the client they named, so ``audit --actor`` could not find them."""
    token = start_chain(server)
    wrong_url = server.proof(DPOP_KEYS["agent-a"], url=server.url + "/elsewhere")
    refused = exchange(server, "agent-a", token, proof=wrong_url)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"
    (entry,) = [e for e in _audit(capsys, config) if e["event"] == "exchange_refused"]
    assert entry["reason"].startswith("invalid_dpop_proof: ") and "htu" in entry["reason"]

    wrong = server.client.post(
        "/token", data={"grant_type": "client_credentials"},
        headers=server.basic("svc-basic", "not-the-secret-0123456789"),
    )  # fmt: skip
    assert wrong.status_code == 401
    used = server.assertion("agent-a", AUTH_KEYS["agent-a"])
    for _ in range(2):  # the second use is a replay
        server.client.post(
            "/token",
            data={"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
                  "client_assertion": used},
            headers={"DPoP": server.proof(DPOP_KEYS["agent-a"])},
        )  # fmt: skip
    failures = [e for e in _audit(capsys, config) if e["event"] == "client_auth_failed"]
    by_client = {(e["client_id"], e["reason"]) for e in failures}
    assert ("svc-basic", "invalid_client: client authentication failed") in by_client
    assert ("agent-a", "invalid_client: client assertion has already been used") in by_client
    assert [e["client_id"] for e in _audit(capsys, config, "--actor", "svc-basic")] == ["svc-basic"]


def test_a_nul_in_claimed_basic_credentials_is_audited_not_a_crash(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Basic credentials are percent-decoded: ``%00`` is a NUL, which PostgreSQL's text
    refuses.  The refusal must still be a 401 with its audit entry."""
    raw = base64.b64encode(b"svc%00basic:secret").decode()
    response = server.client.post(
        "/token", data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {raw}"},
    )  # fmt: skip
    assert response.status_code == 401, response.text
    failures = [e for e in _audit(capsys, config) if e["event"] == "client_auth_failed"]
    assert "svc?basic" in [e["client_id"] for e in failures]
