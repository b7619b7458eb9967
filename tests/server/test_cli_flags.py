"""The command line speaks in the flags the user typed: errors name ``--scope``, not the config
key behind it; flags that cannot go together are refused by argparse; a bad value of a flag is
one line, never a traceback.  In-process through ``main()``, and a few through the installed
``deputize`` script to see what a user sees on stderr."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deputize.keys import SigningKey
from deputize.server.cli import main
from deputize.server.clients.secrets import MIN_SECRET_LENGTH, hash_secret
from deputize.server.settings import (
    ENV_CLIENT_SECRET_PREFIX,
    ENV_DATABASE_URL,
    ENV_ISSUER,
    ConfigError,
    load_settings,
)

from support import write_config

SCRIPT = Path(sys.executable).with_name("deputize")


pytestmark = pytest.mark.usefixtures("no_deputize_environment")


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Path:
    """A config on an SQLite file, for refusals that come before any database work."""
    return write_config(tmp_path / "deputize.yaml", f"sqlite:///{tmp_path / 'd.db'}")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """argparse's own refusal: exit status 2 and its message on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as raised:
        main(list(argv))
    assert raised.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err


def _script(*argv: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (ENV_ISSUER, ENV_DATABASE_URL) and not k.startswith(ENV_CLIENT_SECRET_PREFIX)
    }
    return subprocess.run(
        [str(SCRIPT), *argv],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- clients add: errors name the flag ----------------------------------------------------------

FLAG_ERRORS = [
    (("--scope", "bad scope"), "--scope: 'bad scope' is not a valid scope token"),
    (("--scope", "read", "--scope", "read"), "--scope: lists a value twice"),
    (("--audience", "not-absolute"), "--audience: 'not-absolute' is not an absolute URI"),
    (
        ("--grant-type", "authorization_code"),
        "--redirect-uri: required for the authorization_code grant",
    ),
    (
        ("--grant-type", "authorization_code", "--redirect-uri", "http://app.example.com/cb"),
        "--redirect-uri: 'http://app.example.com/cb' must use https",
    ),
    (
        ("--post-logout-redirect-uri", "relative/bye"),
        "--post-logout-redirect-uri: 'relative/bye' must be absolute",
    ),
    (("--delegate-agent", "not an id"), "--delegate-agent: 'not an id' is not a client_id"),
    (
        (
            "--agent",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
        ),
        "--grant-type: an agent (--agent) gets no refresh tokens",
    ),
    (
        (
            "--auth-method",
            "none",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--allow-bearer",
        ),
        "--allow-bearer: not allowed for a public client (--auth-method none)",
    ),
    (
        ("--auth-method", "private_key_jwt", "--jwks-uri", "http://keys.example.com/jwks"),
        "--jwks-uri: must use https",
    ),
    (("--jwks-uri", "https://keys.example.com/jwks"), "--jwks-uri: only for --auth-method"),
]


@pytest.mark.parametrize(
    ("flags", "message"),
    FLAG_ERRORS,
    ids=[
        "a bad scope names --scope",
        "a scope given twice names --scope",
        "a relative audience names --audience",
        "a code grant without redirect URI names --redirect-uri",
        "a plain-http redirect URI names --redirect-uri",
        "a relative sign-out URI names --post-logout-redirect-uri",
        "a malformed agent id names --delegate-agent",
        "refresh tokens for an agent name --grant-type and --agent",
        "a bearer public client names --allow-bearer and --auth-method",
        "a plain-http key set URL names --jwks-uri",
        "a key set URL for a secret client names --jwks-uri",
    ],
)
def test_clients_add_errors_name_the_flag(
    sqlite_config: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    status, out, err = _cli(
        capsys, "clients", "add", "--config", str(sqlite_config), "--client-id", "c", *flags
    )
    assert (status, out) == (2, "")
    assert err.startswith(f"deputize: {message}"), err
    assert "command line" not in err
    assert err.count("\n") == 1


def test_a_bad_client_id_names_the_flag(
    sqlite_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _cli(
        capsys, "clients", "add", "--config", str(sqlite_config), "--client-id", "two words"
    )
    assert status == 2
    assert err.startswith("deputize: --client-id: use 1-128 letters")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--no-grant-types", "--grant-type", "client_credentials"),
            "argument --grant-type: not allowed with argument --no-grant-types",
        ),
        (
            ("--agent", "--allow-bearer"),
            "argument --allow-bearer: not allowed with argument --agent",
        ),
        (
            (
                "--auth-method",
                "private_key_jwt",
                "--jwks-file",
                "k.json",
                "--jwks-uri",
                "https://keys.example.com/jwks",
            ),
            "argument --jwks-uri: not allowed with argument --jwks-file",
        ),
        (("--grant-type", "password"), "argument --grant-type: invalid choice: 'password'"),
    ],
    ids=[
        "no grant types and a grant type conflict",
        "an agent with bearer tokens is a conflict",
        "a key file and a key URL conflict",
        "an unknown grant type is refused by argparse",
    ],
)
def test_clients_add_refuses_conflicting_flags(
    sqlite_config: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    err = _usage_error(
        capsys, "clients", "add", "--config", str(sqlite_config), "--client-id", "c", *flags
    )
    assert message in err
    assert not (sqlite_config.parent / "d.db").exists()  # refused before any database work


def test_delegate_agent_must_name_an_agent(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path / "deputize.yaml", database_url))
    app = ("clients", "add", "--config", config, "--client-id", "web", "--auth-method", "none",
           "--grant-type", "authorization_code",
           "--redirect-uri", "http://127.0.0.1:9/cb")  # fmt: skip

    status, _, err = _cli(capsys, *app, "--delegate-agent", "nobody")
    assert status == 2
    assert err == "deputize: --delegate-agent: no client 'nobody' in the config or the database\n"

    status, _, err = _cli(capsys, *app, "--delegate-agent", "svc-basic")  # in the config
    assert status == 2
    assert err.startswith("deputize: --delegate-agent: 'svc-basic' is not an agent")

    base = ("clients", "add", "--config", config, "--client-id")
    assert _cli(capsys, *base, "db-service")[0] == 0
    status, _, err = _cli(capsys, *app, "--delegate-agent", "db-service")  # in the database
    assert status == 2
    assert "'db-service' is not an agent" in err

    key = SigningKey.generate("ES256")
    jwks = tmp_path / "agent.jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public_jwk()]}), encoding="utf-8")
    status, _, err = _cli(
        capsys, *base, "db-agent", "--agent", "--auth-method", "private_key_jwt",
        "--jwks-file", str(jwks), "--grant-type", "urn:ietf:params:oauth:grant-type:token-exchange",
    )  # fmt: skip
    assert status == 0, err
    status, _, err = _cli(
        capsys, *app, "--delegate-agent", "agent-jwt", "--delegate-agent", "db-agent"
    )
    assert (status, err) == (0, "")

    status, out, _ = _cli(capsys, "clients", "list", "--config", config, "--json")
    (web,) = [c for c in json.loads(out) if c["client_id"] == "web"]
    assert web["delegate_agents"] == ["agent-jwt", "db-agent"]


