"""The audit trail read as it happened: one order across the 16 chains, microsecond times,
the newest entries with ``--limit``, ``--event`` and ``--jsonl``, client changes on record,
and a trail written before migration 0007 still verifying after it."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic import command
from alembic.config import Config
from delegation_support import claims_of
from sqlalchemy import Connection, text

import deputize.server
from deputize.keys import SigningKey
from deputize.server import cli
from deputize.server.settings import async_database_url
from deputize.server.storage import audit
from deputize.server.storage.database import Database

from support import LiveServer, ServerFactory

#: An entry's time: ISO 8601, UTC, to the microsecond.
MICROSECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory.start()


@pytest.fixture
def config(server: LiveServer, tmp_path: Path) -> Path:
    return _config(tmp_path, server.url, server.settings.database_url)


def _config(folder: Path, issuer: str, database_url: str) -> Path:
    path = folder / "deputize.yaml"
    path.write_text(yaml.safe_dump({"issuer": issuer, "database": {"url": database_url}}))
    return path


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _audit(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> list[dict[str, Any]]:
    code, out, err = _cli(capsys, "audit", "--config", str(config), "--json", *args)
    assert code == 0, err
    entries: list[dict[str, Any]] = json.loads(out)
    return entries


def _issue(server: LiveServer) -> str:
    """A client_credentials token for svc-basic: one ``token_issued`` entry; returns its jti."""
    response = server.token(client_id="svc-basic", dpop_key=SigningKey.generate("ES256"))
    assert response.status_code == 200, response.text
    jti: str = claims_of(response.json()["access_token"])["jti"]
    return jti


def _issued_jtis(entries: list[dict[str, Any]]) -> list[str]:
    return [e["jti"] for e in entries if e["event"] == "token_issued"]


def test_entries_from_every_chain_are_listed_in_the_order_they_were_written(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tries to break the order across chains: twenty tokens issued one after another land on
    random chains, many within one second, and must be listed exactly in the order they were
    issued (the old listing sorted each second's entries by chain); then a burst of concurrent
    requests, whose entries must all come after the first twenty and before a token issued
    once the burst is over, each with a time inside the burst.  Every entry's ``id`` is unique
    and rises down the listing, and its time is kept to the microsecond."""
    in_order = [_issue(server) for _ in range(20)]
    started = time.time()
    with ThreadPoolExecutor(max_workers=8) as pool:
        burst = set(pool.map(lambda _: _issue(server), range(16)))
    ended = time.time()
    last = _issue(server)

    everything = _audit(capsys, config)
    listed = _issued_jtis(everything)
    assert listed[:20] == in_order
    assert set(listed[20:36]) == burst
    assert listed[36:] == [last]
    first_twenty = [e for e in everything if e["jti"] in in_order]
    assert len({e["chain"] for e in first_twenty}) > 1  # the order is not one chain's
    ids = [e["id"] for e in everything]
    assert ids == sorted(set(ids))
    for entry in everything:
        assert entry["at"] == entry["at_us"] // 1_000_000
        assert MICROSECONDS.fullmatch(entry["time"]), entry["time"]
        parsed = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
        assert round(parsed.timestamp() * 1_000_000) == entry["at_us"]
        if entry["jti"] in burst:
            assert int(started) * 1_000_000 <= entry["at_us"] <= ended * 1_000_000
    assert len({e["at_us"] % 1_000_000 for e in everything}) > 1  # not whole seconds

    code, out, _ = _cli(capsys, "audit", "--config", str(config))
    assert code == 0
    lines = out.splitlines()
    assert [line.split("  ")[0] for line in lines] == [e["time"] for e in everything]


