"""The OpenAPI 3.1 document of the plain endpoints (`GET /openapi.json`), generated from the live tool
list: each tool is `POST /tools/{name}` with its input schema as the body and its output schema as the
200 answer; every error status answers `{"error": ErrorView}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp.types import Tool as MCPTool

from appt_tools import __version__
from appt_tools.speech.results import ErrorView
from appt_tools.surfaces.schema_formats import strict_schema

ERROR_STATUSES = {
    "400": "The body is not a JSON object, or an operator key names no tenant (send X-Tenant).",
    "401": "Missing or invalid API key.",
    "403": "A browser request to a loopback server (refused), or X-Tenant names a tenant this key does not act for.",
    "404": "No such appointment, event type, tool or tenant (X-Tenant).",
    "409": "The slot is taken (see `alternatives`), or the appointment cannot change any more.",
    "413": "The body is too large.",
    "415": "The body is not sent as application/json.",
    "422": "An argument is wrong; `field` names it.",
    "429": "Cal.com's rate limit; see Retry-After.",
    "500": "Unexpected failure (nothing about it is shared).",
    "502": "Cal.com refused us, or did not confirm a booking (do not retry it blindly).",
    "503": "Cal.com is not configured or not answering; retry later.",
}


# Serving several businesses (docs/deployment.md): an operator key names the business it acts for.
X_TENANT = {
    "name": "X-Tenant",
    "in": "header",
    "required": False,
    "description": "The business (tenant slug) this call acts for, e.g. 'dr-lee-dental'. Only an operator key "
    "needs it, when the deployment serves several businesses; a business's own key acts for that business.",
    "schema": {
        "type": "string",
        "maxLength": 63,
        "pattern": "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    },  # store.tenants.SLUG
}


def openapi_document(tools: Sequence[MCPTool]) -> dict[str, Any]:
    """OpenAPI 3.1 for the plain endpoints, generated from the live tool list."""
    schemas: dict[str, Any] = {}
    error_view = _hoist(ErrorView.model_json_schema(), "ErrorView", schemas)
    schemas["ErrorView"] = error_view
    schemas["Error"] = {
        "type": "object",
        "properties": {"error": {"$ref": "#/components/schemas/ErrorView"}},
        "required": ["error"],
    }
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    errors = {status: {"description": text, "content": error_content} for status, text in ERROR_STATUSES.items()}
    paths: dict[str, Any] = {"/healthz": _healthz_path()}
    for tool in tools:
        output = _hoist(tool.output_schema or {"type": "object"}, tool.name, schemas)
        paths[f"/tools/{tool.name}"] = {
            "post": {
                "operationId": tool.name,
                "summary": tool.title or tool.name,
                "description": tool.description or "",
                "parameters": [{"$ref": "#/components/parameters/XTenant"}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _arguments(_hoist(strict_schema(tool.input_schema), tool.name, schemas))
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The tool's result; `say` is a sentence to read aloud.",
                        "content": {"application/json": {"schema": output}},
                    },
                    **errors,
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "appt-tools",
            "version": __version__,
            "description": "Appointment-booking tools as plain JSON function calls: POST the arguments as a JSON "
            'object, get the tool\'s result (with `say`, a sentence to read aloud) or {"error": ErrorView}.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": {"XTenant": X_TENANT},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


def _healthz_path() -> dict[str, Any]:
    health = {
        "type": "object",
        "properties": {
            "status": {"const": "ok"},
            "version": {"type": "string"},
            "calcom_configured": {"type": "boolean"},
            "sandbox": {"type": "boolean"},
        },
        "required": ["status", "version", "calcom_configured", "sandbox"],
    }
    return {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness and configuration flags (no secrets)",
            "security": [],
            "responses": {"200": {"description": "Serving.", "content": {"application/json": {"schema": health}}}},
        }
    }


def _arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """The strict input schema lists every argument as required and makes optional ones nullable
    (what OpenAI and Anthropic need). Over plain HTTP an optional argument may also be left out."""
    result = dict(schema)
    properties: dict[str, Any] = schema.get("properties", {})
    result["required"] = [name for name, prop in properties.items() if not _nullable(prop)]
    return result


def _nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(option.get("type") == "null" for option in prop.get("anyOf", ()))


def _hoist(schema: dict[str, Any], owner: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` moved into the document's components (a `#/$defs/...` reference would
    resolve against the OpenAPI document's root); a name already taken by a different schema is
    prefixed with `owner`."""
    result = dict(schema)
    definitions: dict[str, Any] = result.pop("$defs", {})
    # All or none of one schema's definitions are renamed, so their references to each other hold.
    clash = any(schemas.get(name, _with_refs(d, {})) != _with_refs(d, {}) for name, d in definitions.items())
    renamed = {name: f"{owner}.{name}" if clash else name for name in definitions}
    for name, definition in definitions.items():
        schemas[renamed[name]] = _with_refs(definition, renamed)
    rewritten: dict[str, Any] = _with_refs(result, renamed)  # a copy: the tool's own schema is left alone
    return rewritten


def _with_refs(node: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_with_refs(item, renamed) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _with_refs(value, renamed) for key, value in node.items()}
    ref = result.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        result["$ref"] = f"#/components/schemas/{renamed.get(name, name)}"
    return result
