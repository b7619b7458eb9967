"""Token status lists (draft-ietf-oauth-status-list): revocation that reaches the resource
server without a call per request.

A token carries ``"status": {"status_list": {"idx": N, "uri": U}}``.  The list at ``U`` is a
JWT (``typ: statuslist+jwt``) signed by the issuer whose ``status_list`` holds ``bits`` per
token, zlib/DEFLATE-compressed and base64url-encoded in ``lst``; the status of token N is
bits ``N*bits .. N*bits+bits-1``, counting from the least significant bit of each byte.
0 is VALID; anything else (INVALID, SUSPENDED, application-specific) is refused here.

Lists are cached, at most ``max_lists`` of them, and refetched once the list token's ``ttl``
(capped by ``max_age``) has passed.  If a refetch fails, the last list is used until its
``exp``; after that, or with no list at all, tokens that point at it are refused: fail
closed.  So a revocation reaches this verifier within the issuer's own cache time plus ``ttl``.

Only lists under the issuer's URL are fetched: a token cannot send the verifier elsewhere.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from deputize.keys import JoseError, check_times, finite_number, parse
from deputize.keys._b64 import b64url_decode
from deputize.verifier import _http
from deputize.verifier.errors import InvalidTokenError, UnavailableError
from deputize.verifier.issuer_keys import IssuerKeys

TYP: Final = "statuslist+jwt"
MEDIA_TYPE: Final = "application/statuslist+jwt"
VALID: Final = 0
#: A decompressed list bigger than this is refused (2^25 one-bit entries).
MAX_LIST_BYTES: Final = 4 * 1024 * 1024
#: Printable ASCII a status list URI may still not contain (a fragment, a backslash, a space).
_NOT_IN_URI: Final = "#\\ "


class StatusReference(NamedTuple):
    """A token's place in a status list.  (A named tuple: built for every new token, and
    cheaper to build than a frozen dataclass.)"""

    idx: int
    uri: str


def status_reference(claims: Mapping[str, Any]) -> StatusReference | None:
    """The token's ``status.status_list`` reference, or None if it has no ``status``."""
    status = claims.get("status")
    if status is None:
        return None
    # A JSON object is a dict: testing the exact type first spares the slower ABC check.
    is_mapping = type(status) is dict or isinstance(status, Mapping)
    ref = status.get("status_list") if is_mapping else None
    if type(ref) is not dict and not isinstance(ref, Mapping):
        raise InvalidTokenError("malformed 'status' claim")
    idx, uri = ref.get("idx"), ref.get("uri")
    if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0 or not isinstance(uri, str):
        raise InvalidTokenError("malformed 'status' claim")
    return StatusReference(idx, uri)


@dataclass(frozen=True, slots=True)
class _List:
    bits: int
    data: bytes
    fresh_until: float
    expires_at: float | None

    def status(self, idx: int) -> int:
        position = idx * self.bits
        byte = position // 8
        if byte >= len(self.data):
            raise InvalidTokenError("status index is outside the status list")
        return (self.data[byte] >> (position % 8)) & ((1 << self.bits) - 1)