def test_limit_keeps_the_newest_entries_listed_oldest_first(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--limit 3`` is the last three entries of the whole listing, in the same order (it
    used to be the oldest three); with a filter, the newest three that match."""
    jtis = [_issue(server) for _ in range(6)]
    everything = _audit(capsys, config)
    assert _audit(capsys, config, "--limit", "3") == everything[-3:]
    assert (
        _issued_jtis(_audit(capsys, config, "--limit", "2", "--event", "token_issued"))
        == (jtis[-2:])
    )
    for bad in ("0", "-1", "x"):
        with pytest.raises(SystemExit) as exited:
            cli.main(["audit", "--config", str(config), "--limit", bad])
        assert exited.value.code == 2


def test_event_filter_keeps_the_kinds_named_and_refuses_unknown_ones(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--event`` (repeatable) keeps exactly the entries of the kinds named; a kind the server
    never writes is refused (exit 2) with the list of known kinds, not answered with nothing."""
    _issue(server)
    wrong = server.client.post(
        "/token", data={"grant_type": "client_credentials"},
        headers=server.basic("svc-basic", "not-the-secret-0123456789"),
    )  # fmt: skip
    assert wrong.status_code == 401
    everything = _audit(capsys, config)
    assert {e["event"] for e in everything} >= {"token_issued", "client_auth_failed"}
    only_failures = _audit(capsys, config, "--event", "client_auth_failed")
    assert only_failures == [e for e in everything if e["event"] == "client_auth_failed"]
    both = _audit(capsys, config, "--event", "client_auth_failed", "--event", "token_issued")
    wanted = {"client_auth_failed", "token_issued"}
    assert both == [e for e in everything if e["event"] in wanted]
    assert _audit(capsys, config, "--event", "key_rotated") == []

    with pytest.raises(SystemExit) as exited:
        cli.main(["audit", "--config", str(config), "--event", "token_isued"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unknown event 'token_isued'" in err
    assert all(name in err for name in ("token_issued", "client_added", "sign_in", "key_rotated"))


def test_jsonl_prints_one_entry_per_line(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--jsonl``: each line one JSON object, the same entries as ``--json`` in the same
    order, for log shippers; it cannot be combined with ``--json``."""
    for _ in range(3):
        _issue(server)
    everything = _audit(capsys, config)
    code, out, _ = _cli(capsys, "audit", "--config", str(config), "--jsonl")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(everything) >= 3
    assert [json.loads(line) for line in lines] == everything
    code, out, _ = _cli(capsys, "audit", "--config", str(config), "--jsonl", "--verify")
    assert code == 0 and json.loads(out)["ok"] is True and "\n" not in out.strip()
    with pytest.raises(SystemExit) as exited:
        cli.main(["audit", "--config", str(config), "--json", "--jsonl"])
    assert exited.value.code == 2


def test_adding_and_removing_a_client_is_audited_without_its_secret(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``clients add`` and ``clients remove`` each leave one entry naming the client and who
    changed it (``cli``), with what it may do; neither the generated secret nor its hash
    reaches the trail; a removal of a client that is not there leaves none; the chains
    verify."""
    code, out, err = _cli(
        capsys, "clients", "add", "--config", str(config), "--client-id", "reports-app",
        "--scope", "docs:read", "--agent",
    )  # fmt: skip
    assert code == 0, err
    secret = out.splitlines()[-1]
    assert len(secret) >= 32
    code, _, err = _cli(capsys, "clients", "remove", "--config", str(config), "reports-app")
    assert code == 0, err
    code, _, _ = _cli(capsys, "clients", "remove", "--config", str(config), "reports-app")
    assert code == 1

    changes = _audit(capsys, config, "--event", "client_added", "--event", "client_removed")
    assert [(e["event"], e["client_id"]) for e in changes] == [
        ("client_added", "reports-app"),
        ("client_removed", "reports-app"),
    ]
    assert changes[0]["details"] == {
        "by": "cli",
        "auth_method": "client_secret_basic",
        "agent": True,
        "grant_types": ["client_credentials"],
        "scopes": ["docs:read"],
    }
    assert changes[1]["details"] == {"by": "cli"}
    digest = hashlib.sha256(secret.encode()).hexdigest()
    code, trail, _ = _cli(capsys, "audit", "--config", str(config), "--jsonl")
    assert secret not in trail and secret[:12] not in trail and digest[:16] not in trail
    assert "sha256:" not in trail
    assert _cli(capsys, "audit", "--config", str(config), "--verify")[0] == 0


def test_a_key_rotation_is_listed_with_its_kid(
    server: LiveServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text listing shows the rotated key as ``kid=...`` (it used to say ``jkt=``)."""
    code, _, err = _cli(capsys, "keys", "rotate", "--config", str(config), "--force")
    assert code == 0, err
    (entry,) = _audit(capsys, config, "--event", "key_rotated")
    code, out, _ = _cli(capsys, "audit", "--config", str(config), "--event", "key_rotated")
    assert code == 0
    assert f"kid={entry['kid']}" in out and "jkt=" not in out


# --- a trail written before migration 0007 --------------------------------------------------


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("deputize.server") / "migrations")
    )
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


#: Entries written before 0007, in the order they were written: (chain, at, subject).
OLD_ENTRIES = [(5, 1_000, "alice"), (2, 1_000, "bob"), (5, 1_001, "carol"), (0, 999, "dave")]


def _old_hash(prev_hash: str, chain: int, seq: int, fields: list[Any]) -> str:
    """The hash as written before 0007, from its definition (not from today's code)."""
    tail = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)[1:]
    return hashlib.sha256(f"{prev_hash}|[{chain},{seq},{tail}".encode()).hexdigest()


async def _trail_at_0006(url: str) -> None:
    db = Database(async_database_url(url))
    try:
        async with db.startup_lock() as conn:
            await conn.run_sync(_upgrade_to, "0006")
            await conn.commit()
        async with db.begin() as conn:
            for chain, at, subject in OLD_ENTRIES:
                head = (
                    await conn.execute(
                        text("SELECT seq, hash FROM audit_heads WHERE chain = :c"), {"c": chain}
                    )
                ).one()
                seq = head.seq + 1
                details = json.dumps({"by": "cli"}, sort_keys=True)
                # at, event, client_id, subject, actors, task, jti, parent_jti, jkt, reason, details
                fields = [at, "user_added", None, subject, *[None] * 6, details]
                digest = _old_hash(head.hash, chain, seq, fields)
                await conn.execute(
                    text(
                        "INSERT INTO audit_log (chain, seq, at, event, subject, details, "
                        "prev_hash, hash) VALUES (:chain, :seq, :at, 'user_added', :subject, "
                        ":details, :prev, :hash)"
                    ),
                    {"chain": chain, "seq": seq, "at": at, "subject": subject,
                     "details": details, "prev": head.hash, "hash": digest},
                )  # fmt: skip
                await conn.execute(
                    text("UPDATE audit_heads SET seq = :s, hash = :h WHERE chain = :c"),
                    {"s": seq, "h": digest, "c": chain},
                )
    finally:
        await db.dispose()


async def _sql(url: str, statement: str, **params: Any) -> None:
    db = Database(async_database_url(url))
    try:
        async with db.begin() as conn:
            await conn.execute(text(statement), params)
    finally:
        await db.dispose()


def test_a_trail_from_before_the_migration_still_verifies_and_keeps_its_order(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database at revision 0006 holding entries on three chains (hashed as 0006 wrote them)
    is migrated by the next command: it verifies, its entries are numbered in the order the
    old listing gave (time, chain, position), with times to the second; a new entry comes
    after them and verifies too.  Then each new field is tampered with — a kid or a time
    added to an old entry, the new entry's time changed or cleared — and each is caught."""
    asyncio.run(_trail_at_0006(database_url))
    config = _config(tmp_path, "https://as.example.com", database_url)

    code, out, _ = _cli(capsys, "audit", "--config", str(config), "--verify")
    assert code == 0, out
    assert "4 entries" in out and "intact" in out
    old = _audit(capsys, config)
    assert [(e["id"], e["subject"]) for e in old] == [
        (1, "dave"), (2, "bob"), (3, "alice"), (4, "carol"),
    ]  # fmt: skip
    assert all(e["at_us"] is None and e["kid"] is None for e in old)
    assert [e["time"] for e in old][:2] == ["1970-01-01T00:16:39Z", "1970-01-01T00:16:40Z"]

    code, _, err = _cli(
        capsys, "clients", "add", "--config", str(config), "--client-id", "after-migration"
    )
    assert code == 0, err
    *_, new = _audit(capsys, config)
    assert (new["id"], new["event"], new["client_id"]) == (5, "client_added", "after-migration")
    assert MICROSECONDS.fullmatch(new["time"])
    assert _cli(capsys, "audit", "--config", str(config), "--verify")[0] == 0

    tampering = [
        ("UPDATE audit_log SET kid = 'k1' WHERE id = 1", "UPDATE audit_log SET kid = NULL"),
        (
            "UPDATE audit_log SET at_us = at * 1000000 WHERE id = 2",
            "UPDATE audit_log SET at_us = NULL WHERE id = 2",
        ),
        (
            "UPDATE audit_log SET at_us = at_us + 1 WHERE id = 5",
            "UPDATE audit_log SET at_us = :at_us WHERE id = 5",
        ),
        (
            "UPDATE audit_log SET at_us = NULL WHERE id = 5",
            "UPDATE audit_log SET at_us = :at_us WHERE id = 5",
        ),
    ]
    for tamper, undo in tampering:
        asyncio.run(_sql(database_url, tamper))
        code, out, _ = _cli(capsys, "audit", "--config", str(config), "--verify")
        assert code == 1 and "edited" in out, tamper
        asyncio.run(_sql(database_url, undo, **({"at_us": new["at_us"]} if ":" in undo else {})))
        assert _cli(capsys, "audit", "--config", str(config), "--verify")[0] == 0, undo


# --- the list of event kinds -----------------------------------------------------------------


def test_every_event_the_server_writes_is_a_known_kind() -> None:
    """``--event`` refuses names outside ``audit.EVENTS``: so every event name passed to
    ``AuditEvent`` anywhere in the server must be listed there, or its entries could never
    be filtered."""
    root = Path(deputize.server.__file__).parent
    constants: dict[str, str] = {}
    used: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                constants[node.target.id] = node.value.value
            if isinstance(node, ast.Call) and "AuditEvent" in ast.unparse(node.func):
                for keyword in node.keywords:
                    if keyword.arg == "event":
                        used.add(ast.unparse(keyword.value).rsplit(".", 1)[-1])
    # endpoints/__init__.py picks one of storage/audit.py's names into a local, ``name``.
    assert used - set(constants) == {"name"}
    written = {constants[name] for name in used - {"name"}}
    assert len(written) >= 15
    assert written <= audit.EVENTS, written - audit.EVENTS
