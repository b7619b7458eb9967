"""The ``deputize`` command line: in-process through ``main()`` against a real database, and the
installed console script for every command's ``--help``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deputize.keys import SigningKey
from deputize.server.cli import main
from deputize.server.clients.secrets import MIN_SECRET_LENGTH, hash_secret
from deputize.server.settings import (
    load_settings,
)

from support import API, SECRETS, ServerFactory, standard_clients, write_config

SCRIPT = Path(sys.executable).with_name("deputize")


pytestmark = pytest.mark.usefixtures("no_deputize_environment")


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    """A config file on the test's database, with the standard clients defined in it."""
    return write_config(tmp_path / "deputize.yaml", database_url)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything printed before
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# --- --help from the installed script ----------------------------------------------------------

HELP = [
    ((), "usage: deputize"),
    (("serve",), "usage: deputize serve"),
    (("init",), "usage: deputize init"),
    (("check-config",), "usage: deputize check-config"),
    (("migrate",), "usage: deputize migrate"),
    (("keys",), "usage: deputize keys"),
    (("keys", "list"), "usage: deputize keys list"),
    (("keys", "rotate"), "usage: deputize keys rotate"),
    (("clients",), "usage: deputize clients"),
    (("clients", "add"), "usage: deputize clients add"),
    (("clients", "list"), "usage: deputize clients list"),
    (("clients", "remove"), "usage: deputize clients remove"),
    (("clients", "hash-secret"), "usage: deputize clients hash-secret"),
]


@pytest.mark.parametrize(
    ("command", "usage"),
    HELP,
    ids=[
        "the program prints its usage",
        "serve prints its usage",
        "init prints its usage",
        "check-config prints its usage",
        "migrate prints its usage",
        "keys prints its usage",
        "keys list prints its usage",
        "keys rotate prints its usage",
        "clients prints its usage",
        "clients add prints its usage",
        "clients list prints its usage",
        "clients remove prints its usage",
        "clients hash-secret prints its usage",
    ],
)
def test_help(command: tuple[str, ...], usage: str) -> None:
    result = subprocess.run(
        [str(SCRIPT), *command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage)
    assert "--help" in result.stdout
    assert result.stderr == ""


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["frobnicate"])
    assert raised.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


# --- init / check-config / migrate -------------------------------------------------------------


def test_init_writes_a_file_check_config_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "deputize.yaml"
    status, out, _ = _cli(capsys, "init", "--output", str(target))
    assert status == 0
    assert f"Wrote {target}" in out
    status, out, err = _cli(capsys, "check-config", str(target))
    assert (status, err) == (0, "")
    assert f"{target}: OK" in out
    assert "issuer            http://127.0.0.1:8000" in out
    assert "database          sqlite:///deputize.db" in out
    assert "static clients    0" in out


def test_init_sets_the_issuer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "deputize.yaml"
    status, _, _ = _cli(
        capsys, "init", "--output", str(target), "--issuer", "https://as.example.com"
    )
    assert status == 0
    assert load_settings(target, env={}).issuer == "https://as.example.com"


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "deputize.yaml"
    target.write_text("issuer: https://mine.example.com\n", encoding="utf-8")
    status, out, err = _cli(capsys, "init", "--output", str(target))
    assert status == 1
    assert out == ""
    assert "--force" in err
    assert target.read_text(encoding="utf-8") == "issuer: https://mine.example.com\n"

    status, _, _ = _cli(capsys, "init", "--output", str(target), "--force")
    assert status == 0
    assert load_settings(target, env={}).issuer == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("issuer: http://127.0.0.1:8000\ntokens:\n  access_token_lifetime: 5\n", "tokens."),
        ("issuer: http://127.0.0.1:8000\ndpop:\n  nonce: true\n", "dpop.nonce: unknown key"),
        ("issuer: https://as.example.com/\n", "issuer: must not end with '/'"),
        ("issuer: http://127.0.0.1:8000\ndatabase:\n  url: mysql://db/x\n", "database.url:"),
        ("issuer: [http://127.0.0.1:8000\n", "not valid YAML at line 2"),
    ],
    ids=[
        "names a number out of range",
        "names an unknown key",
        "names a bad issuer",
        "names an unsupported database",
        "names the line of a YAML syntax error",
    ],
)
def test_check_config_rejects_a_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fault: str
) -> None:
    target = tmp_path / "broken.yaml"
    target.write_text(text, encoding="utf-8")
    status, out, err = _cli(capsys, "check-config", str(target))
    assert status == 2
    assert out == ""
    assert err.startswith("deputize: configuration error: ")
    assert fault in err


