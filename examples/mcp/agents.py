"""Agents delegating: research-agent acts for alice and hands a read-only piece to summary-agent,
which calls the same MCP server with its own DPoP-bound token.

research-agent exchanges alice's token from her identity provider for its own (RFC 8693;
Deputize's ``delegation.grants`` lets it act for her), narrowed to the MCP server and to
``docs:read docs:write``.  It hands ``docs:read`` alone to summary-agent, which redeems the
single-use hand-off with its own key and connects with the MCP SDK's client: every request
carries ``Authorization: DPoP`` and a fresh proof, added by ``deputize.agent``.  The tool sees
the whole chain: summary-agent, acting for research-agent, acting for alice.
"""

from __future__ import annotations

from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from deputize.agent import JWT_TYPE, AsyncAgentClient, Token
from deputize.keys import SigningKey

from .client import describe


async def delegate(
    issuer: str, mcp_url: str, user_token: str, keys: dict[str, SigningKey]
) -> list[str]:
    """The two agents' story; returns what to print."""
    lines = []
    async with (
        AsyncAgentClient(issuer, "research-agent", client_key=keys["research-agent"]) as research,
        AsyncAgentClient(issuer, "summary-agent", client_key=keys["summary-agent"]) as summary,
    ):
        token = await research.exchange(
            user_token,
            subject_token_type=JWT_TYPE,
            scope="docs:read docs:write",
            resource=mcp_url,
            task="weekly-summary",
        )
        lines.append(f"research-agent holds: {_show(token)}")
        handoff = await research.hand_off(token, to="summary-agent", scope="docs:read")
        piece = await summary.redeem(handoff)
        lines.append(f"summary-agent holds: {_show(piece)}")
        async with (
            httpx2.AsyncClient(auth=summary.auth(piece), timeout=30) as http,
            Client(streamable_http_client(mcp_url, http_client=http)) as client,
        ):
            for name, arguments in (
                ("read_document", {"doc_id": "1"}),
                ("write_document", {"doc_id": "1", "text": "Rewritten by an agent"}),
            ):
                result = await client.call_tool(name, arguments)
                lines.append(f"summary-agent {name}: {describe(result)}")
    return lines


def _show(token: Token) -> str:
    claims: dict[str, Any] = dict(token.claims)
    return (
        f"{token.token_type} sub={claims['sub']} act={claims['act']} scope={' '.join(token.scope)}"
    )