class StatusLists:
    def __init__(
        self,
        keys: IssuerKeys,
        *,
        algorithms: Collection[str],
        max_age: float = 300,
        max_lists: int = 64,
        leeway: float = 30,
        retry_interval: float = 5,
        clock: Callable[[], float],
    ) -> None:
        self._keys = keys
        self._prefix = keys.issuer.rstrip("/") + "/"
        self._algorithms = tuple(algorithms)
        self._max_age = max_age
        self._max_lists = max_lists
        self._leeway = leeway
        self._clock = clock
        self._retry_interval = retry_interval
        self._lists: dict[str, _List] = {}
        self._failed: dict[str, float] = {}
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self.fetches = 0

    def check_uri(self, uri: str) -> None:
        if not uri.startswith(self._prefix):
            raise InvalidTokenError("status list URI is not the issuer's")
        # RFC 3986: a URI is printable ASCII; httpx refuses a control character in a URL
        # with an error of its own, which would escape as a crash rather than a refusal.
        if not (uri.isascii() and uri.isprintable()):
            raise InvalidTokenError("status list URI is not the issuer's")
        for char in _NOT_IN_URI:  # a few memchr scans: cheaper than a regular expression
            if char in uri:
                raise InvalidTokenError("status list URI is not the issuer's")

    def lookup(self, ref: StatusReference, now: float, *, stale_ok: bool = False) -> int | None:
        """The token's status from the cache; None when the list must be (re)fetched first."""
        entry = self._lists.get(ref.uri)
        if entry is None:
            return None
        if entry.expires_at is not None and now >= entry.expires_at:
            return None
        if now >= entry.fresh_until and not stale_ok:
            return None
        return entry.status(ref.idx)

    # --- fetching -----------------------------------------------------------------------------

    def should_fetch(self, uri: str) -> bool:
        """False for ``retry_interval`` after a failed fetch: an unreachable issuer is not
        asked again on every request (the last list serves until its ``exp``)."""
        failed = self._failed.get(uri)
        return failed is None or self._clock() - failed >= self._retry_interval

    def fetch(self, http: _http.SyncHTTP, uri: str) -> None:
        with self._thread_lock:
            if self._is_fresh(uri):
                return
            try:
                parsed = self._parse(self._token_text(_http.get(http, uri, accept=MEDIA_TYPE), uri))
                if self._keys.find(parsed) is None and self._keys.should_refresh(missing=True):
                    self._keys.refresh(http)
                self._install(uri, parsed)
            except UnavailableError:
                self._failed_now(uri)
                raise

    async def afetch(self, http: _http.AsyncHTTP, uri: str) -> None:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            if self._is_fresh(uri):
                return
            try:
                body = await _http.aget(http, uri, accept=MEDIA_TYPE)
                parsed = self._parse(self._token_text(body, uri))
                if self._keys.find(parsed) is None and self._keys.should_refresh(missing=True):
                    await self._keys.arefresh(http)
                self._install(uri, parsed)
            except UnavailableError:
                self._failed_now(uri)
                raise

    def _failed_now(self, uri: str) -> None:
        self._failed[uri] = self._clock()
        while len(self._failed) > self._max_lists:
            del self._failed[next(iter(self._failed))]

    def _is_fresh(self, uri: str) -> bool:
        entry = self._lists.get(uri)
        return entry is not None and self._clock() < entry.fresh_until

    @staticmethod
    def _token_text(body: bytes, uri: str) -> str:
        try:
            return body.decode("ascii").strip()
        except UnicodeDecodeError:
            raise UnavailableError(f"{uri} did not send a status list token") from None

    def _parse(self, token: str) -> Any:
        try:
            return parse(token, algorithms=self._algorithms, typ=TYP, max_length=MAX_LIST_BYTES)
        except JoseError as exc:
            raise UnavailableError(f"status list token refused: {exc.description}") from None

    def _install(self, uri: str, parsed: Any) -> None:
        now = self._clock()
        key = self._keys.find(parsed)
        if key is None:
            raise UnavailableError("status list token is signed with an unknown key")
        try:
            claims = parsed.verify(key)
            check_times(claims, now=now, leeway=self._leeway, require_exp=False, require_iat=True)
        except JoseError as exc:
            raise UnavailableError(f"status list token refused: {exc.description}") from None
        # The draft: sub is the URI the token was fetched from; iss, when present, is our issuer.
        if claims.get("sub") != uri or claims.get("iss", self._keys.issuer) != self._keys.issuer:
            raise UnavailableError("status list token is for another list or issuer")
        ttl = finite_number(claims.get("ttl", self._max_age))
        if ttl is None:
            raise UnavailableError("status list token has a malformed ttl")
        exp = finite_number(claims.get("exp"))  # checked by check_times when present
        bits, data = _decode_list(claims.get("status_list"))
        self._failed.pop(uri, None)
        self._lists.pop(uri, None)
        self._lists[uri] = _List(
            bits=bits,
            data=data,
            fresh_until=now + max(0.0, min(ttl, self._max_age)),
            expires_at=exp,
        )
        while len(self._lists) > self._max_lists:  # bounded: drop the least recently fetched
            del self._lists[next(iter(self._lists))]
        self.fetches += 1


def _decode_list(status_list: Any) -> tuple[int, bytes]:
    """The Status List: ``bits`` of 1, 2, 4 or 8 and ``lst``, base64url of zlib-compressed bytes."""
    if not isinstance(status_list, Mapping):
        raise UnavailableError("status list token has no status_list")
    bits, lst = status_list.get("bits"), status_list.get("lst")
    if bits not in (1, 2, 4, 8) or isinstance(bits, bool) or not isinstance(lst, str):
        raise UnavailableError("status list has malformed bits or lst")
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(b64url_decode(lst), MAX_LIST_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise UnavailableError("status list is too large or truncated")
    except (JoseError, zlib.error):
        raise UnavailableError("status list lst is not valid compressed data") from None
    return int(bits), data
