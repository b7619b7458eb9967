"""RFC 9396 authorization_details: parsing against declared types and the attenuation rule,
each with attempts to widen at a hop."""

from __future__ import annotations

from typing import Any

import pytest

from deputize.keys.chain import AttenuationError
from deputize.keys.details import DetailType, allows, check_attenuation, parse_details

TYPES = {
    "files": DetailType("files", frozenset({"read", "write", "delete"})),
    "payment": DetailType(
        "payment",
        frozenset({"initiate"}),
        resource_field="creditors",
        limits=frozenset({"max_amount"}),
    ),
}


def files(actions: list[str], *where: str) -> dict[str, Any]:
    return {"type": "files", "actions": actions, "locations": list(where)}


def parse(*entries: dict[str, Any]) -> Any:
    return parse_details(list(entries), TYPES)


def test_a_parsed_entry_is_normalised_and_serialisable() -> None:
    (entry,) = parse(files(["write", "read", "read"], "FILES:/q3/%61.txt", "files:/q3/a.txt"))
    assert entry.to_json(TYPES["files"]) == {
        "type": "files",
        "actions": ["read", "write"],
        "locations": ["files:/q3/a.txt"],
    }


@pytest.mark.parametrize(
    "value",
    [
        {"type": "files"},
        [],
        ["files"],
        [{"type": "unknown", "actions": ["read"], "locations": ["files:/a"]}],
        [{"type": 7}],
        [files(["read"], "files:/a") | {"privileges": ["admin"]}],
        [files(["execute"], "files:/a")],
        [files([], "files:/a")],
        [files(["read"])],
        [{"type": "files", "actions": "read", "locations": ["files:/a"]}],
        [files(["read"], "files:/a/../b")],
        [files(["read"], "files:/a/re*")],
        [
            {
                "type": "payment",
                "actions": ["initiate"],
                "creditors": ["iban:/DE1"],
                "max_amount": -1,
            }
        ],
        [
            {
                "type": "payment",
                "actions": ["initiate"],
                "creditors": ["iban:/DE1"],
                "max_amount": True,
            }
        ],
        [
            {
                "type": "payment",
                "actions": ["initiate"],
                "creditors": ["iban:/DE1"],
                "max_amount": "5",
            }
        ],
        [files(["read"], "files:/a")] * 33,
    ],
)
def test_malformed_details_are_refused(value: Any) -> None:
    with pytest.raises(AttenuationError) as caught:
        parse_details(value, TYPES)
    assert caught.value.error == "invalid_authorization_details"


PARENT = (
    files(["read", "write"], "files:/projects/q3/**"),
    {"type": "payment", "actions": ["initiate"], "creditors": ["iban:/DE/**"], "max_amount": 500},
)


@pytest.mark.parametrize(
    "child",
    [
        files(["read"], "files:/projects/q3/a.txt"),
        files(["read", "write"], "files:/projects/q3/sub/*"),
        files(["read"], "files:/projects/q3/**"),
    ],
)
def test_narrower_children_pass(child: dict[str, Any]) -> None:
    check_attenuation(parse(*PARENT), parse(child), TYPES)


@pytest.mark.parametrize(
    "child",
    [
        files(["delete"], "files:/projects/q3/a.txt"),  # an action the parent lacks
        files(["read"], "files:/projects/**"),  # a wider pattern
        files(["read"], "files:/projects/q4/a.txt"),  # outside
        files(["read"], "files:/projects/q3/a.txt", "files:/etc/passwd"),  # one of two outside
        {
            "type": "payment",
            "actions": ["initiate"],
            "creditors": ["iban:/DE/**"],
            "max_amount": 501,
        },
        {"type": "payment", "actions": ["initiate"], "creditors": ["iban:/DE/**"]},  # unlimited
    ],
)
def test_widening_at_a_hop_is_refused(child: dict[str, Any]) -> None:
    with pytest.raises(AttenuationError) as caught:
        check_attenuation(parse(*PARENT), parse(child), TYPES)
    assert caught.value.error == "invalid_authorization_details"


def test_one_parent_entry_must_cover_a_whole_child_entry() -> None:
    parent = parse(files(["read"], "files:/a/*"), files(["write"], "files:/a/*"))
    with pytest.raises(AttenuationError):
        check_attenuation(parent, parse(files(["read", "write"], "files:/a/x")), TYPES)
    check_attenuation(
        parent, parse(files(["read"], "files:/a/x"), files(["write"], "files:/a/x")), TYPES
    )


def test_allows_checks_action_and_resource() -> None:
    details = parse(files(["read"], "files:/projects/q3/*"))
    assert allows(details, "read", "files:/projects/q3/a.txt")
    assert not allows(details, "write", "files:/projects/q3/a.txt")
    assert not allows(details, "read", "files:/projects/q3/../q4/a.txt")
    assert not allows(details, "read", "files:/projects/q3/sub/a.txt")
