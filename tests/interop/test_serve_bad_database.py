"""``deputize serve`` as a process, with a database it cannot use: one line naming
``database.url`` and the cause, exit status 1, and never "listening" — which is printed only
once the app has started (schema migrated, signing keys made), not when the socket is bound."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import POSTGRES_ENV

pytestmark = pytest.mark.e2e

SCRIPT = Path(sys.executable).with_name("deputize")


def _environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("DEPUTIZE_ISSUER", "DEPUTIZE_DATABASE_URL")
        and not name.startswith("DEPUTIZE_CLIENT_SECRET_")
    }


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "deputize.yaml"
    config = {"issuer": "http://127.0.0.1:8000", "database": {"url": url}}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _missing_database() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} to run PostgreSQL tests")
    return url.rpartition("/")[0] + "/deputize_missing_xyz"


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("missing folder", "cannot open the database file: folder "),
        ("postgres down", "connection refused"),
        pytest.param(
            "no such database",
            'database "deputize_missing_xyz" does not exist',
            marks=pytest.mark.postgres,
        ),
    ],
    ids=[
        "an SQLite file in a missing folder",
        "PostgreSQL refusing connections",
        "a PostgreSQL database that does not exist",
    ],
)
def test_serve_on_a_bad_database_says_one_line(tmp_path: Path, kind: str, cause: str) -> None:
    url = {
        "missing folder": f"sqlite:///{tmp_path}/missing/d.db",
        "postgres down": f"postgresql://postgres@127.0.0.1:{_closed_port()}/x",
    }.get(kind) or _missing_database()
    result = subprocess.run(
        [str(SCRIPT), "serve", "--config", str(_config(tmp_path, url)), "--port", "0"],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "listening" not in result.stdout
    assert result.stderr.startswith(f"deputize: database.url ({url}): "), result.stderr
    assert cause in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_serve_announces_itself_once_started(tmp_path: Path) -> None:
    database = tmp_path / "d.db"
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--config", str(_config(tmp_path, f"sqlite:///{database}")),
         "--port", "0"],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Deputize listening on http://127.0.0.1:")
        # By now start-up is done: the schema is there and the signing keys are made.
        with sqlite3.connect(database) as conn:
            (keys,) = conn.execute("SELECT count(*) FROM signing_keys").fetchone()
        assert keys == 2  # the active key and the next one
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
        if process.stdout is not None:
            process.stdout.close()