def test_a_client_id_taken_in_the_database_is_a_refusal(
    sqlite_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("clients", "add", "--config", str(sqlite_config), "--client-id", "twice")
    assert _cli(capsys, *base)[0] == 0
    status, out, err = _cli(capsys, *base)
    assert (status, out) == (1, "")
    assert err == "deputize: --client-id: 'twice' is already registered\n"


# --- serve, init, check-config, --version -------------------------------------------------------


@pytest.mark.parametrize(
    "port", ["99999", "-1", "80x"], ids=["above 65535", "negative", "not a number"]
)
def test_serve_refuses_a_port_out_of_range(
    sqlite_config: Path, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    err = _usage_error(capsys, "serve", "--config", str(sqlite_config), "--port", port)
    assert f"argument --port: expected a port from 0 to 65535, got '{port}'" in err


@pytest.mark.parametrize(
    ("output", "cause"),
    [
        ("missing/dir/x.yaml", "No such file or directory"),
        ("a-file/x.yaml", "Not a directory"),
        (".", "Is a directory"),
    ],
    ids=["a missing folder", "a path under a file", "a folder"],
)
def test_init_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, cause: str
) -> None:
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    target = tmp_path / output
    status, out, err = _cli(capsys, "init", "--output", str(target), "--force")
    assert (status, out) == (1, "")
    assert err == f"deputize: --output: cannot write {target}: {cause}\n"


@pytest.mark.parametrize(
    ("issuer", "fault"),
    [
        ("http://as.example.com", "--issuer: must use https"),
        ("https://as.example.com/", "--issuer: must not end with '/'"),
        ("https://as.example.com?x=1", "--issuer: expected an http(s) URL"),
        ("as.example.com", "--issuer: expected an http(s) URL"),
        ("http://[::1", "--issuer: not a URL"),
    ],
    ids=[
        "plain http off loopback",
        "a trailing slash",
        "a query",
        "no scheme",
        "an unclosed IPv6 bracket",
    ],
)
def test_init_validates_the_issuer_as_check_config_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], issuer: str, fault: str
) -> None:
    target = tmp_path / "deputize.yaml"
    status, out, err = _cli(capsys, "init", "--output", str(target), "--issuer", issuer)
    assert (status, out) == (2, "")
    assert err.startswith(f"deputize: {fault}")
    assert not target.exists()

    # The same value in a file: check-config refuses it with the same words, naming the key.
    target.write_text(yaml.safe_dump({"issuer": issuer}), encoding="utf-8")
    status, _, err = _cli(capsys, "check-config", str(target))
    assert status == 2
    assert err.startswith(f"deputize: configuration error: {fault.removeprefix('--')}")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    capsys.readouterr()
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out == f"deputize {version('deputize')}\n"


