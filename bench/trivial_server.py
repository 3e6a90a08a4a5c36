"""The cold-start reference: the smallest MCP server the SDK makes, one tool, served over stdio.
Launched exactly like `appt-tools serve` (a Python script started by the client), nothing else differs."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("trivial", log_level="WARNING")


@server.tool()
def ping() -> str:
    """Answers 'pong'."""
    return "pong"


if __name__ == "__main__":
    server.run()
