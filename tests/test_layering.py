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
    assert _loaded(loaded, ("deputize.server", *SERVER_ONLY, "fastapi", "mcp")) == []


def test_the_mcp_adapter_loads_the_sdk_but_not_the_server() -> None:
    # deputize.verifier.mcp is the one verifier module that imports the MCP SDK (and Starlette).
    loaded = _modules_after_import("deputize.verifier.mcp")
    assert "mcp" in loaded
    assert _loaded(loaded, ("deputize.server", "sqlalchemy", "alembic", "fastapi")) == []


# --- inside the server: layers by subpackage, and no import circle ------------------------------

SERVER = REPO / "server" / "deputize" / "server"

#: The only modules at the top of ``deputize.server``: what every layer shares or the whole app
#: wires together.  A new capability arrives as a subpackage of its own (STYLE.md §9.1).
TOP_LEVEL_MODULES = {"__init__", "app", "context", "errors", "keyring", "settings"}

#: The bottom layers, and the only parts of the server they may import: they never reach up
#: into the layers that use them.
MAY_IMPORT_ONLY: dict[str, set[str]] = {
    "configuration": set(),  # below settings, which imports it
    "storage": {"settings", "errors"},
    "http": {"settings", "errors", "storage"},
}

#: What each upper layer must never import: whatever calls it.
MAY_NOT_IMPORT: dict[str, set[str]] = {
    "tokens": {"accounts", "app", "cli", "delegation", "endpoints", "grants", "registration"},
    "clients": {
        "accounts",
        "app",
        "cli",
        "delegation",
        "endpoints",
        "grants",
        "registration",
        "tokens",
    },
    "registration": {"accounts", "app", "cli", "delegation", "endpoints", "grants"},
    "accounts": {"app", "cli", "delegation", "endpoints", "grants"},
    "delegation": {"accounts", "app", "cli", "endpoints", "grants"},
    "grants": {"app", "cli", "endpoints"},
    "endpoints": {"app", "cli"},
    "app": {"cli"},
}


def _server_module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["deputize", "server", *parts])


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The server modules ``path`` imports when it runs: at the top or inside functions, but not
    under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if name in modules:
                    found.add(name)
                elif node.module in modules:
                    found.add(node.module)
    return found


@pytest.fixture(scope="module")
def server_imports() -> dict[str, set[str]]:
    paths = [p for p in SERVER.rglob("*.py") if "migrations" not in p.relative_to(SERVER).parts]
    modules = {_server_module_name(p): p for p in paths}
    return {name: _runtime_imports(path, set(modules)) for name, path in modules.items()}


def test_the_server_top_level_holds_only_shared_modules() -> None:
    top = {p.stem for p in SERVER.glob("*.py")}
    assert top == TOP_LEVEL_MODULES, "put a new capability in a subpackage of its own"


def test_no_module_of_the_server_is_a_crowd() -> None:
    # STYLE.md §8.3: aim for 300 lines, review anything over 500.
    crowded = [
        f"{p.relative_to(SERVER)}: {n} lines"
        for p in SERVER.rglob("*.py")
        if "migrations" not in p.parts
        and (n := len(p.read_text(encoding="utf-8").splitlines())) > 650
    ]
    assert crowded == []


def _layer(module: str) -> str:
    return module.split(".")[2] if module.count(".") >= 2 else "__init__"


def _reaches_up(layer: str, target: str) -> bool:
    if layer == target:
        return False
    if layer in MAY_IMPORT_ONLY:
        return target not in MAY_IMPORT_ONLY[layer]
    return target in MAY_NOT_IMPORT.get(layer, set())


def test_no_layer_of_the_server_reaches_up(server_imports: dict[str, set[str]]) -> None:
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in server_imports.items()
        for target in targets
        if _reaches_up(_layer(module), _layer(target))
    )
    assert offenders == []


def test_the_server_has_no_import_circle(server_imports: dict[str, set[str]]) -> None:
    """Tarjan's strongly connected components over the module graph: any with two or more
    modules (or a module importing itself) is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in server_imports[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in server_imports[node]:
                circles.append(sorted(component))

    for module in sorted(server_imports):
        if module not in index:
            visit(module)
    assert circles == []
