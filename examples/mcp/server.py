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
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.types import ASGIApp

from deputize.verifier.mcp import mcp_auth, protect

DOCUMENTS = {"1": "Q3 report: revenue grew 12%; churn fell to 2.1%."}


def create_app(issuer: str, url: str) -> ASGIApp:
    """The MCP server at ``url`` (its path is the MCP endpoint), trusting ``issuer``."""
    server = MCPServer("documents", **mcp_auth(issuer, url, allow_bearer=True))

    @server.tool()
    def read_document(doc_id: str) -> dict[str, Any]:
        """Read a document (needs docs:read)."""
        who = _caller("docs:read")
        if doc_id not in DOCUMENTS:
            raise ToolError(f"no document {doc_id!r}")
        return {"text": DOCUMENTS[doc_id], **who}

    @server.tool()
    def write_document(doc_id: str, text: str) -> dict[str, Any]:
        """Write a document (needs docs:write)."""
        who = _caller("docs:write")
        DOCUMENTS[doc_id] = text
        return {"written": doc_id, **who}

    return protect(server.streamable_http_app(), issuer, url)


def _caller(scope: str) -> dict[str, Any]:
    """Who the request acts for and the chain of agents acting, once ``scope`` is checked."""
    token = get_access_token()
    if token is None or scope not in token.scopes:
        raise ToolError(f"insufficient_scope: this tool needs {scope}")
    claims = token.claims or {}
    chain, act = [], claims.get("act")
    while isinstance(act, dict):  # RFC 8693 §4.1: the outermost act is the current actor
        chain.append(act.get("sub"))
        act = act.get("act")
    return {"for": token.subject, "client": token.client_id, "chain": chain}


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
