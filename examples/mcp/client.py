"""A person's MCP client: the official MCP SDK signs alice in at Deputize and calls both tools.

Nothing here is Deputize code.  The SDK's ``OAuthClientProvider`` finds Deputize through the
MCP server's RFC 9728 metadata, registers itself (RFC 7591 dynamic registration), sends alice
to ``/authorize`` with PKCE and ``resource`` (RFC 8707), and redeems the code.  A real client
opens a browser at the authorization URL; this script plays the browser with an HTTP client
that fills in Deputize's sign-in and consent forms, so the example runs unattended.

    python -m examples.mcp.client http://127.0.0.1:8001/mcp alice   # asks for the password
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import html
import re
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.types import CallToolResult

#: Where the SDK asks Deputize to send alice back.  Nothing listens there: the scripted
#: browser reads the code from the redirect instead of following it.
REDIRECT_URI = "http://127.0.0.1:33418/callback"


class MemoryStorage(TokenStorage):
    """The SDK's token storage, in memory (a real client keeps it in the user's keychain)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class ScriptedBrowser:
    """Stands in for the person's browser: signs in and allows on the consent page."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.result: AuthorizationCodeResult | None = None

    async def open(self, authorization_url: str) -> None:
        """The SDK's redirect handler: /authorize -> sign-in form -> consent form -> redirect."""
        async with httpx.AsyncClient(timeout=30) as browser:  # keeps the session cookie
            response = await browser.get(authorization_url)
            for _ in range(6):
                if response.status_code in (302, 303):
                    location = urljoin(str(response.url), response.headers["location"])
                    if location.startswith(REDIRECT_URI):
                        self.result = _code_from(location)
                        return
                    response = await browser.get(location)
                    continue
                action = re.search(r'<form method="post" action="([^"]+)"', response.text)
                if response.status_code != 200 or action is None:
                    break
                fields = _hidden_fields(response.text)
                if 'name="password"' in response.text:  # the sign-in form
                    fields.update(username=self.username, password=self.password)
                else:  # the consent page: alice allows
                    fields["decision"] = "allow"
                target = urljoin(str(response.url), html.unescape(action[1]))
                response = await browser.post(target, data=fields)
        raise SystemExit(f"the sign-in did not come back ({response.status_code})")

    async def callback(self) -> AuthorizationCodeResult:
        """The SDK's callback handler: the code and state the redirect carried."""
        assert self.result is not None, "the redirect handler runs first"
        return self.result


def _code_from(location: str) -> AuthorizationCodeResult:
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if "code" not in query:
        raise SystemExit(f"the sign-in was refused: {query}")
    return AuthorizationCodeResult(
        code=query["code"], state=query.get("state"), iss=query.get("iss")
    )


def _hidden_fields(page: str) -> dict[str, Any]:
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {html.unescape(name): html.unescape(value) for name, value in found}


async def call_tools(mcp_url: str, username: str, password: str) -> list[str]:
    """Sign in through the SDK and call both tools; returns what to print."""
    browser = ScriptedBrowser(username, password)
    oauth = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata.model_validate(
            {  # what it registers (RFC 7591 §2): a public client on a loopback redirect
                "client_name": "Example MCP client",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        ),
        storage=(storage := MemoryStorage()),
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )
    lines = []
    async with (
        httpx2.AsyncClient(auth=oauth, timeout=30) as http,
        Client(streamable_http_client(mcp_url, http_client=http)) as client,
    ):
        assert storage.client_info is not None and storage.tokens is not None
        lines.append(
            f"registered as {storage.client_info.client_id}; "
            f"token_type={storage.tokens.token_type} scope={storage.tokens.scope}"
        )
        tools = await client.list_tools()
        lines.append("tools: " + ", ".join(sorted(tool.name for tool in tools.tools)))
        for name, arguments in (
            ("read_document", {"doc_id": "1"}),
            ("write_document", {"doc_id": "2", "text": "Notes from alice"}),
        ):
            result = await client.call_tool(name, arguments)
            lines.append(f"{name}: {describe(result)}")
    return lines


def describe(result: CallToolResult) -> str:
    """A tool result in one line: its structured content, or the error it reports."""
    if result.is_error:
        return "error: " + " ".join(getattr(block, "text", "") for block in result.content)
    return str(result.structured_content)


def main() -> None:
    parser = argparse.ArgumentParser(description="Sign in with the MCP SDK and call the tools.")
    parser.add_argument("mcp_url", help="the MCP server's URL, e.g. http://127.0.0.1:8001/mcp")
    parser.add_argument("username")
    args = parser.parse_args()
    password = getpass.getpass(f"{args.username}'s password at Deputize: ")
    for line in asyncio.run(call_tools(args.mcp_url, args.username, password)):
        print(line)


if __name__ == "__main__":
    main()
