"""``/``: a page for a person who opens the issuer's URL in a browser, nothing for programs.

A person who pastes the issuer URL into a browser used to meet ``{"error": "not_found"}``.
Now a request that asks for HTML (``Accept`` names ``text/html`` with a non-zero ``q``, as
every browser's navigation does) gets a short page naming the issuer, with links to the
account page and the discovery document.  Anything else — JSON clients, ``curl``'s ``*/*``,
any method but GET and HEAD — gets the same JSON 404 as before: an OAuth client never
depends on this page, and a wildcard does not make a program a browser.  Both answers vary
on ``Accept`` (RFC 9110 §12.5.5), so no cache hands one to the other.  The page needs no
database: it stays up when the database is not.
"""

from __future__ import annotations

from typing import Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from deputize.server.context import ServerContext
from deputize.server.http.web import render

_VARY: Final = {"Vary": "Accept"}


def wants_html(accept: str) -> bool:
    """Whether an ``Accept`` header (RFC 9110 §12.5.1) names ``text/html`` itself, not only by
    a wildcard, with a weight above zero."""
    for item in accept.split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if media_type.lower() != "text/html":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value.strip()) > 0
                except ValueError:
                    return False
        return True
    return False


async def home(request: Request) -> Response:
    if request.method not in ("GET", "HEAD") or not wants_html(request.headers.get("accept", "")):
        raise HTTPException(status_code=404, headers=_VARY)
    ctx: ServerContext = request.app.state.ctx
    settings = ctx.settings
    response = render(
        "home.html",
        settings,
        issuer=settings.issuer,
        metadata_url=settings.endpoint("/.well-known/oauth-authorization-server"),
        jwks_url=settings.endpoint("/jwks"),
    )
    response.headers.update(_VARY)
    return response


class Home:
    """``home`` as a plain ASGI app, so its route matches every method.

    Starlette gives a function endpoint without ``methods`` only GET (and HEAD), and answers
    other methods 405; before this page, every method at ``/`` got the JSON 404, and still does.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await home(Request(scope, receive))
        await response(scope, receive, send)
