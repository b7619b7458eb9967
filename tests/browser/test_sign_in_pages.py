"""The sign-in pages in a real browser: sign-in, consent, denial, consent withdrawal, a wrong
password, keyboard order and labels.  The client's redirect URI is answered by a route in the
browser, so the test sees exactly where the user lands."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, Route, expect
from signin_support import PASSWORD, WEB_REDIRECT, auth_params, query_of, start

from support import LiveServer, ServerFactory

SHOTS = os.environ.get("DEPUTIZE_SCREENSHOTS")  # set to a folder to keep every page's picture


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


@pytest.fixture
def landed(page: Page) -> list[str]:
    """Every URL the browser was sent to at the client's redirect URI."""
    seen: list[str] = []

    def answer(route: Route) -> None:
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Back at the app</h1>")

    page.route("http://127.0.0.1:9/**", answer)
    return seen


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def open_authorize(page: Page, server: LiveServer, **extra: str) -> dict[str, str]:
    params = auth_params(scope="openid profile email docs:read mail:send", **extra)
    page.goto(server.url + "/authorize?" + urlencode(params))
    return params


def sign_in(page: Page, username: str = "alice", password: str = PASSWORD) -> None:
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_and_consent_return_a_code(
    page: Page, server: LiveServer, landed: list[str]
) -> None:
    params = open_authorize(page, server)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("to continue to Example Docs")).to_be_visible()
    shot(page, "sign-in")
    sign_in(page)
    expect(page.get_by_role("heading", name="Allow Example Docs to act for you?")).to_be_visible()
    expect(page.locator("#scopes").get_by_text("See your docs")).to_be_visible()
    expect(page.get_by_text("AI agents that may act for you")).to_be_visible()
    shot(page, "consent")
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Back at the app")).to_be_visible()
    (url,) = landed
    assert url.startswith(WEB_REDIRECT + "?")
    result = query_of(url)
    assert result["state"] == params["state"] and result["iss"] == server.url and result["code"]


def test_denial_returns_access_denied(page: Page, server: LiveServer, landed: list[str]) -> None:
    open_authorize(page, server)
    sign_in(page)
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Back at the app")).to_be_visible()
    assert query_of(landed[0])["error"] == "access_denied"


def test_wrong_password_is_said_plainly_and_keeps_the_name(
    page: Page, server: LiveServer, landed: list[str]
) -> None:
    open_authorize(page, server)
    sign_in(page, password="not my password")
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page.get_by_label("User name")).to_have_value("alice")
    shot(page, "wrong-password")
    sign_in(page)
    expect(page.get_by_role("heading", name="Allow Example Docs to act for you?")).to_be_visible()
    assert landed == []


def test_withdrawing_consent_on_the_account_page(
    page: Page, server: LiveServer, landed: list[str]
) -> None:
    open_authorize(page, server)
    sign_in(page)
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Back at the app")).to_be_visible()
    page.goto(server.url + "/account")
    expect(page.get_by_text("Apps and agents you allowed")).to_be_visible()
    expect(page.get_by_text("Example Docs")).to_be_visible()
    shot(page, "account")
    page.get_by_role("button", name="Withdraw access from Example Docs").click()
    expect(page.get_by_role("status")).to_contain_text("Access withdrawn")
    expect(page.get_by_text("You have not allowed any app or agent")).to_be_visible()
    shot(page, "account-withdrawn")


def test_keyboard_order_and_labels(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/login")
    # The user name field has focus first; Tab walks name -> password -> button.
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()


def test_unregistered_redirect_is_shown_not_followed(
    page: Page, server: LiveServer, landed: list[str]
) -> None:
    open_authorize(page, server, redirect_uri="http://127.0.0.1:9/elsewhere")
    expect(page.get_by_role("heading", name="Sign-in request refused")).to_be_visible()
    shot(page, "error")
    assert landed == []


def test_the_pages_link_to_each_other_and_dates_have_one_format(
    page: Page, server: LiveServer, landed: list[str]
) -> None:
    """Home -> account (sign-in first) -> home by the header; consent -> account page; sign out
    -> sign in again.  Every date has the same shape, with time and zone."""
    date = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Deputize at {server.url[7:]}")
    expect(page.locator("#issuer")).to_have_text(server.url)
    expect(page.get_by_role("main")).to_be_visible()
    expect(page.get_by_role("banner")).to_be_visible()
    shot(page, "home")
    page.get_by_role("link", name="Authorization server metadata").click()
    expect(page.get_by_text(f'"issuer":"{server.url}"')).to_be_visible()
    page.go_back()
    page.get_by_role("link", name="Your account").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Deputize").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Deputize at")

    open_authorize(page, server)
    sign_in(page)
    expect(page.get_by_role("heading", name="Allow Example Docs to act for you?")).to_be_visible()
    promised = page.get_by_text(re.compile(r"^Until .*, unless you withdraw it")).inner_text()
    assert date.search(promised), promised
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Back at the app")).to_be_visible()
    open_authorize(page, server, prompt="consent")
    page.get_by_role("link", name="your account page").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    shown = page.locator("#consents").get_by_text(re.compile(r"^Until ")).first.inner_text()
    assert date.fullmatch(shown.removeprefix("Until ")), shown
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    page.get_by_role("link", name="sign in again").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
