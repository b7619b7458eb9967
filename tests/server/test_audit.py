"""The audit trail: every decision recorded with the state change, and tampering detected."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from delegation_support import DOCS, JWT, exchange, introspect, start, start_chain, user_token
from sqlalchemy import text

from deputize.server import cli
from deputize.server.settings import async_database_url
from deputize.server.storage.database import Database

from support import LiveServer, ServerFactory


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


@pytest.fixture
def config(server: LiveServer, tmp_path: Path) -> Path:
    """A config file for the CLI, pointing at the live server's database."""
    path = tmp_path / "deputize.yaml"
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
    assert code == 0 and "Revoked 1 token" in out
    assert introspect(server, token) == {"active": False}
    (entry,) = [e for e in _audit(capsys, config) if e["event"] == "token_revoked"]
    assert entry["details"] == {"by": "cli", "revoked": 1, "task": "t-7"}


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