def test_check_config_takes_config_like_every_command(
    sqlite_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    for argv in (
        ("check-config", "--config", str(sqlite_config)),
        ("check-config", "-c", str(sqlite_config)),
        ("check-config", str(sqlite_config)),
        ("check-config", str(sqlite_config), "--config", str(sqlite_config)),
    ):
        status, out, err = _cli(capsys, *argv)
        assert (status, err) == (0, ""), argv
        assert out.startswith(f"{sqlite_config}: OK")

    other = tmp_path / "other.yaml"
    status, out, err = _cli(capsys, "check-config", str(other), "--config", str(sqlite_config))
    assert (status, out) == (2, "")
    assert (
        err
        == f"deputize: FILE {str(other)!r} and --config {str(sqlite_config)!r} differ; pass one\n"
    )

    monkeypatch.chdir(sqlite_config.parent)  # no file named: deputize.yaml, as everywhere
    status, out, _ = _cli(capsys, "check-config")
    assert (status, out.splitlines()[0]) == (0, "deputize.yaml: OK")


# --- duplicated YAML keys -----------------------------------------------------------------------

DUPLICATES = [
    ("issuer: http://127.0.0.1:8000\nissuer: https://as.example.com\n", "issuer", "lines 1 and 2"),
    (
        "issuer: http://127.0.0.1:8000\ndatabase:\n  url: sqlite:///a.db\n  url: sqlite:///b.db\n",
        "database.url",
        "lines 3 and 4",
    ),
    (
        "issuer: http://127.0.0.1:8000\nclients:\n  - client_id: a\n    scopes: [read]\n"
        "  - client_id: b\n    scopes: [read]\n    scopes: [admin]\n",
        "clients[1].scopes",
        "lines 6 and 7",
    ),
    (
        "issuer: http://127.0.0.1:8000\ndpop: {require_nonce: true, require_nonce: false}\n",
        "dpop.require_nonce",
        "line 2",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "lines"),
    DUPLICATES,
    ids=[
        "a top-level key given twice",
        "a nested key given twice",
        "a key given twice in a list item",
        "a key given twice on one line",
    ],
)
def test_a_key_given_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, path: str, lines: str
) -> None:
    target = tmp_path / "dup.yaml"
    target.write_text(text, encoding="utf-8")
    status, out, err = _cli(capsys, "check-config", str(target))
    assert (status, out) == (2, "")
    assert err == f"deputize: configuration error: {target}: {path}: given twice ({lines})\n"


