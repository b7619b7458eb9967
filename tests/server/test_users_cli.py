"""``deputize users`` and ``deputize consents`` against a real database."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deputize.server.accounts.passwords import verify_password
from deputize.server.cli import main
from deputize.server.settings import async_database_url
from deputize.server.storage import users
from deputize.server.storage.database import Database

SCRIPT = Path(sys.executable).with_name("deputize")
PASSWORD = "correct horse battery staple"


pytestmark = pytest.mark.usefixtures("no_deputize_environment")


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "deputize.yaml"
    path.write_text(
        yaml.safe_dump({"issuer": "http://127.0.0.1:8000", "database": {"url": database_url}})
    )
    return path


def cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def stored_user(database_url: str, sub: str) -> users.User | None:
    async def load() -> users.User | None:
        db = Database(async_database_url(database_url))
        try:
            async with db.begin() as conn:
                return await users.get(conn, sub)
        finally:
            await db.dispose()

    return asyncio.run(load())


def test_add_list_disable_enable_and_set_password(
    config: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = str(config)
    status, out, _ = cli(
        capsys, monkeypatch, "users", "add", "-c", c, "alice", "--name", "Alice Example",
        "--email", "alice@example.com", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 0, out
    user = stored_user(database_url, "alice")
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert asyncio.run(verify_password(PASSWORD, user.password_hash))
    assert not asyncio.run(verify_password("wrong password", user.password_hash))

    status, _, err = cli(
        capsys, monkeypatch, "users", "add", "-c", c, "alice", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 1 and "already exists" in err

    status, out, _ = cli(capsys, monkeypatch, "users", "list", "-c", c, "--json")
    (listed,) = json.loads(out)
    assert listed["username"] == "alice" and listed["disabled_at"] is None
    assert "password" not in out and "argon2" not in out

    assert cli(capsys, monkeypatch, "users", "disable", "-c", c, "alice")[0] == 0
    assert stored_user(database_url, "alice").disabled_at is not None  # type: ignore[union-attr]
    assert cli(capsys, monkeypatch, "users", "enable", "-c", c, "alice")[0] == 0
    assert stored_user(database_url, "alice").disabled_at is None  # type: ignore[union-attr]

    new = "another long passphrase"
    status, _, _ = cli(
        capsys, monkeypatch, "users", "set-password", "-c", c, "alice", "--password-stdin",
        stdin=new + "\n",
    )  # fmt: skip
    assert status == 0
    user = stored_user(database_url, "alice")
    assert user is not None and asyncio.run(verify_password(new, user.password_hash))

    status, out, _ = cli(capsys, monkeypatch, "audit", "-c", c, "--user", "alice", "--json")
    events = [e["event"] for e in json.loads(out)]
    assert {"user_added", "user_disabled", "user_enabled", "password_changed"} <= set(events)
    assert not any(PASSWORD in json.dumps(e) for e in json.loads(out))
    assert cli(capsys, monkeypatch, "audit", "-c", c, "--verify")[0] == 0


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["alice"], "", "--password-stdin"),
        (["alice", "--password-stdin"], "short\n", "at least 8"),
        (["alice", "--password-stdin"], "tab\there-and-long\n", "control characters"),
    ],
    ids=["refuses to read a password without a terminal", "refuses a short password",
         "refuses control characters"],
)  # fmt: skip
def test_add_refuses_bad_passwords(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    status, _, err = cli(capsys, monkeypatch, "users", "add", "-c", str(config), *argv, stdin=stdin)
    assert status == 1 and message in err


def test_bad_username_and_unknown_user(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for argv in (["has space"], ["ok", "--email", "not-an-address"], ["ok", "--name", "a\x00b"]):
        with pytest.raises(SystemExit) as exc:
            cli(capsys, monkeypatch, "users", "add", "-c", str(config), *argv, stdin="x")
        assert exc.value.code == 2
    status, _, err = cli(capsys, monkeypatch, "users", "disable", "-c", str(config), "nobody")
    assert status == 1 and "no user 'nobody'" in err
    status, _, err = cli(capsys, monkeypatch, "consents", "revoke", "-c", str(config), "nope")
    assert status == 1 and "no live consent" in err


@pytest.mark.parametrize(
    "command",
    [("users",), ("users", "add"), ("users", "set-password"), ("users", "disable"),
     ("users", "enable"), ("users", "list"), ("consents",), ("consents", "list"),
     ("consents", "revoke")],
    ids=lambda c: " ".join(c),
)  # fmt: skip
def test_help(command: tuple[str, ...]) -> None:
    result = subprocess.run(
        [str(SCRIPT), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert "usage: deputize " + " ".join(command) in result.stdout


def test_clients_add_registers_a_public_sign_in_client(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, _, err = cli(
        capsys, monkeypatch, "clients", "add", "-c", str(config), "--client-id", "summary-agent",
        "--agent", "--grant-type", "urn:ietf:params:oauth:grant-type:token-exchange",
    )  # fmt: skip
    assert status == 0, err  # --delegate-agent must name an agent client
    status, out, err = cli(
        capsys, monkeypatch, "clients", "add", "-c", str(config), "--client-id", "spa",
        "--auth-method", "none", "--grant-type", "authorization_code",
        "--grant-type", "refresh_token", "--redirect-uri", "https://app.example.com/cb",
        "--delegate-agent", "summary-agent", "--scope", "docs:read",
    )  # fmt: skip
    assert status == 0, err
    assert "secret" not in out.lower()
    status, out, _ = cli(capsys, monkeypatch, "clients", "list", "-c", str(config), "--json")
    (spa,) = [c for c in json.loads(out) if c["client_id"] == "spa"]
    assert spa["token_endpoint_auth_method"] == "none"
    assert spa["redirect_uris"] == ["https://app.example.com/cb"]
    assert spa["delegate_agents"] == ["summary-agent"]
    status, _, err = cli(
        capsys, monkeypatch, "clients", "add", "-c", str(config), "--client-id", "bad",
        "--grant-type", "authorization_code",
    )  # fmt: skip
    assert status == 2 and "--redirect-uri: required" in err


# --- roles (the delegation policy's) -------------------------------------------------------


def _policy_config(config: Path) -> Path:
    data = yaml.safe_load(config.read_text())
    data["policy"] = str(Path(__file__).resolve().parents[2] / "examples/policy/unified-auth.yaml")
    config.write_text(yaml.safe_dump(data))
    return config


def test_roles_are_kept_in_the_user_store_and_checked_against_the_policy(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _policy_config(config)
    c = str(config)
    status, _, err = cli(
        capsys, monkeypatch, "users", "add", "-c", c, "alice", "--role", "admn",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 2 and "--role: the policy defines no role 'admn'" in err
    status, _, _ = cli(
        capsys, monkeypatch, "users", "add", "-c", c, "alice", "--role", "viewer",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 0
    ask = ("policy", "check", "-c", c, "--user", "alice", "--agent", "scheduling-agent")
    status, out, _ = cli(capsys, monkeypatch, *ask, "--action", "read", "--resource", "docs:/a")
    assert status == 0 and "allow" in out
    status, out, _ = cli(capsys, monkeypatch, *ask, "--action", "write", "--resource", "docs:/a")
    assert status == 1 and "rule      roles" in out
    status, out, _ = cli(capsys, monkeypatch, "users", "roles", "-c", c, "alice", "--add", "admin")
    assert status == 0 and "viewer, admin" in out
    status, out, _ = cli(capsys, monkeypatch, "users", "list", "-c", c, "--json")
    assert json.loads(out)[0]["roles"] == ["viewer", "admin"]
    status, _, err = cli(capsys, monkeypatch, *ask[:-2], "--user", "nobody", "--action", "read",
                         "--resource", "docs:/a")  # fmt: skip
    assert status == 1 and "--user: no user 'nobody'" in err


def test_taking_a_role_away_revokes_what_the_user_s_agents_hold(
    config: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deputize.server.storage import tokens

    c = str(config)
    cli(capsys, monkeypatch, "users", "add", "-c", c, "bob", "--role", "admin", "--role", "viewer",
        "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip

    async def issue_and_look() -> None:
        db = Database(async_database_url(database_url))
        try:
            async with db.begin() as conn:
                await tokens.record(
                    conn,
                    tokens.TokenRecord(
                        jti="j1", client_id="agent", subject="bob", issued_at=1,
                        expires_at=2**40, kind=tokens.DELEGATION, actor="agent",
                    ),
                )  # fmt: skip
        finally:
            await db.dispose()

    asyncio.run(issue_and_look())
    status, out, _ = cli(capsys, monkeypatch, "users", "roles", "-c", c, "bob", "--add", "editor")
    assert status == 0 and "revoked" not in out  # adding takes nothing away
    status, out, _ = cli(capsys, monkeypatch, "users", "roles", "-c", c, "bob", "--remove", "admin")
    assert status == 0 and "1 token(s) acting for them were revoked" in out

    async def revoked() -> int | None:
        db = Database(async_database_url(database_url))
        try:
            async with db.begin() as conn:
                record = await tokens.get(conn, "j1")
                assert record is not None
                return record.revoked_at
        finally:
            await db.dispose()

    assert asyncio.run(revoked()) is not None
    status, _, err = cli(capsys, monkeypatch, "users", "roles", "-c", c, "ghost", "--add", "x")
    assert status == 1 and "no user 'ghost'" in err
