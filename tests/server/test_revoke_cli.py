"""``deputize revoke --jti / --client / --user`` from the command line, against a live server's
database: exactly the targeted tokens and everything delegated from them turn inactive at
``/introspect`` at once, and every other token stays active.

Each scenario holds tokens that a wrong criterion would catch (a swapped ``--client``/``--user``
mapping, an ignored filter, a parent instead of a child, no walk down the delegation tree), so
the ledger's set of revoked tokens must come out exactly as targeted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from delegation_support import (
    ACCESS_TOKEN,
    JWT,
    claims_of,
    exchange,
    introspect,
    ledger,
    own_token,
    start,
    user_token,
)

from deputize.keys import SigningKey
from deputize.server import cli

from support import LiveServer, ServerFactory

GRANTS = [
    {"subject": "alice", "agents": ["agent-a"]},
    {"subject": "bob", "agents": ["agent-b"]},
]


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    """The delegation server, where alice delegates to agent-a and bob to agent-b."""
    return start(server_factory, grants=GRANTS)


@pytest.fixture
def config(server: LiveServer, tmp_path: Path) -> Path:
    """A config file for the CLI, pointing at the live server's database."""
    path = tmp_path / "deputize.yaml"
    path.write_text(
        yaml.safe_dump({"issuer": server.url, "database": {"url": server.settings.database_url}})
    )
    return path


