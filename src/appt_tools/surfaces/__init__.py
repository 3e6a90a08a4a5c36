"""The ways in: the MCP server and its tools, the command line and demo, the HTTP app (plain function calls,
Vapi, Retell, webhooks) and the dashboard. Each parses raw input once (`arguments`) and calls the core."""
