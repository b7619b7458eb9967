"""The front door: ``/`` for a browser, unchanged for programs; the pages link to each other;
every date on a page has one format, with time and zone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from signin_support import Browser, auth_params, hidden_fields, query_of, start

from deputize.server import cli
from deputize.server.endpoints.home import wants_html
from deputize.server.http.dates import when

from support import LiveServer, ServerFactory

#: What Chromium and Firefox send on a navigation.
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\b")


@pytest.fixture
def signin_server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


@pytest.fixture
def browser(signin_server: LiveServer) -> Iterator[Browser]:
    b = Browser(signin_server)
    yield b
    b.close()


def _links(page: str) -> dict[str, str]:
    """Each link's visible text (tags and spacing collapsed) -> its href."""
    found = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', page, re.S)
    return {" ".join(re.sub(r"<[^>]+>", "", text).split()): href for href, text in found}


def test_a_browser_opening_the_issuer_gets_a_page(server: LiveServer) -> None:
    response = server.client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    # The same protections as every other page: no script, never framed, never cached.
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["vary"] == "Accept"
    page = response.text
    assert f'<code class="issuer" id="issuer">{server.url}</code>' in page
    assert "<main>" in page and "<h1>" in page
    links = _links(page)
    assert links["Your account"] == server.url + "/account"
    assert links["Authorization server metadata"] == (
        server.url + "/.well-known/oauth-authorization-server"
    )
    assert links["Signing keys"] == server.url + "/jwks"
    assert links["Deputize"] == server.url + "/"
    # The links lead somewhere: the discovery document, and sign-in for the account page.
    assert server.client.get(links["Authorization server metadata"]).json()["issuer"] == server.url
    account = server.client.get(links["Your account"])
    assert account.status_code == 302 and "/login?" in account.headers["location"]


def test_a_head_request_from_a_browser_gets_the_page_headers(server: LiveServer) -> None:
    response = server.client.head("/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    ("method", "accept"),
    [
        ("GET", None),
        ("GET", "*/*"),
        ("GET", "application/json"),
        ("GET", "text/*"),
        ("GET", "text/html;q=0"),
        ("GET", "text/html; q=0.000"),
        ("GET", "text/html;q=bogus"),
        ("GET", "application/xhtml+xml"),
        ("POST", BROWSER_ACCEPT),
        ("PUT", "text/html"),
        ("DELETE", "text/html"),
        ("PROPFIND", "text/html"),
    ],
    ids=[
        "no Accept gets the JSON 404",
        "curl's wildcard is not a browser",
        "a JSON client gets the JSON 404",
        "text/* alone is not a browser",
        "text/html refused with q=0 gets the JSON 404",
        "text/html refused with q=0.000 gets the JSON 404",
        "an unreadable weight is not a yes",
        "a type merely like HTML is not HTML",
        "a POST, even from a browser, gets the JSON 404",
        "a PUT gets the JSON 404",
        "a DELETE gets the JSON 404",
        "any other method gets the JSON 404",
    ],
)
def test_programs_still_get_the_json_404(
    server: LiveServer, method: str, accept: str | None
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    response = server.client.request(method, "/", headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "not_found", "error_description": "Not Found"}
    assert response.headers["vary"] == "Accept"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/html", True),
        ("TEXT/HTML", True),
        ("application/json, text/html;q=0.1", True),
        ("text/html ; q=1.0 ; level=1", True),
        ("", False),
        ("text/html;q=0", False),
        ("text/html;q=-1", False),
        ("text/htmlx", False),
        ("*/*;q=1", False),
    ],
    ids=[
        "text/html is HTML",
        "media types are case-insensitive",
        "a low but non-zero weight still counts",
        "spaces and other parameters are allowed",
        "an empty header is not HTML",
        "q=0 means not acceptable",
        "a negative weight is not acceptable",
        "a longer type is not text/html",
        "a wildcard is not HTML",
    ],
)
def test_wants_html_reads_accept(accept: str, expected: bool) -> None:
    assert wants_html(accept) is expected


def test_other_unknown_paths_are_unchanged(server: LiveServer) -> None:
    response = server.client.get("/nothing-here", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_one_date_format_with_time_and_zone() -> None:
    assert when(1_796_406_000) == "2026-12-04 17:40 UTC"
    assert when(1_796_406_012, seconds=True) == "2026-12-04 17:40:12 UTC"


def test_the_sign_in_pages_link_to_each_other_and_show_dates_alike(
    signin_server: LiveServer, browser: Browser
) -> None:
    url = signin_server.url
    sign_in = browser.get("/login")
    assert _links(sign_in.text)["Deputize"] == url + "/", "sign-in links to the home page"

    response = browser.authorize(auth_params(scope="openid docs:read"))
    next_ = query_of(response.headers["location"])["next"]
    consent = browser.get(browser.sign_in(next_=next_).headers["location"])
    links = _links(consent.text)
    assert links["your account page"] == url + "/account", "consent links to the account page"
    assert links["Deputize"] == url + "/"
    (until,) = re.findall(r"Until (.*?), unless", consent.text)
    assert DATE.fullmatch(until), until

    assert browser.consent(consent).status_code in (302, 303)
    account = browser.get("/account")
    (shown,) = re.findall(r"Until (.*?)</div>", account.text)
    assert DATE.fullmatch(shown), shown
    assert "Sign out" in account.text and _links(account.text)["Deputize"] == url + "/"

    signed_out = browser.post_form("/logout", {"csrf": hidden_fields(account.text)["csrf"][0]})
    assert signed_out.status_code == 200
    assert _links(signed_out.text)["sign in again"] == url + "/account"


def test_the_command_line_shows_dates_the_same_way(
    signin_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "deputize.yaml"
    config.write_text(
        yaml.safe_dump(
            {"issuer": signin_server.url, "database": {"url": signin_server.settings.database_url}}
        )
    )
    assert cli.main(["users", "list", "--config", str(config)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert rows and all(re.search(r" \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC ", r) for r in rows)
    aligned = header.index("NAME / EMAIL") == rows[0].index("Alice Example")
    assert aligned, "the columns still line up"
