"""The MCP example: see __main__.py and docs/mcp.md."""
