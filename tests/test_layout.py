"""The PEP 420 layout (STYLE.md §8.1): one ``deputize`` namespace spread over three source roots.

A single stray ``deputize/__init__.py`` turns the namespace into a regular package and hides the
other roots, so these tests pin the layout down before anything else can go wrong.
"""

from __future__ import annotations

import importlib
import importlib.util
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = ("keys", "clients", "server")
#: Each subpackage of the namespace and the source root that holds it.
SUBPACKAGES = {"keys": "keys", "agent": "clients", "verifier": "clients", "server": "server"}


def _pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("root", SOURCE_ROOTS, ids=lambda r: f"{r}/deputize has no __init__.py")
def test_no_root_makes_deputize_a_regular_package(root: str) -> None:
    namespace_dir = REPO / root / "deputize"
    assert namespace_dir.is_dir()
    assert not (namespace_dir / "__init__.py").exists()


def test_deputize_is_a_namespace_package() -> None:
    import deputize

    assert deputize.__spec__ is not None
    assert deputize.__spec__.origin in (None, "namespace")
    assert getattr(deputize, "__file__", None) is None


def test_the_namespace_spans_all_three_roots_and_no_foreign_distribution() -> None:
    importlib.import_module("deputize.keys")
    import deputize

    paths = {Path(p).resolve() for p in deputize.__path__}
    roots = {(REPO / root / "deputize").resolve() for root in SOURCE_ROOTS}
    assert roots <= paths
    # Anything else must be an installed copy of ourselves (a wheel in site-packages), never
    # another distribution that happens to ship a top-level `deputize` (STYLE.md rule 4).
    for extra in paths - roots:
        found = {p.name for p in extra.iterdir() if p.name not in ("__pycache__", "__init__.py")}
        assert found <= set(SUBPACKAGES), f"a foreign distribution merges into deputize: {extra}"


@pytest.mark.parametrize(
    ("name", "root"),
    list(SUBPACKAGES.items()),
    ids=[f"deputize.{name} lives in {root}/" for name, root in SUBPACKAGES.items()],
)
def test_each_subpackage_lives_in_its_root(name: str, root: str) -> None:
    package_dir = REPO / root / "deputize" / name
    assert package_dir.is_dir()
    assert (package_dir / "py.typed").is_file(), "PEP 561: py.typed in every subpackage"
    # find_spec imports only the parent namespace, never the subpackage itself.
    spec = importlib.util.find_spec(f"deputize.{name}")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    assert [Path(p).resolve() for p in spec.submodule_search_locations] == [package_dir.resolve()]
    if (package_dir / "__init__.py").exists():
        assert spec.origin is not None
        assert Path(spec.origin).resolve() == (package_dir / "__init__.py").resolve()


@pytest.mark.parametrize(
    "root", SOURCE_ROOTS, ids=lambda r: f"{r}/deputize holds only its own subpackages"
)
def test_each_root_holds_only_its_own_subpackages(root: str) -> None:
    expected = {name for name, home in SUBPACKAGES.items() if home == root}
    found = {p.name for p in (REPO / root / "deputize").iterdir() if p.name != "__pycache__"}
    assert found == expected


def test_build_and_tool_configuration_name_the_same_roots() -> None:
    config = _pyproject()
    hatch = config["tool"]["hatch"]
    assert hatch["build"]["targets"]["wheel"]["sources"] == list(SOURCE_ROOTS)
    assert hatch["build"]["targets"]["wheel"]["only-include"] == [
        f"{root}/deputize" for root in SOURCE_ROOTS
    ]
    assert hatch["build"]["dev-mode-dirs"] == list(SOURCE_ROOTS)
    # mypy also needs tests/ on its path, for the shared tests/support.py helpers.
    assert config["tool"]["mypy"]["mypy_path"][: len(SOURCE_ROOTS)] == list(SOURCE_ROOTS)
    assert set(SOURCE_ROOTS) <= set(config["tool"]["pytest"]["ini_options"]["pythonpath"])
