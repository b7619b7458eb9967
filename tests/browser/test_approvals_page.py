"""Approvals in a real browser: an agent waits, alice approves from her account page with the
keyboard alone on a phone-sized screen, and the agent's next poll gets its token.  A denial
and a form without its CSRF token are tried too."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from approval_support import approvals_config, ask, held_token, poll
from delegation_support import claims_of
from playwright.sync_api import Page, expect
from signin_support import PASSWORD, add_user

from support import LiveServer, ServerFactory

SHOTS = os.environ.get("DEPUTIZE_SCREENSHOTS")


@pytest.fixture
def live(server_factory: ServerFactory) -> LiveServer:
    server = server_factory.start(approvals_config())
    add_user(server, "alice")
    return server


def sign_in_to_account(page: Page, live: LiveServer) -> None:
    page.goto(live.url + "/account")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_approving_by_keyboard_on_a_small_screen(page: Page, live: LiveServer) -> None:
    auth_req_id = ask(live, held_token(live)).json()["auth_req_id"]
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in_to_account(page, live)
    request = page.locator("#approvals li").first
    expect(request).to_contain_text("agent-a, acting for you")
    expect(request).to_contain_text("wants to delete docs:/q3/report.pdf")
    expect(request).to_contain_text("Q3-42")
    expect(request).to_contain_text("UTC")  # times say their zone
    # Nothing wider than the screen: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "account-approvals")
    approve = page.get_by_role("button", name="Approve: delete docs:/q3/report.pdf")
    approve.focus()
    expect(approve).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Approved")
    expect(page.get_by_text("No agent is waiting for your approval.")).to_be_visible()
    shot(page, "account-approved")
    granted = poll(live, auth_req_id)
    assert granted.status_code == 200, granted.text
    assert claims_of(granted.json()["access_token"])["approval"]["by"] == "alice"


def test_deny_and_csrf(page: Page, live: LiveServer) -> None:
    auth_req_id = ask(live, held_token(live)).json()["auth_req_id"]
    sign_in_to_account(page, live)
    # The same form without its CSRF token is refused, and nothing is recorded.
    approval_id = page.locator('#approvals input[name="approval"]').first.get_attribute("value")
    assert approval_id
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    forged = httpx.post(live.url + "/account/approvals", cookies=cookies,
                        data={"approval": approval_id, "decision": "approve"})  # fmt: skip
    assert forged.status_code in (400, 403)
    assert poll(live, auth_req_id).json()["error"] == "authorization_pending"
    page.get_by_role("button", name="Deny: delete docs:/q3/report.pdf").click()
    expect(page.get_by_role("status")).to_contain_text("Denied")
    assert poll(live, auth_req_id).json()["error"] == "access_denied"
