"""An MCP server (the MCP SDK's ``MCPServer``, streamable HTTP) whose tools Deputize protects.

``read_document`` needs ``docs:read``, ``write_document`` needs ``docs:write``.  Each tool
answers with who it acts for and the delegation chain it sees (the token's nested ``act``):
for alice's own MCP client there is no agent; for summary-agent, acting for research-agent,
acting for alice, the chain names both.

    python -m examples.mcp.server --issuer http://127.0.0.1:8000 --port 8001
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.types import ASGIApp

from deputize.verifier import Verifier
from deputize.verifier.mcp import DeputizeMCP, current_principal

SCOPES = ["docs:read", "docs:write"]
DOCUMENTS = {"1": "Q3 report: revenue grew 12%; churn fell to 2.1%."}


def create_app(issuer: str, url: str) -> ASGIApp:
    """The MCP server at ``url`` (its path is the MCP endpoint), trusting ``issuer``.

    ``allow_bearer=True``: the MCP SDK's client cannot send DPoP proofs yet, so its bearer
    tokens are accepted (never a DPoP-bound token sent as bearer); agents send DPoP.
    """
    deputize = DeputizeMCP(Verifier(issuer, url, allow_bearer=True))
    server = MCPServer("documents", token_verifier=deputize.token_verifier, auth=deputize.auth)

    @server.tool()
    async def read_document(doc_id: str) -> dict[str, Any]:
        """Read a document (needs docs:read)."""
        who = _caller("docs:read")
        if doc_id not in DOCUMENTS:
            raise ToolError(f"no document {doc_id!r}")
        return {"text": DOCUMENTS[doc_id], **who}

    @server.tool()
    async def write_document(doc_id: str, text: str) -> dict[str, Any]:
        """Write a document (needs docs:write)."""
        who = _caller("docs:write")
        DOCUMENTS[doc_id] = text
        return {"written": doc_id, **who}

    return deputize.protect(server.streamable_http_app(), scopes_supported=SCOPES)


def _caller(scope: str) -> dict[str, Any]:
    """Who the request acts for and the agents acting (oldest first), once ``scope`` is
    checked: Deputize verified the token, its proof and its chain before the tool ran."""
    principal = current_principal()
    if principal is None or not principal.has_scopes(scope):
        raise ToolError(f"insufficient_scope: this tool needs {scope}")
    return {
        "for": principal.user,
        "chain": list(principal.chain.actors),
        "client": principal.client_id,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Example MCP server protected by Deputize.")
    parser.add_argument("--issuer", required=True, help="Deputize's issuer URL")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    app = create_app(args.issuer, url)
    print(f"listening on {url}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


if __name__ == "__main__":
    main()
