"""What every server-rendered page shares: templates, cookies, CSRF, and security headers.

Cookies are HttpOnly and SameSite=Lax (Lax, not Strict: a client sends the user to
``/authorize`` by a cross-site top-level navigation, and the session must come along).  They
are Secure when the issuer is https, and then also ``__Host-`` prefixed when the issuer has no
path, so a sibling subdomain cannot plant them.  On an http loopback issuer (development and
the tests) they cannot be Secure, and are not.

CSRF: every form carries a token that is an HMAC of a random per-browser cookie under a key
all instances share.  A form post must present the token of the cookie that comes with it, and
an ``Origin`` header, when present, must be the issuer's.  Pages cannot be framed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from deputize.keys.compare import same_text
from deputize.server.http.dates import when
from deputize.server.settings import Settings

_TEMPLATES: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("deputize.server", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# Every date on every page in one format, with time and zone (``dates.py``).
_TEMPLATES.filters["when"] = when
BROWSER_COOKIE: Final = "deputize_browser"
SESSION_COOKIE: Final = "deputize_session"
_COOKIE_VALUE: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: Browser cookie lifetime: long, it only anchors CSRF tokens.
_BROWSER_MAX_AGE: Final = 365 * 86_400


class PageError(Exception):
    """A request a page cannot serve; shown on the error page, never redirected anywhere."""

    def __init__(self, title: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.title = title
        self.message = message
        self.status = status


def _secure(settings: Settings) -> bool:
    return settings.issuer.startswith("https://")


def cookie_path(settings: Settings) -> str:
    return urlsplit(settings.issuer).path or "/"


def cookie_name(settings: Settings, base: str) -> str:
    if _secure(settings) and cookie_path(settings) == "/":
        return "__Host-" + base
    return base


def set_cookie(
    response: Response, settings: Settings, base: str, value: str, *, max_age: int | None
) -> None:
    response.set_cookie(
        cookie_name(settings, base),
        value,
        max_age=max_age,
        path=cookie_path(settings),
        secure=_secure(settings),
        httponly=True,
        samesite="lax",
    )


def clear_cookie(response: Response, settings: Settings, base: str) -> None:
    response.delete_cookie(
        cookie_name(settings, base),
        path=cookie_path(settings),
        secure=_secure(settings),
        httponly=True,
        samesite="lax",
    )


def read_cookie(request: Request, settings: Settings, base: str) -> str | None:
    """Our cookie's value, or ``None`` when it is missing or could not be one we set: every
    value we set is ``secrets.token_urlsafe`` text.  Anything else (a quoted ``"\\351"``
    unquotes to "é") is ignored, as if absent, rather than reaching code that expects ASCII."""
    value = request.cookies.get(cookie_name(settings, base))
    return value if value and _COOKIE_VALUE.fullmatch(value) else None


class Browser:
    """The per-browser CSRF anchor: read from the cookie, or made fresh for this response."""

    def __init__(self, request: Request, settings: Settings, key: bytes) -> None:
        self._settings = settings
        self._key = key
        existing = read_cookie(request, settings, BROWSER_COOKIE)
        self.fresh = existing is None
        self.id = existing or secrets.token_urlsafe(32)

    @property
    def csrf(self) -> str:
        mac = hmac.new(self._key, b"csrf|" + self.id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def check(self, request: Request, submitted: str | None) -> None:
        """Refuse a form post that did not come from one of our pages in this browser."""
        origin = request.headers.get("origin")
        issuer = urlsplit(self._settings.issuer)
        if origin is not None and origin != f"{issuer.scheme}://{issuer.netloc}":
            raise PageError("Request refused", "This form was sent from another site.", status=403)
        if self.fresh or submitted is None or not same_text(submitted, self.csrf):
            raise PageError(
                "Request refused",
                "This form has expired or did not come from this site. Go back, reload the "
                "page and try again.",
                status=403,
            )

    def keep(self, response: Response) -> None:
        if self.fresh:
            set_cookie(response, self._settings, BROWSER_COOKIE, self.id, max_age=_BROWSER_MAX_AGE)


def _headers(nonce: str) -> dict[str, str]:
    return {
        # No script at all, one inline stylesheet, never framed.  (No form-action: browsers
        # apply it to the redirects after a post too, and sign-in ends at the client's
        # redirect_uri.)
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src data:; base-uri 'none'; "
            "frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: browsers then send a real Origin on our own form posts
        # (no-referrer makes it "null"), and still no referrer to other sites.
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def render(
    template: str,
    settings: Settings,
    *,
    status: int = 200,
    browser: Browser | None = None,
    **context: Any,
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _TEMPLATES.get_template(template).render(
        style_nonce=nonce,
        csrf=browser.csrf if browser else "",
        issuer_host=urlsplit(settings.issuer).netloc,
        home_url=settings.endpoint("/"),
        account_url=settings.endpoint("/account"),
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=_headers(nonce))
    if browser is not None:
        browser.keep(response)
    return response


def error_page(
    settings: Settings, error: PageError, browser: Browser | None = None
) -> HTMLResponse:
    return render(
        "error.html",
        settings,
        status=error.status,
        browser=browser,
        title=error.title,
        message=error.message,
    )


def redirect(url: str, *, status: int = 303, headers: Mapping[str, str] | None = None) -> Response:
    return RedirectResponse(
        url, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})}
    )
