"""The built wheel: one namespace, every subpackage typed, server data files included, and the
key/client layers installable without the server's dependencies."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
    )
    (built,) = out.glob("deputize-*.whl")
    return built


def test_wheel_holds_the_namespace_and_its_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "deputize/__init__.py" not in names
    for package in ("keys", "agent", "verifier", "server"):
        assert f"deputize/{package}/__init__.py" in names
        assert f"deputize/{package}/py.typed" in names
    assert "deputize/server/starter.yaml" in names
    assert "deputize/server/migrations/env.py" in names
    assert "deputize/server/migrations/versions/0001_initial.py" in names
    assert not any(name.startswith(("keys/", "clients/", "server/", "tests/")) for name in names)


@pytest.mark.e2e
def test_base_install_has_no_server_dependencies(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"

    def missing_after(install: str, imports: str) -> str:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", install], check=True)
        probe = (
            f"import importlib.util, {imports}\n"
            "missing = [m for m in ('starlette', 'sqlalchemy', 'uvicorn', 'alembic', 'yaml',\n"
            "                       'httpx')\n"
            "           if importlib.util.find_spec(m) is None]\n"
            "print(','.join(missing))\n"
        )
        result = subprocess.run(
            [str(python), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
        )
        return result.stdout.strip()

    # The JOSE core alone needs only cryptography.
    assert missing_after(str(wheel), "deputize.keys") == (
        "starlette,sqlalchemy,uvicorn,alembic,yaml,httpx"
    )
    # The agent SDK and the verifier add httpx, and still none of the server's dependencies.
    assert missing_after(f"{wheel}[agent,verifier]", "deputize.agent, deputize.verifier") == (
        "starlette,sqlalchemy,uvicorn,alembic,yaml"
    )