def _revoke(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> str:
    capsys.readouterr()
    code = cli.main(["revoke", "--config", str(config), *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def _revocations(capsys: pytest.CaptureFixture[str], config: Path) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert cli.main(["audit", "--config", str(config), "--json"]) == 0
    entries: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return [e for e in entries if e["event"] == "token_revoked"]


def _first_hop(server: LiveServer, user: str, agent: str) -> str:
    """``user`` -> ``agent``: the agent's token from the user's identity-provider token."""
    response = exchange(server, agent, user_token(user), subject_type=JWT)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _delegate(server: LiveServer, holder: str, token: str, actor: str) -> str:
    """``holder`` delegates ``token`` to ``actor`` in one call: a child token ``actor`` holds."""
    response = exchange(
        server, holder, token, actor_token=own_token(server, actor), actor_token_type=ACCESS_TOKEN
    )
    assert response.status_code == 200, response.text
    child: str = response.json()["access_token"]
    assert claims_of(child)["client_id"] == actor
    return child


def _service_token(server: LiveServer) -> str:
    response = server.token(client_id="svc-basic", dpop_key=SigningKey.generate("ES256"))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _jti(token: str) -> str:
    jti: str = claims_of(token)["jti"]
    return jti


def _revoked_jtis(server: LiveServer) -> set[str]:
    return {jti for jti, record in ledger(server).items() if record.revoked_at is not None}


def _assert_exactly_revoked(
    server: LiveServer, revoked: dict[str, str], active: dict[str, str]
) -> None:
    """Introspection answers at once for each named token, and the ledger holds no other
    revocation (tokens the test made along the way, such as actor tokens, included)."""
    for name, token in revoked.items():
        assert introspect(server, token) == {"active": False}, name
    for name, token in active.items():
        assert introspect(server, token)["active"] is True, name
    assert _revoked_jtis(server) == {_jti(token) for token in revoked.values()}


def test_revoke_by_jti_takes_the_token_and_its_descendants_only(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to break ``revoke --jti``: the token named and every token delegated from it
    (two levels down) go; its parent, a sibling chain of the same user and agent, and
    unrelated tokens stay.  Fails if the jti is ignored, if the walk down the delegation tree
    is skipped, or if it walks up to the parent instead."""
    parent = _first_hop(server, "alice", "agent-a")
    target = _delegate(server, "agent-a", parent, "agent-b")
    grandchild = _delegate(server, "agent-b", target, "agent-c")
    sibling = _first_hop(server, "alice", "agent-a")
    sibling_child = _delegate(server, "agent-a", sibling, "agent-b")
    service = _service_token(server)
    for token in (parent, target, grandchild, sibling, sibling_child, service):
        assert introspect(server, token)["active"] is True

    out = _revoke(capsys, config, "--jti", _jti(target))

    _assert_exactly_revoked(
        server,
        revoked={"target": target, "grandchild": grandchild},
        active={
            "parent": parent,
            "sibling": sibling,
            "sibling's child": sibling_child,
            "service": service,
        },
    )
    assert "Revoked 2 live token(s)" in out
    (entry,) = _revocations(capsys, config)
    assert entry["jti"] == _jti(target)
    assert entry["details"] == {
        "by": "cli",
        "revoked": 2,
        "handoffs_closed": 0,
        "jti": _jti(target),
    }


def test_revoke_by_client_takes_what_the_client_holds_and_its_descendants(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to break ``revoke --client``: every token agent-a holds (alice's delegation and
    its own client_credentials token) goes, with what agent-a delegated on to agent-b; agent-b's
    own tokens for bob and itself, and a service's token, stay.  Fails if ``--client`` is read
    as a subject (alice's token, held by agent-a, would survive), if the filter is ignored, or
    if descendants are not followed."""
    alice_a = _first_hop(server, "alice", "agent-a")
    a_own = own_token(server, "agent-a")
    alice_a_b = _delegate(server, "agent-a", alice_a, "agent-b")
    bob_b = _first_hop(server, "bob", "agent-b")
    b_own = own_token(server, "agent-b")
    service = _service_token(server)

    out = _revoke(capsys, config, "--client", "agent-a")

    _assert_exactly_revoked(
        server,
        revoked={"alice -> agent-a": alice_a, "agent-a's own": a_own, "-> agent-b": alice_a_b},
        active={"bob -> agent-b": bob_b, "agent-b's own": b_own, "service": service},
    )
    assert "Revoked 3 live token(s)" in out
    (entry,) = _revocations(capsys, config)
    assert entry["client_id"] == "agent-a" and entry["subject"] is None
    assert entry["details"] == {
        "by": "cli",
        "revoked": 3,
        "handoffs_closed": 0,
        "client": "agent-a",
    }


def test_revoke_by_user_takes_every_token_acting_for_the_user(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to break ``revoke --user``: every token acting for bob (agent-b's, and what
    agent-b delegated to agent-c) goes; alice's tokens — including one agent-b holds — and
    agent-b's own client token stay.  Fails if ``--user`` is read as a client (bob holds no
    token: nothing would go; or agent-b's tokens for alice would), or if the filter is
    ignored."""
    bob_b = _first_hop(server, "bob", "agent-b")
    bob_b_c = _delegate(server, "agent-b", bob_b, "agent-c")
    alice_a = _first_hop(server, "alice", "agent-a")
    alice_a_b = _delegate(server, "agent-a", alice_a, "agent-b")
    b_own = own_token(server, "agent-b")

    out = _revoke(capsys, config, "--user", "bob")

    _assert_exactly_revoked(
        server,
        revoked={"bob -> agent-b": bob_b, "bob -> agent-b -> agent-c": bob_b_c},
        active={"alice -> agent-a": alice_a, "alice -> a -> agent-b": alice_a_b, "b's own": b_own},
    )
    assert "Revoked 2 live token(s)" in out
    (entry,) = _revocations(capsys, config)
    assert entry["subject"] == "bob" and entry["client_id"] is None
    assert entry["details"] == {"by": "cli", "revoked": 2, "handoffs_closed": 0, "user": "bob"}


def test_revoking_what_matches_nothing_revokes_nothing(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A criterion that matches no token (an unknown jti, client or user) must not fall back to
    revoking anything: every token stays active, the command says so naming the flag and exits
    1 (a mistyped jti is not a success), and each attempt is still audited."""
    alice_a = _first_hop(server, "alice", "agent-a")
    bob_b = _first_hop(server, "bob", "agent-b")
    for flag, value in (("--jti", "no-such-jti"), ("--client", "nobody"), ("--user", "carol")):
        capsys.readouterr()
        assert cli.main(["revoke", "--config", str(config), flag, value]) == 1
        out, err = capsys.readouterr()
        assert out == "" and f"no live token matches {flag} {value}" in err
    _assert_exactly_revoked(server, revoked={}, active={"alice": alice_a, "bob": bob_b})
    assert [e["details"]["revoked"] for e in _revocations(capsys, config)] == [0, 0, 0]


def test_revoke_counts_live_tokens_and_the_spent_hand_offs_closed_with_them(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to break the counts ``revoke`` reports: task t-h holds agent-a's token, a hand-off
    agent-b already redeemed, agent-b's token from it, and an expired token (minted two hours
    ago by the server's clock).  Only the two usable tokens count as revoked, the redeemed
    hand-off is reported as closed, and the expired one is in neither count; the audit entry
    says the same.  Revoking the task again finds nothing live: exit 1.  The old count (every
    row marked) said 4."""
    server.clock.offset = -7200
    old = exchange(server, "agent-a", user_token(iat=int(server.clock())), subject_type=JWT,
                   task="t-h")  # fmt: skip
    assert old.status_code == 200, old.text
    server.clock.offset = 0
    a = _first_hop_with_task(server, "t-h")
    handoff = exchange(server, "agent-a", a, audience="agent-b")
    assert handoff.status_code == 200, handoff.text
    redeemed = exchange(server, "agent-b", handoff.json()["access_token"], ath=False)
    assert redeemed.status_code == 200, redeemed.text
    b = redeemed.json()["access_token"]

    out = _revoke(capsys, config, "--task", "t-h")

    assert out.strip() == (
        "Revoked 2 live token(s), including every token delegated from them; "
        "closed 1 spent hand-off(s) with them."
    )
    for token in (a, b):
        assert introspect(server, token) == {"active": False}
    assert len(_revoked_jtis(server)) == 4  # the expired token and the hand-off are marked too
    (entry,) = _revocations(capsys, config)
    assert entry["details"] == {"by": "cli", "revoked": 2, "handoffs_closed": 1, "task": "t-h"}

    capsys.readouterr()
    assert cli.main(["revoke", "--config", str(config), "--task", "t-h"]) == 1
    assert "no live token matches --task t-h" in capsys.readouterr().err


def _first_hop_with_task(server: LiveServer, task: str) -> str:
    response = exchange(server, "agent-a", user_token(), subject_type=JWT, task=task)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
