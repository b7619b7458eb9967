"""Commands with a database they cannot use: one line naming ``database.url`` and the cause,
exit status 1, never a driver's traceback, and quickly.  PostgreSQL "down" is a loopback port
nobody listens on, "not answering" a socket that accepts and never speaks; the shared server
is never stopped."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deputize.server.cli import main
from deputize.server.settings import ENV_DATABASE_URL
from deputize.server.storage.outage import unavailable_cause

from support import POSTGRES_ENV

COMMANDS = [
    ("migrate",),
    ("clients", "list"),
    ("users", "list"),
    ("audit",),
    ("keys", "list"),
]
COMMAND_IDS = ["migrate", "clients list", "users list", "audit", "keys list"]


pytestmark = pytest.mark.usefixtures("no_deputize_environment")


def closed_port() -> int:
    """A loopback port that was free a moment ago: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def postgres_base() -> str:
    """``postgresql://user@host:port`` of the shared test server (skip without one)."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} to run PostgreSQL tests")
    return url.replace("postgresql+asyncpg://", "postgresql://").rpartition("/")[0]


def bad_database(kind: str, tmp_path: Path) -> tuple[str, str]:
    """(database URL, what the one line must say) for each kind of bad database."""
    if kind == "missing folder":
        return f"sqlite:///{tmp_path}/missing/d.db", f"folder {tmp_path}/missing does not exist"
    if kind == "under a file":
        (tmp_path / "a-file").write_text("", encoding="utf-8")
        return f"sqlite:///{tmp_path}/a-file/d.db", f"{tmp_path}/a-file is not a folder"
    if kind == "not a database":
        (tmp_path / "junk.db").write_bytes(b"not SQLite at all, " * 100)
        return f"sqlite:///{tmp_path}/junk.db", "file is not a database"
    if kind == "postgres down":
        return f"postgresql://postgres@127.0.0.1:{closed_port()}/x", "connection refused"
    if kind == "no such database":
        return f"{postgres_base()}/deputize_missing_xyz", 'database "deputize_missing_xyz" does not'
    assert kind == "no such role"
    host = postgres_base().rpartition("@")[2]
    return f"postgresql://nobody_here:pw@{host}/test", 'role "nobody_here" does not exist'


KINDS = [
    "missing folder",
    "under a file",
    "not a database",
    "postgres down",
    pytest.param("no such database", marks=pytest.mark.postgres),
    pytest.param("no such role", marks=pytest.mark.postgres),
]


def _config(tmp_path: Path, url: str, **database: object) -> Path:
    path = tmp_path / "deputize.yaml"
    config = {"issuer": "http://127.0.0.1:8000", "database": {"url": url, **database}}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_command_on_a_bad_database_says_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, command: tuple[str, ...]
) -> None:
    url, cause = bad_database(kind, tmp_path)
    config = _config(tmp_path, url)
    capsys.readouterr()
    started = time.monotonic()
    status = main([*command, "--config", str(config)])
    out, err = capsys.readouterr()
    assert time.monotonic() - started < 10
    assert (status, out) == (1, "")
    assert err.startswith(f"deputize: database.url ({url.replace(':pw@', ':***@')}): "), err
    assert cause in err
    assert err.count("\n") == 1, err


def test_the_environment_variable_is_named_when_it_gave_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'ok.db'}")
    url = f"postgresql://app:hunter2-pw@127.0.0.1:{closed_port()}/x"
    monkeypatch.setenv(ENV_DATABASE_URL, url)
    capsys.readouterr()
    assert main(["migrate", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"deputize: {ENV_DATABASE_URL} (postgresql://app:***@127.0.0.1:")
    assert "hunter2-pw" not in err


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose listener accepts connections (in the kernel's backlog) and never answers,
    as PostgreSQL behind a partition would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_a_database_that_never_answers_is_given_up_on(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    silent_server: int,
) -> None:
    config = _config(
        tmp_path, f"postgresql://postgres@127.0.0.1:{silent_server}/x", connect_timeout=0.5
    )
    capsys.readouterr()
    started = time.monotonic()
    assert main(["clients", "list", "--config", str(config)]) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert err.endswith("): the database did not answer in time\n")
    assert err.count("\n") == 1


def test_a_bug_is_not_taken_for_an_outage() -> None:
    """Anything not about reaching the database keeps its traceback: it is ours to fix."""
    for error in (ValueError("bad"), KeyError("x"), RuntimeError("no")):
        assert unavailable_cause(error) is None
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert unavailable_cause(outer) is not None