@pytest.mark.parametrize(
    ("url", "hidden", "shown"),
    [
        ("postgresql://deputize:s3cr3t-pw@db.example.com/deputize", "s3cr3t-pw", "deputize:***@"),
        ("postgresql://deputize:p@ss:w0rd@db.example.com/dep", "p@ss:w0rd", "@db.example.com/"),
        ("postgresql://deputize@db.example.com/dep?password=s3cr3t-pw", "s3cr3t-pw", "password="),
    ],
    ids=[
        "redacts the password in the userinfo",
        "redacts a password containing @ and :",
        "redacts a password given as a query parameter",
    ],
)
def test_check_config_redacts_database_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, hidden: str, shown: str
) -> None:
    target = write_config(tmp_path / "deputize.yaml", url)
    status, out, _ = _cli(capsys, "check-config", str(target))
    assert status == 0
    assert hidden not in out
    assert "***" in out
    assert shown in out
    assert "static clients    5" in out


def test_check_config_redacts_a_password_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write_config(tmp_path / "deputize.yaml", "sqlite:///d.db")
    monkeypatch.setenv("DEPUTIZE_DATABASE_URL", "postgres://app:hunter2-pw@db/deputize")
    status, out, _ = _cli(capsys, "check-config", str(target))
    assert status == 0
    assert "hunter2-pw" not in out
    assert "postgres://app:***@db/deputize" in out


def test_migrate_is_repeatable(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        status, out, err = _cli(capsys, "migrate", "--config", str(config_file))
        assert (status, err) == (0, "")
        assert "up to date" in out


def test_relative_sqlite_database_lands_next_to_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = write_config(folder / "deputize.yaml", "sqlite:///state.db")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status, _, _ = _cli(capsys, "migrate", "--config", str(config))
    assert status == 0
    assert (folder / "state.db").is_file()
    assert list(elsewhere.iterdir()) == []


# --- clients ------------------------------------------------------------------------------------


def _added_secret(out: str) -> str:
    lines = out.strip().splitlines()
    assert lines[-2].startswith("Client secret (shown once")
    return lines[-1]


def test_added_client_gets_tokens_from_a_live_server(
    config_file: Path, server_factory: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _cli(
        capsys,
        "clients",
        "add",
        "--config",
        str(config_file),
        "--client-id",
        "cli-svc",
        "--name",
        "Added from the CLI",
        "--scope",
        "read",
        "--scope",
        "write",
        "--audience",
        API,
    )
    assert (status, err) == (0, "")
    assert "Added client cli-svc (client_secret_basic)." in out
    secret = _added_secret(out)
    assert len(secret) >= MIN_SECRET_LENGTH
    assert out.count(secret) == 1  # shown once, and only the secret itself

    server = server_factory.start()
    holder = SigningKey.generate("ES256")
    response = server.client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "write"},
        headers={"DPoP": server.proof(holder), **server.basic("cli-svc", secret)},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["scope"]) == ("DPoP", "write")

    wrong = server.client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"DPoP": server.proof(holder), **server.basic("cli-svc", secret[::-1])},
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


