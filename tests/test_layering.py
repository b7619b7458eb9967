"""Layering (STYLE.md §8.1 rule 3), checked rather than left to convention.

Each package is imported in a fresh interpreter, and the modules it must never load are looked
for in ``sys.modules``: ``keys`` loads nothing of ours and no web or database library; ``agent``
and ``verifier`` never load the server or its dependencies.  ``PYTHONPATH`` is built from this
process's ``sys.path``, so the checks work without an install too.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Third-party modules only the server (or an SDK's HTTP layer) may bring in.
SERVER_ONLY = ("starlette", "sqlalchemy", "uvicorn", "alembic", "aiosqlite", "asyncpg", "yaml")
OUR_OTHER_PACKAGES = ("deputize.agent", "deputize.verifier", "deputize.server")


def _modules_after_import(module: str) -> set[str]:
    """The names in ``sys.modules`` after importing ``module`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return set(loaded)


def _loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    """The modules in ``modules`` that are one of ``roots`` or inside one of them."""
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


@pytest.fixture(scope="module")
def after_keys() -> set[str]:
    return _modules_after_import("deputize.keys")


def test_keys_loads_none_of_our_other_packages(after_keys: set[str]) -> None:
    assert "deputize.keys" in after_keys
    assert _loaded(after_keys, OUR_OTHER_PACKAGES) == []
    ours = {m for m in after_keys if m.startswith("deputize.")}
    assert ours == {m for m in ours if m == "deputize.keys" or m.startswith("deputize.keys.")}


@pytest.mark.parametrize(
    "library",
    ["starlette", "sqlalchemy", "httpx", "uvicorn", "alembic", "yaml", "authlib", "jwt"],
    ids=lambda lib: f"deputize.keys does not load {lib}",
)
def test_keys_loads_no_web_or_database_library(after_keys: set[str], library: str) -> None:
    assert _loaded(after_keys, (library,)) == []


def test_keys_source_imports_nothing_else_of_ours() -> None:
    # Catches imports hidden inside functions too, which a runtime check only sees when called.
    offenders: list[str] = []
    for path in sorted((REPO / "keys" / "deputize" / "keys").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                prefix = "deputize." if node.module == "deputize" else ""
                names = [prefix + alias.name for alias in node.names] if prefix else [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "deputize" and len(parts) > 1 and parts[1] != "keys":
                    offenders.append(f"{path.name}:{node.lineno}: {name}")
    assert offenders == []


@pytest.mark.parametrize(
    "package",
    ["agent", "verifier"],
    ids=lambda p: f"deputize.{p} does not load the server",
)
def test_clients_do_not_load_the_server(package: str) -> None:
    if not (REPO / "clients" / "deputize" / package / "__init__.py").exists():
        pytest.skip(f"deputize.{package} has no __init__.py yet; it lands with the client SDK")
    loaded = _modules_after_import(f"deputize.{package}")
    assert f"deputize.{package}" in loaded
    assert _loaded(loaded, ("deputize.server", *SERVER_ONLY, "fastapi")) == []
