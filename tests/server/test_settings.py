"""Configuration: validation errors name the key at fault, defaults, environment overrides and
the mapping of database URLs onto the async drivers."""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from deputize.keys import SigningKey
from deputize.server.clients.secrets import hash_secret, verify_secret
from deputize.server.settings import (
    ConfigError,
    Settings,
    async_database_url,
    load_settings,
    parse_settings,
)

ISSUER = "https://as.example.com"
SECRET = "x-secret-0123456789abcdefghijklmnopqrstu"
AGENT_KEY = SigningKey.generate("ES256")

Config = dict[str, Any]


def _base() -> Config:
    """A valid configuration with one client of each authentication method."""
    return {
        "issuer": ISSUER,
        "clients": [
            {
                "client_id": "svc-x",
                "token_endpoint_auth_method": "client_secret_basic",
                "client_secret_hash": hash_secret(SECRET),
                "scopes": ["read"],
                "audiences": ["https://api.example.com"],
            },
            {
                "client_id": "agent-y",
                "agent": True,
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [AGENT_KEY.public_jwk()]},
            },
        ],
    }


def _set(path: str, value: Any) -> Callable[[Config], None]:
    """A mutation setting ``a.b[1].c``-style ``path`` (``[i]`` indexes a list) to ``value``."""

    def apply(config: Config) -> None:
        parts = path.replace("[", ".").replace("]", "").split(".")
        target: Any = config
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return apply


def _drop(path: str) -> Callable[[Config], None]:
    def apply(config: Config) -> None:
        index, _, key = path.partition(".")
        del config["clients"][int(index)][key]

    return apply


def _both_jwks(config: Config) -> None:
    config["clients"][1]["jwks_uri"] = "https://agents.example.com/jwks.json"


def _duplicate(config: Config) -> None:
    config["clients"].append(copy.deepcopy(config["clients"][0]))


