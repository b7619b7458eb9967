"""Resource identifiers and the patterns that grant them: one normal form, one matching rule.

A resource is ``<namespace>:<path>`` (``files:/projects/q3/a.txt``) or a URL
(``https://api.example.com/docs/7``).  A pattern has the same shape with whole-segment
wildcards in its path: ``*`` stands for exactly one segment, ``**`` for any number of segments
(zero included).  No regular expression ever comes from the network or the configuration.

Both the server (when it checks that a child's ``authorization_details`` stay inside its
parent's) and the verifier (when a resource server asks whether a token allows an action on a
resource) call :func:`normalize` and :func:`covers`, so the two sides cannot disagree about what
a pattern means.

Normalisation refuses, rather than repairs, every form that could make two spellings of one
resource compare differently (and so slip past a pattern):

- ``.`` and ``..`` segments and empty segments (``//``, a trailing ``/``);
- percent-encoding that would change the segmentation or decode twice (``%2F``, ``%5C``,
  ``%25``), malformed escapes and escapes that are not UTF-8; the rest is decoded once;
- control characters, backslashes and white space other than the plain space;
- characters that Unicode compatibility normalisation (NFKC) would change (full-width dots U+FF0E,
  ligatures such as U+FB01), after canonical composition (NFC) of what remains;
- wildcards inside a segment (``report-*.pdf``) and wildcards in a concrete resource.

The namespace (or a URL's scheme and host) is case-insensitive and lower-cased; the path is
compared case-sensitively.  A resource server whose store ignores case canonicalises before it
asks (docs/policy.md); deny rules match case-folded (``fold=True``), so a deny cannot be dodged
by case.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final
from urllib.parse import unquote_to_bytes

from deputize.keys.errors import JoseError

MAX_LENGTH: Final = 1024
MAX_SEGMENTS: Final = 32

ONE: Final = "*"
ANY: Final = "**"

_NAMESPACE = re.compile(r"[a-z][a-z0-9+.\-]{0,62}")
_AUTHORITY = re.compile(r"[a-z0-9.\-]{1,253}(:[0-9]{1,5})?")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_FORBIDDEN_ESCAPES = frozenset({"2f", "5c", "25"})  # '/', '\' and '%' itself
_BAD_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\\]|[^\S ]")


class ResourceError(JoseError):
    """A resource or pattern that has no single meaning; the message names the reason."""

    error = "invalid_authorization_details"


@dataclass(frozen=True, slots=True)
class Resource:
    """A normalised resource or pattern: ``prefix`` (``files:`` or ``https://host``) and the
    path's segments."""

    prefix: str
    segments: tuple[str, ...]
    _folded: tuple[str, ...] | None = field(default=None, init=False, compare=False, repr=False)

    def folded(self) -> tuple[str, ...]:
        """The segments case-folded (how deny rules and tiers compare), computed once: a
        policy's patterns are compared with every question's resource."""
        if self._folded is None:
            object.__setattr__(self, "_folded", tuple(s.casefold() for s in self.segments))
        assert self._folded is not None
        return self._folded

    def __str__(self) -> str:
        return self.prefix + "/" + "/".join(self.segments)

    @property
    def is_pattern(self) -> bool:
        return any(s in (ONE, ANY) for s in self.segments)


def normalize(text: object, *, pattern: bool = False) -> Resource:
    """``text`` in normal form, or :class:`ResourceError` naming why it has none."""
    if not isinstance(text, str) or not text:
        raise ResourceError("a resource must be a non-empty string")
    if len(text) > MAX_LENGTH:
        raise ResourceError(f"a resource is longer than {MAX_LENGTH} characters")
    prefix, path = _split(text)
    return Resource(prefix, _segments(path, pattern=pattern))


def normalized(text: object, *, pattern: bool = False) -> str:
    """:func:`normalize` as a string: what a token carries and what logs show."""
    return str(normalize(text, pattern=pattern))


def _split(text: str) -> tuple[str, str]:
    head, sep, rest = text.partition(":")
    namespace = head.lower()
    if not sep or not _NAMESPACE.fullmatch(namespace):
        raise ResourceError("a resource must start with a namespace such as 'files:'")
    if rest.startswith("//"):  # a URL: the scheme and authority are the prefix
        authority, slash, path = rest[2:].partition("/")
        authority = authority.lower()
        if not _AUTHORITY.fullmatch(authority):
            raise ResourceError("a resource URL's host is malformed (no user info, no wildcards)")
        return f"{namespace}://{authority}", slash + path
    return namespace + ":", rest


def _segments(path: str, *, pattern: bool) -> tuple[str, ...]:
    if "?" in path or "#" in path:
        raise ResourceError("a resource has no query or fragment")
    if not path.startswith("/"):
        raise ResourceError("a resource's path must start with '/'")
    if path == "/":
        return ()
    raw = path[1:].split("/")
    if len(raw) > MAX_SEGMENTS:
        raise ResourceError(f"a resource has more than {MAX_SEGMENTS} segments")
    return tuple(_segment(s, pattern=pattern) for s in raw)


def _segment(raw: str, *, pattern: bool) -> str:
    if raw in (ONE, ANY):
        if not pattern:
            raise ResourceError("a concrete resource cannot contain '*'")
        return raw
    if "*" in raw:
        raise ResourceError("'*' and '**' stand only for whole segments")
    text = _decode(raw)
    if _BAD_CHARACTERS.search(text):
        raise ResourceError(
            "a resource cannot contain controls, backslashes or white space other than U+0020"
        )
    text = unicodedata.normalize("NFC", text)
    if unicodedata.normalize("NFKC", text) != text:
        raise ResourceError("a resource cannot contain compatibility characters (e.g. full-width)")
    if text in ("", ".", ".."):
        raise ResourceError("a resource cannot contain empty, '.' or '..' segments")
    if "*" in text:
        raise ResourceError("'*' cannot be percent-encoded into a resource")
    return text


def _decode(raw: str) -> str:
    if "%" not in raw:
        return raw
    if raw.count("%") != len(_ESCAPE.findall(raw)):
        raise ResourceError("a resource has a malformed percent-escape")
    if any(m.lower() in _FORBIDDEN_ESCAPES for m in _ESCAPE.findall(raw)):
        raise ResourceError("a resource cannot percent-encode '/', '\\' or '%'")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeError:
        raise ResourceError("a resource's percent-escapes are not UTF-8") from None


def covers(parent: Resource, child: Resource, *, fold: bool = False) -> bool:
    """Whether every resource ``child`` names is one that ``parent`` names.

    Decided on the patterns' shapes: exact whenever ``child`` is concrete; for two patterns it
    may refuse an equivalent spelling (``*/**`` inside ``**/*``) but never admits a wider one.
    ``fold`` compares case-insensitively (deny rules).
    """
    pair = _comparable(parent, child, fold)
    return pair is not None and _covers(*pair)


@lru_cache(maxsize=4096)
def _covers(p: tuple[str, ...], c: tuple[str, ...]) -> bool:
    if not c:
        return all(s == ANY for s in p)
    if not p:
        return False
    head = p[0]
    if head == ANY:  # matches nothing more, or swallows the child's next segment (any kind)
        return _covers(p[1:], c) or _covers(p, c[1:])
    if c[0] == ANY:
        return False
    if head == ONE:
        return _covers(p[1:], c[1:])
    return head == c[0] and _covers(p[1:], c[1:])


def matches(pattern: str, resource: str, *, fold: bool = False) -> bool:
    """Convenience for one pattern and one concrete resource, both as text; a malformed
    resource matches nothing."""
    try:
        return covers(normalize(pattern, pattern=True), normalize(resource), fold=fold)
    except ResourceError:
        return False


def overlaps(a: Resource, b: Resource, *, fold: bool = False) -> bool:
    """Whether some concrete resource is named by both ``a`` and ``b`` (exact for these
    patterns).  A token cannot carry a pattern that reaches into a denied or forbidden one."""
    pair = _comparable(a, b, fold)
    return pair is not None and _overlaps(*pair)


def _comparable(
    a: Resource, b: Resource, fold: bool
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The two paths' segments, case-folded if asked; None when the prefixes differ."""
    if a.prefix != b.prefix:
        return None
    if not fold:
        return a.segments, b.segments
    return a.folded(), b.folded()


@lru_cache(maxsize=4096)
def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a or not b:
        return all(s == ANY for s in a + b)
    if a[0] == ANY:
        return _overlaps(a[1:], b) or _overlaps(a, b[1:])
    if b[0] == ANY:
        return _overlaps(a, b[1:]) or _overlaps(a[1:], b)
    if a[0] != ONE and b[0] != ONE and a[0] != b[0]:
        return False
    return _overlaps(a[1:], b[1:])
