"""One Starlette app for every HTTP route: MCP over streamable HTTP, `/tools`, the voice platforms, Cal.com
webhooks, the OpenAPI document and the dashboard. `app` builds it; see its docstring for the routes."""