INVALID: list[tuple[Callable[[Config], None], dict[str, str], str]] = [
    (
        _set("clients[1].token_endpoint_auth_method", "client_secret_jwt"),
        {},
        "clients[1].token_endpoint_auth_method: expected one of",
    ),
    (
        _set("tokens.access_token_lifetime", 5),
        {},
        "tokens.access_token_lifetime: expected a whole number from 10 to 86400",
    ),
    (
        _set("tokens.access_token_lifetime", True),
        {},
        "tokens.access_token_lifetime: expected a whole number",
    ),
    (_set("keys.jwks_max_age", "300"), {}, "keys.jwks_max_age: expected a whole number"),
    (_set("dpop.require_nonce", "yes"), {}, "dpop.require_nonce: expected true or false"),
    (_set("dpop.unknown_key", 1), {}, "dpop.unknown_key: unknown key"),
    (_set("issuer_url", ISSUER), {}, "issuer_url: unknown key"),
    (_set("clients[0].secret", SECRET), {}, "clients[0].secret: unknown key"),
    (_set("tokens", ["ES256"]), {}, "tokens: expected a mapping"),
    (_set("tokens.signing_alg", "HS256"), {}, "tokens.signing_alg: expected one of"),
    (_set("issuer", ISSUER + "/"), {}, "issuer: must not end with '/'"),
    (_set("issuer", "http://as.example.com"), {}, "issuer: must use https"),
    (_set("issuer", ISSUER + "?tenant=1"), {}, "issuer: expected an http(s) URL"),
    (_set("issuer", "as.example.com"), {}, "issuer: expected an http(s) URL"),
    (_drop("0.client_secret_hash"), {}, "clients[0].client_secret_hash: required"),
    (
        _set("clients[0].client_secret_hash", SECRET),
        {},
        "clients[0].client_secret_hash: expected 'sha256:...'",
    ),
    (
        _set("clients[0].jwks", {"keys": [AGENT_KEY.public_jwk()]}),
        {},
        "clients[0]: jwks/jwks_uri are only for private_key_jwt clients",
    ),
    (_drop("1.jwks"), {}, "clients[1]: private_key_jwt needs exactly one of jwks or jwks_uri"),
    (_both_jwks, {}, "clients[1]: private_key_jwt needs exactly one of jwks or jwks_uri"),
    (
        _set("clients[1].jwks", {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
        {},
        "clients[1].jwks:",
    ),
    (
        _set("clients[1].jwks_uri", "http://agents.example.com/jwks.json"),
        {},
        "clients[1].jwks_uri: must use https",
    ),
    (
        _set("clients[1].dpop_bound_access_tokens", False),
        {},
        "clients[1].dpop_bound_access_tokens: must be true for an agent",
    ),
    (_duplicate, {}, "clients[2].client_id: 'svc-x' is defined twice"),
    (_set("clients[0].client_id", "svc x"), {}, "clients[0].client_id: use 1-128 letters"),
    (
        _set("clients[0].scopes", ["read", "write all"]),
        {},
        "clients[0].scopes: 'write all' is not a valid scope token",
    ),
    (_set("clients[0].scopes", ["read", "read"]), {}, "clients[0].scopes: lists a value twice"),
    (
        _set("clients[0].scopes", ['say"hi"']),
        {},
        "clients[0].scopes: 'say\"hi\"' is not a valid scope token",
    ),
    (
        _set("clients[0].audiences", ["/api"]),
        {},
        "clients[0].audiences: '/api' is not an absolute URI",
    ),
    (
        _set("clients[0].grant_types", ["password"]),
        {},
        "clients[0].grant_types: expected values from client_credentials",
    ),
    (_set("clients[0].agent", "no"), {}, "clients[0].agent: expected true or false"),
    (_set("clients", {"client_id": "svc-x"}), {}, "clients: expected a list"),
    (
        lambda config: None,
        {"DEPUTIZE_CLIENT_SECRET_SVC_X": "too-short"},
        "DEPUTIZE_CLIENT_SECRET_SVC_X: client secrets must be at least 32 characters",
    ),
    (
        lambda config: None,
        {"DEPUTIZE_ISSUER": "http://deputize.internal"},
        "issuer: must use https",
    ),
    (_set("database.url", "mysql://db.example.com/deputize"), {}, "database.url: unsupported"),
    (_set("database.url", "sqlite:///:memory:"), {}, "database.url: an in-memory SQLite"),
    (
        lambda config: None,
        {"DEPUTIZE_DATABASE_URL": "sqlite:///:memory:"},
        "DEPUTIZE_DATABASE_URL: an in-memory SQLite",
    ),
    (_set("database.pool", 5), {}, "database.pool: unknown key"),
    (
        _set("trusted_issuers", [{"issuer": "https://login.example.com", "audience": "d"}]),
        {},
        "trusted_issuers[0]: needs exactly one of jwks_uri or jwks",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "env", "message"),
    INVALID,
    ids=[
        "rejects an unknown client authentication method",
        "rejects a token lifetime below the minimum",
        "rejects a boolean where a number is expected",
        "rejects a quoted number",
        "rejects a string where a boolean is expected",
        "rejects an unknown key in a section",
        "rejects an unknown top-level key",
        "rejects an unknown key in a client",
        "rejects a list where a section is expected",
        "rejects a symmetric signing algorithm",
        "rejects an issuer with a trailing slash",
        "rejects a plain http issuer on a public host",
        "rejects an issuer with a query",
        "rejects an issuer that is not a URL",
        "rejects a secret client without a secret hash",
        "rejects a plain secret in client_secret_hash",
        "rejects a jwks on a secret client",
        "rejects private_key_jwt without keys",
        "rejects private_key_jwt with both jwks and jwks_uri",
        "rejects a jwks holding no usable public key",
        "rejects a plain http jwks_uri on a public host",
        "rejects an agent that may hold bearer tokens",
        "rejects a client_id defined twice",
        "rejects a client_id with a space",
        "rejects a scope with a space",
        "rejects a scope listed twice",
        "rejects a scope with a double quote",
        "rejects a relative audience",
        "rejects an unsupported grant type",
        "rejects a non-boolean agent flag",
        "rejects clients given as a mapping",
        "rejects a short client secret from the environment",
        "validates an issuer from the environment",
        "rejects an unsupported database scheme",
        "rejects an in-memory SQLite database",
        "names the environment variable for a bad database URL from it",
        "rejects an unknown key in the database section",
        "rejects a trusted issuer without keys",
    ],
)
def test_invalid_configuration_names_the_key(
    mutate: Callable[[Config], None], env: dict[str, str], message: str
) -> None:
    config = _base()
    mutate(config)
    with pytest.raises(ConfigError) as raised:
        parse_settings(config, env=env)
    assert message in str(raised.value)
    assert str(raised.value).startswith(message.split(":")[0] + ":")


def test_private_key_in_jwks_is_refused() -> None:
    config = _base()
    private = {**AGENT_KEY.public_jwk(), "d": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
    config["clients"][1]["jwks"] = {"keys": [private]}
    with pytest.raises(ConfigError, match=r"^clients\[1\]\.jwks: not a usable public JWK Set"):
        parse_settings(config, env={})


def test_missing_issuer_is_required() -> None:
    with pytest.raises(ConfigError, match=r"^issuer: required"):
        parse_settings({"clients": []}, env={})


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^top level: expected a mapping, got list"):
        parse_settings([ISSUER], env={})


def test_defaults_are_applied() -> None:
    settings = parse_settings({"issuer": ISSUER}, env={})
    assert settings == Settings(issuer=ISSUER)
    assert settings.database_url == "sqlite:///deputize.db"
    assert settings.signing_alg == "ES256"
    assert settings.access_token_lifetime == 300
    assert settings.dpop_require_nonce is True
    assert settings.jwks_max_age == 300
    assert settings.key_refresh_interval == 30
    assert settings.max_body_bytes == 16 * 1024
    assert settings.clients == ()
    assert settings.trusted_issuers == ()
    assert settings.token_endpoint == ISSUER + "/token"


def test_client_defaults_are_applied() -> None:
    settings = parse_settings(_base(), env={})
    service, agent = settings.clients
    assert service.grant_types == ("client_credentials",)
    assert service.dpop_bound_access_tokens is True
    assert service.agent is service.can_introspect is False
    assert agent.agent is True and agent.dpop_bound_access_tokens is True
    assert agent.client_secret_hash is None
    assert "client_secret_hash" not in service.to_record()


def test_explicit_values_are_kept() -> None:
    config = _base() | {
        "tokens": {"signing_alg": "EdDSA", "access_token_lifetime": 600},
        "dpop": {"require_nonce": False, "proof_max_age": 30, "nonce_lifetime": 120},
        "client_authentication": {"assertion_max_lifetime": 120},
        "keys": {"jwks_max_age": 0, "refresh_interval": 5},
        "http": {"max_body_bytes": 4096},
    }
    settings = parse_settings(config, env={})
    assert (settings.signing_alg, settings.access_token_lifetime) == ("EdDSA", 600)
    assert settings.dpop_require_nonce is False
    assert (settings.dpop_proof_max_age, settings.dpop_nonce_lifetime) == (30, 120)
    assert settings.client_assertion_max_lifetime == 120
    assert (settings.jwks_max_age, settings.key_refresh_interval) == (0, 5)
    assert settings.max_body_bytes == 4096


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1:8000", "http://localhost:9000", "http://[::1]:8000", ISSUER + "/tenant"],
    ids=[
        "accepts plain http on the IPv4 loopback",
        "accepts plain http on localhost",
        "accepts plain http on the IPv6 loopback",
        "accepts an https issuer with a path",
    ],
)
def test_acceptable_issuers(issuer: str) -> None:
    assert parse_settings({"issuer": issuer}, env={}).issuer == issuer


def test_environment_overrides_issuer_and_database() -> None:
    env = {
        "DEPUTIZE_ISSUER": "https://auth.example.org",
        "DEPUTIZE_DATABASE_URL": "postgresql://deputize:pw@db.example.org/deputize",
    }
    config = _base() | {"database": {"url": "sqlite:///ignored.db"}}
    settings = parse_settings(config, env=env)
    assert settings.issuer == "https://auth.example.org"
    assert settings.database_url == env["DEPUTIZE_DATABASE_URL"]
    assert settings.async_database_url == "postgresql+asyncpg://deputize:pw@db.example.org/deputize"


def test_client_secret_from_environment() -> None:
    config = _base()
    del config["clients"][0]["client_secret_hash"]
    env_secret = "env-secret-0123456789abcdefghijklmnopq"
    settings = parse_settings(config, env={"DEPUTIZE_CLIENT_SECRET_SVC_X": env_secret})
    stored = settings.clients[0].client_secret_hash
    assert stored is not None and stored != env_secret
    assert verify_secret(env_secret, stored)


def test_environment_secret_replaces_file_hash() -> None:
    env_secret = "env-secret-0123456789abcdefghijklmnopq"
    settings = parse_settings(_base(), env={"DEPUTIZE_CLIENT_SECRET_SVC_X": env_secret})
    stored = settings.clients[0].client_secret_hash
    assert stored is not None
    assert verify_secret(env_secret, stored)
    assert not verify_secret(SECRET, stored)


def test_load_settings_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "deputize.yaml"
    path.write_text(f"issuer: {ISSUER}\n", encoding="utf-8")
    monkeypatch.setenv("DEPUTIZE_ISSUER", "https://from-env.example.com")
    assert load_settings(path).issuer == "https://from-env.example.com"
    assert load_settings(path, env={}).issuer == ISSUER


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(f"issuer: {ISSUER}\ntokens:\n  signing_alg: [ES256\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid YAML at line 4, column 1") as raised:
        load_settings(path, env={})
    assert str(path) in str(raised.value)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="cannot read the configuration file") as raised:
        load_settings(path, env={})
    assert str(path) in str(raised.value)


def test_empty_file_asks_for_the_issuer(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^issuer: required"):
        load_settings(path, env={})


def test_shipped_starter_validates_and_shows_the_defaults() -> None:
    starter = resources.files("deputize.server") / "starter.yaml"
    with resources.as_file(starter) as path:
        settings = load_settings(path, env={})
    assert settings.issuer == "http://127.0.0.1:8000"
    # The starter says "the values shown are the defaults": it must equal the built-in ones.
    assert settings == Settings(issuer="http://127.0.0.1:8000")


def test_relative_sqlite_path_is_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = folder / "deputize.yaml"
    path.write_text(f"issuer: {ISSUER}\ndatabase:\n  url: sqlite:///data/d.db\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    settings = load_settings(path, env={})
    expected = (folder.resolve() / "data" / "d.db").as_posix()
    assert settings.async_database_url == f"sqlite+aiosqlite:///{expected}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/deputize.db", "sqlite+aiosqlite:////var/lib/deputize.db"),
        ("sqlite+aiosqlite:////srv/d.db", "sqlite+aiosqlite:////srv/d.db"),
        ("postgresql://u@db:5432/dep", "postgresql+asyncpg://u@db:5432/dep"),
        ("postgres://u:p@db/dep", "postgresql+asyncpg://u:p@db/dep"),
        ("postgresql+asyncpg://db/dep", "postgresql+asyncpg://db/dep"),
    ],
    ids=[
        "keeps an absolute SQLite path",
        "accepts the explicit aiosqlite driver",
        "maps postgresql to asyncpg",
        "maps the postgres alias to asyncpg",
        "accepts the explicit asyncpg driver",
    ],
)
def test_async_database_url(url: str, expected: str) -> None:
    assert async_database_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", "in-memory SQLite"),
        ("sqlite://", "in-memory SQLite"),
        ("mysql://db/deputize", "unsupported scheme 'mysql'"),
        ("postgresql+psycopg://db/deputize", "unsupported scheme 'postgresql+psycopg'"),
    ],
    ids=[
        "refuses an in-memory SQLite database",
        "refuses SQLite without a file",
        "refuses MySQL",
        "refuses a synchronous PostgreSQL driver",
    ],
)
def test_unusable_database_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^database\.url: ") as raised:
        async_database_url(url)
    assert message in str(raised.value)