def test_a_recursive_alias_is_walked_once(tmp_path: Path) -> None:
    """An alias of its own parent: the key check must not chase it for ever."""
    target = tmp_path / "loop.yaml"
    target.write_text("issuer: http://127.0.0.1:8000\nloop: &a [*a]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^loop: unknown key"):
        load_settings(target, env={})


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    """``<<: *anchor`` then one of the anchor's keys: an override YAML allows, not a repeat."""
    digest = hash_secret("s" * MIN_SECRET_LENGTH)
    target = tmp_path / "merge.yaml"
    target.write_text(
        "issuer: http://127.0.0.1:8000\n"
        "clients:\n"
        "  - &svc\n"
        "    client_id: first\n"
        "    token_endpoint_auth_method: client_secret_post\n"
        f"    client_secret_hash: '{digest}'\n"
        "  - <<: *svc\n"
        "    client_id: second\n",
        encoding="utf-8",
    )
    clients = load_settings(target, env={}).clients
    assert [c.client_id for c in clients] == ["first", "second"]
    assert clients[1].client_secret_hash == digest


# --- clients hash-secret, piped ------------------------------------------------------------------


def test_hash_secret_piped_prints_only_the_hash(tmp_path: Path) -> None:
    secret = "piped-secret-0123456789abcdefghijklmnop"
    result = _script("clients", "hash-secret", cwd=tmp_path, stdin=secret + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == hash_secret(secret) + "\n"
    assert result.stderr == "client_secret_hash for the config file:\n"


def test_hash_secret_generate_piped_shows_the_secret_on_stderr(tmp_path: Path) -> None:
    result = _script("clients", "hash-secret", "--generate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    label, secret, label2 = result.stderr.splitlines()
    assert label.startswith("Client secret")
    assert label2 == "client_secret_hash for the config file:"
    assert len(secret) >= MIN_SECRET_LENGTH
    assert result.stdout == hash_secret(secret) + "\n"


def test_hash_secret_in_process_keeps_stdout_to_the_hash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "stdin-secret-0123456789abcdefghijklmno"
    monkeypatch.setattr(sys, "stdin", io.StringIO(secret + "\n"))
    status, out, err = _cli(capsys, "clients", "hash-secret")
    assert (status, out) == (0, hash_secret(secret) + "\n")
    assert secret not in err


# --- what a user sees: one line, no traceback ---------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (("init", "--output", "missing/x.yaml"), "deputize: --output: cannot write missing/x.yaml"),
        (("init", "--output", "x.yaml", "--issuer", "ftp://x"), "deputize: --issuer: expected"),
        (("clients", "add", "--client-id", "c", "--scope", "a b"), "deputize: --scope: 'a b'"),
    ],
    ids=["init into a missing folder", "init with a bad issuer", "clients add with a bad scope"],
)
def test_the_installed_command_says_one_line(
    sqlite_config: Path, argv: tuple[str, ...], line: str
) -> None:
    result = _script(*argv, cwd=sqlite_config.parent)
    assert result.returncode in (1, 2)
    assert result.stdout == ""
    assert result.stderr.startswith(line)
    assert result.stderr.count("\n") == 1, result.stderr
