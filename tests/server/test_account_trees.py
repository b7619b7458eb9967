"""The account page's "Agents acting for you now": alice's live delegation trees, a revoke
button on every node (confirmation, then a cascade), and her recent activity."""

from __future__ import annotations

import pytest
from delegation_support import (
    TOKEN_EXCHANGE,
    claims_of,
    delegation_config,
    exchange,
    introspect,
    start_chain,
)
from signin_support import Browser, add_user, hidden_fields

from support import LiveServer, ServerFactory


@pytest.fixture
def live(server_factory: ServerFactory) -> LiveServer:
    grants = ["client_credentials", TOKEN_EXCHANGE]
    server = server_factory.start(
        delegation_config(
            agent_overrides={"agent-c": {"grant_types": grants}},
            grants=[{"subject": "*", "agents": ["agent-a", "agent-c"]}],
        )
    )
    add_user(server, "alice")
    add_user(server, "bob")
    return server


def _chain(live: LiveServer) -> tuple[str, str, str]:
    """alice -> agent-a -> agent-a (narrower) -> a sub-agent: root, middle and leaf tokens."""
    root = start_chain(live, task="t-1")
    middle = exchange(live, "agent-a", root, scope="docs:read")
    assert middle.status_code == 200, middle.text
    leaf = exchange(live, "agent-a", middle.json()["access_token"], scope="docs:read")
    assert leaf.status_code == 200, leaf.text
    return root, middle.json()["access_token"], leaf.json()["access_token"]


def _signed_in(live: LiveServer, user: str = "alice") -> Browser:
    browser = Browser(live)
    assert browser.sign_in(user).status_code == 303
    return browser


def test_the_page_shows_the_chain_nested_and_revoking_the_middle_cascades(
    live: LiveServer,
) -> None:
    root, middle, leaf = _chain(live)
    browser = _signed_in(live)
    try:
        page = browser.get("/account")
        assert page.status_code == 200
        section = page.text.split('id="acting"', 1)[1].split('id="approvals-heading"', 1)[0]
        assert 'role="tree"' in section and "Task t-1" in section
        jtis = [claims_of(t)["jti"] for t in (root, middle, leaf)]
        # Nested: the leaf's node comes inside the middle's, which is inside the root's.
        at = [section.index(f'value="{j}"') for j in jtis]
        assert at[0] < at[1] < at[2]
        assert section.count('role="group"') >= 2
        csrf = hidden_fields(page.text)["csrf"][0]
        confirm = browser.post_form("/account/tokens/revoke", {"csrf": csrf, "token": jtis[1]})
        assert confirm.status_code == 200, confirm.text
        assert "Revoke 2 tokens?" in confirm.text and "Yes, revoke" in confirm.text
        assert introspect(live, middle)["active"] is True  # nothing revoked yet
        done = browser.post_form(
            "/account/tokens/revoke", {"csrf": csrf, "token": jtis[1], "confirm": "yes"}
        )
        assert done.status_code == 303, done.text
        assert introspect(live, middle)["active"] is False
        assert introspect(live, leaf)["active"] is False
        assert introspect(live, root)["active"] is True
        after = browser.get("/account").text
        assert f'value="{jtis[1]}"' not in after and f'value="{jtis[0]}"' in after
        assert 'id="activity"' in after
    finally:
        browser.close()


def test_without_csrf_nothing_is_revoked(live: LiveServer) -> None:
    root, _, _ = _chain(live)
    browser = _signed_in(live)
    try:
        refused = browser.post_form(
            "/account/tokens/revoke", {"token": claims_of(root)["jti"], "confirm": "yes"}
        )
        assert refused.status_code >= 400
        assert introspect(live, root)["active"] is True
    finally:
        browser.close()


def test_another_persons_token_is_refused(live: LiveServer) -> None:
    root, _, _ = _chain(live)
    browser = _signed_in(live, "bob")
    try:
        page = browser.get("/account")
        assert 'id="no-acting"' in page.text
        csrf = hidden_fields(page.text)["csrf"][0]
        jti = claims_of(root)["jti"]
        refused = browser.post_form(
            "/account/tokens/revoke", {"csrf": csrf, "token": jti, "confirm": "yes"}
        )
        unknown = browser.post_form(
            "/account/tokens/revoke", {"csrf": csrf, "token": "no-such", "confirm": "yes"}
        )
        assert refused.status_code == unknown.status_code >= 400
        assert "not yours, or no longer live" in refused.text
        assert introspect(live, root)["active"] is True
    finally:
        browser.close()