def test_add_refuses_a_duplicate(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("clients", "add", "--config", str(config_file), "--client-id")
    assert _cli(capsys, *base, "twice")[0] == 0
    status, out, err = _cli(capsys, *base, "twice")
    assert status == 1
    assert out == ""
    assert "--client-id: 'twice' is already registered" in err

    status, _, err = _cli(capsys, *base, "svc-basic")
    assert status == 1
    assert "--client-id: 'svc-basic' is already defined in" in err


def test_add_agent_with_jwks_file(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = SigningKey.generate("EdDSA")
    jwks = tmp_path / "agent.jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public_jwk()]}), encoding="utf-8")
    base = ("clients", "add", "--config", str(config_file), "--client-id", "cli-agent", "--agent")
    status, _, err = _cli(capsys, *base, "--auth-method", "private_key_jwt")
    assert status == 1
    assert "exactly one of --jwks-file or --jwks-uri" in err

    status, out, _ = _cli(
        capsys, *base, "--auth-method", "private_key_jwt", "--jwks-file", str(jwks)
    )
    assert status == 0
    assert "secret" not in out.lower()

    status, out, _ = _cli(capsys, "clients", "list", "--config", str(config_file), "--json")
    assert status == 0
    (agent,) = [c for c in json.loads(out) if c["client_id"] == "cli-agent"]
    assert agent["jwks"] == {"keys": [key.public_jwk()]}
    assert agent["agent"] is True and agent["dpop_bound_access_tokens"] is True


def test_add_refuses_a_bearer_agent(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["clients", "add", "--config", str(config_file), "--client-id", "a", "--agent",
              "--allow-bearer"])  # fmt: skip
    assert raised.value.code == 2
    assert "argument --allow-bearer: not allowed with argument --agent" in capsys.readouterr().err


def test_list_shows_config_and_database_clients(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, _ = _cli(
        capsys,
        *("clients", "add", "--config", str(config_file), "--client-id", "cli-rs"),
        "--can-introspect",
        "--grant-type",
        "client_credentials",
        "--allow-bearer",
    )
    assert status == 0

    status, out, _ = _cli(capsys, "clients", "list", "--config", str(config_file))
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.strip().splitlines()[1:]}
    assert set(rows) == {c["client_id"] for c in standard_clients()} | {"cli-rs"}
    assert rows["svc-basic"][1:4] == ["config", "client_secret_basic", "yes"]
    assert rows["svc-basic"][4:] == ["read", "write"]
    assert rows["cli-rs"][1:4] == ["database", "client_secret_basic", "no"]

    status, out, _ = _cli(capsys, "clients", "list", "--config", str(config_file), "--json")
    assert status == 0
    listed = {c["client_id"]: c for c in json.loads(out)}
    assert listed["cli-rs"]["source"] == "database"
    assert listed["cli-rs"]["can_introspect"] is True
    assert listed["agent-jwt"]["source"] == "config"
    assert all("client_secret_hash" not in c for c in listed.values())
    assert all(hash_secret(secret) not in out for secret in SECRETS.values())


def test_list_without_clients(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "empty.yaml", f"sqlite:///{tmp_path / 'e.db'}", clients=[])
    status, out, _ = _cli(capsys, "clients", "list", "--config", str(config))
    assert status == 0
    assert out.startswith("No clients.")
    status, out, _ = _cli(capsys, "clients", "list", "--config", str(config), "--json")
    assert json.loads(out) == []


def test_remove(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(config_file)
    assert _cli(capsys, "clients", "add", "--config", config, "--client-id", "temp")[0] == 0

    status, out, _ = _cli(capsys, "clients", "remove", "--config", config, "temp")
    assert status == 0
    assert "Removed client temp." in out
    status, out, _ = _cli(capsys, "clients", "list", "--config", config, "--json")
    assert "temp" not in {c["client_id"] for c in json.loads(out)}

    status, _, err = _cli(capsys, "clients", "remove", "--config", config, "temp")
    assert status == 1
    assert "no client 'temp' in the database" in err


def test_remove_refuses_a_config_client(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _cli(capsys, "clients", "remove", "--config", str(config_file), "agent-jwt")
    assert status == 1
    assert "(clients[3])" in err
    assert "remove it there" in err


def test_hash_secret_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "stdin-secret-0123456789abcdefghijklmno"
    monkeypatch.setattr(sys, "stdin", io.StringIO(secret + "\n"))
    status, out, _ = _cli(capsys, "clients", "hash-secret")
    assert status == 0
    assert out.strip().splitlines()[-1] == hash_secret(secret)
    assert secret not in out


def test_hash_secret_rejects_a_short_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("x" * (MIN_SECRET_LENGTH - 1) + "\n"))
    status, out, err = _cli(capsys, "clients", "hash-secret")
    assert status == 1
    assert out == ""
    assert f"at least {MIN_SECRET_LENGTH} characters" in err


def test_hash_secret_generates(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _cli(capsys, "clients", "hash-secret", "--generate")
    assert status == 0
    # Not a terminal: the hash alone on stdout, the secret with its words on stderr.
    secret, digest = err.strip().splitlines()[1], out.strip()
    assert len(secret) >= MIN_SECRET_LENGTH
    assert digest == hash_secret(secret)


def test_generated_hash_is_accepted_in_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _cli(capsys, "clients", "hash-secret", "--generate")
    assert status == 0
    digest = out.strip().splitlines()[-1]
    client = {
        "client_id": "new",
        "token_endpoint_auth_method": "client_secret_post",
        "client_secret_hash": digest,
    }
    config = write_config(tmp_path / "d.yaml", "sqlite:///d.db", clients=[client])
    status, out, _ = _cli(capsys, "check-config", str(config))
    assert status == 0
    assert "static clients    1" in out


# --- keys ---------------------------------------------------------------------------------------


def _keys(capsys: pytest.CaptureFixture[str], config: Path) -> list[dict[str, Any]]:
    status, out, _ = _cli(capsys, "keys", "list", "--config", str(config), "--json")
    assert status == 0
    listed: list[dict[str, Any]] = json.loads(out)
    return listed


def test_keys_list_and_rotate(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _cli(capsys, "keys", "list", "--config", str(config_file))
    assert status == 0
    header, *lines = out.strip().splitlines()
    assert header.split()[:3] == ["KID", "ALG", "STATE"]
    assert sorted(line.split()[2] for line in lines) == ["active", "next"]
    before = {k["state"]: k for k in _keys(capsys, config_file)}
    assert set(before) == {"active", "next"}
    assert all(k["in_jwks"] for k in before.values())

    status, out, err = _cli(capsys, "keys", "rotate", "--config", str(config_file))
    assert status == 1
    assert out == ""
    assert "--force" in err
    assert {k["kid"] for k in _keys(capsys, config_file)} == {k["kid"] for k in before.values()}

    status, out, err = _cli(capsys, "keys", "rotate", "--config", str(config_file), "--force")
    assert (status, err) == (0, "")
    assert f"Rotated: {before['next']['kid']} (ES256) now signs." in out

    after = _keys(capsys, config_file)
    states = {k["kid"]: k["state"] for k in after}
    assert states[before["active"]["kid"]] == "retired"
    assert states[before["next"]["kid"]] == "active"
    assert sorted(states.values()) == ["active", "next", "retired"]
    (retired,) = [k for k in after if k["state"] == "retired"]
    assert retired["in_jwks"] is True
    assert retired["publish_until"] > retired["retired_at"]

    status, out, _ = _cli(capsys, "keys", "list", "--config", str(config_file))
    assert status == 0
    (retired_line,) = [line for line in out.splitlines() if " retired " in line]
    assert retired_line.startswith(before["active"]["kid"])


def test_commands_report_a_missing_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.yaml")
    for argv in (
        ("keys", "list", "--config", missing),
        ("clients", "list", "--config", missing),
        ("migrate", "--config", missing),
        ("check-config", missing),
    ):
        status, _, err = _cli(capsys, *argv)
        assert status == 2, argv
        assert "cannot read the configuration file" in err
