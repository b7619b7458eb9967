"""Resource normal form and pattern coverage: every trick that could escape a pattern is tried."""

from __future__ import annotations

import pytest

from deputize.keys.resources import (
    ResourceError,
    covers,
    matches,
    normalize,
    normalized,
    overlaps,
)


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("files:/projects/q3/*", "files:/projects/q3/a.txt", True),
        ("files:/projects/q3/*", "files:/projects/q3/sub/a.txt", False),
        ("files:/projects/q3/*", "files:/projects/q3", False),
        ("files:/projects/q3/**", "files:/projects/q3", True),
        ("files:/projects/q3/**", "files:/projects/q3/sub/deeper/a.txt", True),
        ("files:/projects/q3/**", "files:/projects/q4/a.txt", False),
        ("files:/projects/*/report.pdf", "files:/projects/q3/report.pdf", True),
        ("files:/projects/*/report.pdf", "files:/projects/q3/x/report.pdf", False),
        ("files:/**/report.pdf", "files:/a/b/c/report.pdf", True),
        ("files:/**", "documents:/a", False),
        ("FILES:/a", "files:/a", True),
        ("https://API.example.com/docs/*", "https://api.example.com/docs/7", True),
        ("https://api.example.com/docs/*", "https://api.example.com.evil/docs/7", False),
        ("files:/Projects/q3/*", "files:/projects/q3/a", False),
        ("files:/projects/q3/*", "files:/projects/q3/a%20b.txt", True),
        ("files:/projects/caf\u00e9/*", "files:/projects/cafe\u0301/x", True),  # NFC
    ],
)
def test_matching(pattern: str, resource: str, expected: bool) -> None:
    assert matches(pattern, resource) is expected


@pytest.mark.parametrize(
    "escape",
    [
        "files:/projects/q3/../secret/a.txt",
        "files:/projects/q3/./a.txt",
        "files:/projects/q3/%2e%2e/secret",
        "files:/projects/q3/%2E%2E/secret",
        "files:/projects/q3/..%2Fsecret",
        "files:/projects/q3/%252e%252e/secret",
        "files:/projects/q3/..%5Csecret",
        "files:/projects/q3\\..\\secret",
        "files:/projects/q3//a.txt",
        "files:/projects/q3/a.txt/",
        "files:/projects/q3/\uff0e\uff0e/secret",  # full-width dots
        "files:/projects/q3/\ufb01le",  # ligature
        "files:/projects/q3/a\x00.txt",
        "files:/projects/q3/a\tb.txt",
        "files:/projects/q3/%ff",
        "files:/projects/q3/%zz",
        "files:/projects/q3/a?x=1",
        "files:/projects/q3/a#frag",
        "files:projects/q3/a",
        "https://user@api.example.com/docs/7",
        "/projects/q3/a",
        "files:/projects/q3/*",
        "files:/projects/q3/%2A",
    ],
)
def test_tricks_are_refused_not_repaired(escape: str) -> None:
    with pytest.raises(ResourceError):
        normalize(escape)
    assert not matches("files:/projects/q3/**", escape)


@pytest.mark.parametrize(
    "pattern", ["files:/a/re*.pdf", "files:/a/***", "files:/a/*x", "https://*.example.com/a"]
)
def test_wildcards_only_as_whole_segments(pattern: str) -> None:
    with pytest.raises(ResourceError):
        normalize(pattern, pattern=True)


@pytest.mark.parametrize(
    ("parent", "child", "expected"),
    [
        ("files:/a/**", "files:/a/b/*", True),
        ("files:/a/**", "files:/a/**", True),
        ("files:/a/*", "files:/a/**", False),
        ("files:/a/*", "files:/a/*", True),
        ("files:/a/*/c", "files:/a/b/c", True),
        ("files:/a/b/c", "files:/a/*/c", False),
        ("files:/**/c", "files:/a/**/c", True),
        ("files:/a/**", "files:/**", False),
        ("files:/**", "files:/*/**", True),
        ("files:/a", "files:/a/**", False),
    ],
)
def test_pattern_inside_pattern(parent: str, child: str, expected: bool) -> None:
    assert covers(normalize(parent, pattern=True), normalize(child, pattern=True)) is expected


def test_deny_rules_fold_case() -> None:
    assert not matches("users:/admin/**", "users:/ADMIN/x")
    assert matches("users:/admin/**", "users:/ADMIN/x", fold=True)


def test_normal_form_is_what_tokens_carry() -> None:
    assert normalized("FILES:/projects/q%33/a%20b.txt") == "files:/projects/q3/a b.txt"
    assert normalized("files:/") == "files:/"


def test_bounds() -> None:
    with pytest.raises(ResourceError):
        normalize("files:/" + "a/" * 40 + "b")
    with pytest.raises(ResourceError):
        normalize("files:/" + "a" * 2000)
    with pytest.raises(ResourceError):
        normalize(7)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("documents:/**", "documents:/q3/report.pdf", True),
        ("documents:/q3/*", "documents:/*/report.pdf", True),
        ("documents:/q3/*", "documents:/q4/*", False),
        ("documents:/q3/*", "documents:/q3/a/**", True),
        ("documents:/q3/*", "documents:/q3/a/*", False),
        ("documents:/**/x", "documents:/y/**", True),
        ("documents:/**", "users:/**", False),
        ("documents:/a", "documents:/a/**", True),
    ],
)
def test_overlap(a: str, b: str, expected: bool) -> None:
    pa, pb = normalize(a, pattern=True), normalize(b, pattern=True)
    assert overlaps(pa, pb) is expected and overlaps(pb, pa) is expected
