"""Compact JSON encoding, in one place: orjson when it is installed, the standard library
otherwise.

The server installs orjson (it encodes every token, response and batch of ledger writes, and
orjson does so about ten times faster); the agent SDK and the verifier need not.  Both give
valid compact JSON of the same values, so nothing that reads the output can tell them apart,
except that orjson writes non-ASCII characters as UTF-8 where the standard library escapes
them.  Values orjson will not take (an integer beyond 64 bits, a subclass of a built-in type)
go to the standard library, so the two accept the same input.  (One more difference: orjson
writes a NaN or infinite float as ``null``, the standard library as invalid JSON; nothing here
encodes one.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

_STDLIB: Final = json.JSONEncoder(separators=(",", ":"))  # built once, unlike json.dumps


def loads(data: bytes | bytearray | str) -> Any:
    """A JSON document from the network.  Anything that is not JSON raises ``ValueError``,
    nesting too deep for the parser included: ``json`` raises ``RecursionError`` for that (a
    60 KB document of nested arrays is enough), which a caller catching ``ValueError`` misses.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def stdlib_dumps(value: Any) -> bytes:
    """:func:`dumps` with the standard library only."""
    return _STDLIB.encode(value).encode("utf-8")


dumps: Callable[[Any], bytes] = stdlib_dumps
"""``value`` as compact JSON (no spaces), UTF-8 encoded."""

try:
    import orjson
except ImportError:  # pragma: no cover - the server always has it
    pass
else:
    #: Leave to the standard library what it treats differently: it rejects dataclasses and
    #: datetimes, and encodes subclasses of built-in types through their own methods.
    _PASSTHROUGH: Final = (
        orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )

    def _orjson_dumps(value: Any) -> bytes:
        try:
            return orjson.dumps(value, option=_PASSTHROUGH)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return stdlib_dumps(value)

    dumps = _orjson_dumps
