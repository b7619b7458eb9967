"""Grant types.  Each is a unit that declares its parameters and handles one validated request.

The token endpoint (``endpoints/token.py``) authenticates the client, screens the form and the
DPoP proof, then hands the grant a :class:`TokenRequest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.keys import DPoPProof
from deputize.server.context import ServerContext
from deputize.server.http.form import Form
from deputize.server.settings import ClientConfig
from deputize.server.storage.request_store import RequestStore

if TYPE_CHECKING:  # the endpoints call the grants, never the other way round
    from deputize.server.endpoints import Refusal


@dataclass(slots=True)  # not frozen: built for every token request, 4x faster
class TokenRequest:
    ctx: ServerContext
    store: RequestStore
    client: ClientConfig
    form: Form
    proof: DPoPProof | None
    now: int
    refusal: Refusal
    """Filled in as the grant learns who and what the request is about, for the audit trail."""

    @property
    def conn(self) -> AsyncConnection:
        """The request's SQLAlchemy connection; only for grants that are not ``batched``."""
        return self.store.conn


class Grant(Protocol):
    grant_type: ClassVar[str]
    #: Parameters that may appear more than once (RFC 8707 ``resource``, RFC 8693 ``audience``).
    repeatable: ClassVar[frozenset[str]]
    #: Whether the grant does all its storage through ``TokenRequest.store`` (never ``conn``),
    #: so PostgreSQL can run it on the batched hot path (``storage/batched.py``).
    batched: ClassVar[bool]

    async def handle(self, request: TokenRequest) -> Mapping[str, Any]: ...
