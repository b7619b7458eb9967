"""The project's one JSON encoder: orjson where installed, the standard library otherwise.

Both must accept the same values and give the same JSON values back, or a token signed on a
server (orjson) would carry different claims from one signed by the agent SDK without it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest

from deputize.keys import _json
from deputize.keys._json import loads

VALUES: list[Any] = [
    {"iss": "https://as.example", "aud": ["a", "b"], "exp": 1_800_000_000, "nbf": None},
    {"act": {"sub": "agent-b", "act": {"sub": "agent-a"}}, "cnf": {"jkt": "x" * 43}},
    {"sub": "ålice ✓", "note": 'quote " backslash \\ newline \n tab \t nul \x00 \u2028'},
    {"big": 2**70, "negative": -(2**63) - 1, "float": 1.5, "true": True},
    {1: "an int key becomes a string", "nested": [[], {}, [1, [2, [3]]]]},
    [["assertion:abc", 1795354069], None, "x"],
]


class _Text(str):
    pass


@pytest.mark.parametrize("value", VALUES)
def test_both_encoders_give_the_same_json_value(value: Any) -> None:
    fast, plain = _json.dumps(value), _json.stdlib_dumps(value)
    assert json.loads(fast) == json.loads(plain) == json.loads(json.dumps(value))


def test_the_server_has_orjson() -> None:
    # The speed the token endpoint's benchmark depends on; the fallback is for the SDK only.
    assert _json.dumps is not _json.stdlib_dumps


@pytest.mark.parametrize(
    "value",
    [
        {"when": datetime.datetime(2026, 1, 1)},
        {"record": dataclasses.make_dataclass("R", ["x"])(1)},
        {"set": {1, 2}},
        {"bytes": b"raw"},
    ],
)
def test_both_refuse_what_the_standard_library_refuses(value: Any) -> None:
    with pytest.raises(TypeError):
        _json.stdlib_dumps(value)
    with pytest.raises(TypeError):
        _json.dumps(value)


def test_a_str_subclass_is_encoded_as_its_text() -> None:
    assert json.loads(_json.dumps({"a": _Text("x")})) == {"a": "x"}


@pytest.mark.parametrize(
    "document",
    [b"[" * 100_000 + b"]" * 100_000, b'{"keys":' + b"[" * 30_000 + b"]" * 30_000 + b"}"],
    ids=["nested arrays", "nested inside a key set"],
)
def test_loads_turns_too_deep_nesting_into_value_error(document: bytes) -> None:
    """``json.loads`` raises RecursionError here, which every ``except ValueError`` around a
    network read missed: a key server's reply of 60 KB made the token endpoint answer 500."""
    with pytest.raises(RecursionError):
        json.loads(document)
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(document)


def test_loads_reads_what_json_reads() -> None:
    assert loads(b'{"a":[1,2.5,"\\u00e9",null,true]}') == {"a": [1, 2.5, "é", None, True]}
    with pytest.raises(ValueError):
        loads(b"{nope")
