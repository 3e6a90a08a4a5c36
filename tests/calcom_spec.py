"""Cal.com API v2 contract checks for tests, from Cal.com's own OpenAPI document.

    validate_request(method, path, query=, headers=, body=)   what a client sends
    validate_response(method, path_template, status, body)     what a server answers

Both raise AssertionError with a readable message on the first mismatch. The spec is loaded once
(from ../shared/calcom/ beside the repository) and checked against the SHA-256 recorded in
SOURCE.md there, since the exceptions below were written for exactly those bytes. Where this
module departs from the published document, it does so in the first section only:

- `_pin_known_spec_flaws`: the spec's known flaws (NOTES §11, plus three of the same kind);
- `_forbid_unknown_fields`: request bodies reject unknown fields, as Cal.com's pipes do (NOTES §1);
- `_ERROR_BODY_SCHEMA`: the two real error shapes, which the spec does not describe (NOTES §4).

Every other divergence fails. Set CALCOM_OPENAPI_SPEC to read the spec from elsewhere.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema.exceptions import ValidationError, best_match
from openapi_schema_validator import OAS30Validator, oas30_format_checker

__all__ = ["SPEC_PATH", "validate_request", "validate_response"]

# CI runs on a fresh clone with ../shared beside it (.ci/run).
_BESIDE_THE_REPO = Path(__file__).resolve().parents[2] / "shared" / "calcom" / "openapi-v2.json"
SPEC_PATH = Path(os.environ.get("CALCOM_OPENAPI_SPEC", _BESIDE_THE_REPO))
_SPEC_SHA256 = "daa3e48bc03a4bd31537e8e12c56ee2ab7e099eb301d17eed7f912f4a7378f3d"

VERSION_HEADER = "cal-api-version"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

Json = dict[str, Any]


# --- the one place where we depart from the published spec ------------------------------------


def _pin_known_spec_flaws(doc: Json) -> None:
    """Correct the published document where it is known to be wrong (NOTES §11), and nowhere else.

    Every correction names the exact node it replaces, so a spec update that moves or fixes it
    makes loading fail loudly instead of silently keeping a stale exception.
    """
    schemas = doc["components"]["schemas"]

    # §11.1 GET /v2/slots: the 200 schema says each date maps to an array of strings (and, being
    # placed at the top level, it even ignores the {"status","data"} envelope). The real API and
    # the spec's own example return slot objects {start} (+ end with format=range; seated types
    # add seat counts and bookingUid, NOTES §3.1).
    slots_200 = doc["paths"]["/v2/slots"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "oneOf" in slots_200["schema"], "spec changed at paths./v2/slots.get 200; re-check NOTES §11"
    slots_200["schema"] = {
        "type": "object",
        "required": ["status", "data"],
        "properties": {
            "status": {"type": "string", "enum": ["success"]},
            "data": {
                "type": "object",
                "additionalProperties": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["start"],
                        "properties": {
                            "start": {"type": "string"},
                            "end": {"type": "string"},
                            "bookingUid": {"type": "string"},
                            "seatsBooked": {"type": "number"},
                            "seatsRemaining": {"type": "number"},
                            "seatsTotal": {"type": "number"},
                            "attendeesCount": {"type": "number"},
                        },
                    },
                },
            },
        },
    }

    # §11.2 POST /v2/bookings: the body is a oneOf of the plain, instant and recurring inputs with
    # no discriminator, so an ordinary booking matches several branches. Treat it as anyOf: with
    # unknown fields forbidden (see _forbid_unknown_fields) each branch still rejects strays.
    create_body = doc["paths"]["/v2/bookings"]["post"]["requestBody"]["content"]["application/json"]
    create_body["schema"] = {"anyOf": create_body["schema"].pop("oneOf")}

    # §11.3 GET /v2/event-types: `users` items are objects {id, name, username, …}, not strings.
    users = schemas["EventTypeOutput_2024_06_14"]["properties"]["users"]
    assert users["items"] == {"type": "string"}, "spec changed at EventTypeOutput_2024_06_14.users"
    users["items"] = {"type": "object", "required": ["id"], "properties": {"id": {"type": "number"}}}

    # §11.4 GET /v2/bookings: the team filter is `teamsIds`. The parameter list already says so
    # (only its example says `teamIds`), and we check against parameter names, so nothing to pin.

    # §11.5 Booking `status` may also be `awaiting_host` (instant meetings), missing from every
    # booking output enum.
    pinned = 0
    for schema in schemas.values():
        status = schema.get("properties", {}).get("status", {})
        if sorted(status.get("enum", ())) == ["accepted", "cancelled", "pending", "rejected"]:
            status["enum"] = [*status["enum"], "awaiting_host"]
            pinned += 1
    assert pinned, "no booking status enum found; re-check NOTES §11"

    # Three more flaws of the same kind, found while writing this module and not yet listed in
    # NOTES §11; without them no real event-type response validates.
    # (a) Event-type `locations` items are a oneOf without a discriminator, and the
    #     organizersDefaultApp branch requires only `type`, so every location matches two
    #     branches. Each branch's description says "only allowed value for type is `<x>`":
    #     make that the discriminator.
    locations = schemas["EventTypeOutput_2024_06_14"]["properties"]["locations"]["items"]
    mapping = {}
    for branch in locations["oneOf"]:
        ref = branch["$ref"]
        type_value = schemas[ref.rsplit("/", 1)[-1]]["properties"]["type"]["example"]
        mapping[type_value] = ref
    # (d) Cal.com also outputs the attendee's own locations (`OutputAttendeePhoneLocation_2024_06_14`,
    #     `…AttendeeAddress…`, `…AttendeeDefined…` in packages/platform/types/event-types/
    #     event-types_2024_06_14/outputs/locations.output.ts, written by the internal-to-api
    #     `transformLocationsInternalToApi`), which this document leaves out: a phone-call event type's
    #     `{"type": "attendeePhone"}` matches no branch. Add them as Cal.com declares them.
    for kind in ("attendeePhone", "attendeeAddress", "attendeeDefined"):
        name = f"Output{kind[0].upper()}{kind[1:]}Location_2024_06_14"
        assert name not in schemas, f"the spec now has {name}; drop this correction"
        schemas[name] = {
            "type": "object",
            "properties": {"type": {"type": "string", "enum": [kind]}},
            "required": ["type"],
        }
        locations["oneOf"].append({"$ref": f"#/components/schemas/{name}"})
        mapping[kind] = f"#/components/schemas/{name}"
    locations["discriminator"] = {"propertyName": "type", "mapping": mapping}
    # (b) Event-type `bookingFields` items: every field schema types `isDefault` as `object`,
    #     though its description (and Cal.com) says a boolean, always true for the default fields
    #     and always false for custom ones; and the items are a oneOf without a discriminator whose
    #     default-field branches require only slug, isDefault and type and pin neither value, so
    #     every default field (notes, guests, title, rescheduleReason, …) matches several branches.
    #     Make `isDefault` boolean and split the items on it: a default field is discriminated by
    #     `slug` (each branch's slug default), a custom field by `type` (each branch's "only allowed
    #     value for type is `<x>`" example). One discriminator names one property, hence two, under
    #     a oneOf that isDefault true/false makes exclusive, not an anyOf: a non-boolean isDefault,
    #     an unknown slug or type, or a missing required key still fails. The email field's
    #     `required` is typed `object` too, though its description says it "can be set to false"
    #     (and it is true by default): make it boolean as well.
    by_kind: dict[bool, dict[str, str]] = {True: {}, False: {}}  # isDefault -> {slug or type: $ref}
    booking_fields = schemas["EventTypeOutput_2024_06_14"]["properties"]["bookingFields"]
    assert list(booking_fields["items"]) == ["oneOf"], "spec changed at EventTypeOutput_2024_06_14.bookingFields"
    for branch in booking_fields["items"]["oneOf"]:
        ref = branch["$ref"]
        field = schemas[ref.rsplit("/", 1)[-1]]["properties"]
        is_default = field["isDefault"]
        always = is_default["default"]
        assert {k: v for k, v in is_default.items() if k != "description"} == {
            "type": "object",
            "example": always,
            "default": always,
        } and isinstance(always, bool), f"spec changed at {ref}.isDefault"
        is_default["type"] = "boolean"
        key = field["slug"]["default"] if always else field["type"]["example"]
        assert key not in by_kind[always], f"two booking field branches for {key!r}"
        by_kind[always][key] = ref
    email_required = schemas["EmailDefaultFieldOutput_2024_06_14"]["properties"]["required"]
    assert set(email_required) == {"type", "description"} and email_required["type"] == "object", (
        "spec changed at EmailDefaultFieldOutput_2024_06_14.required"
    )
    email_required["type"] = "boolean"
    booking_fields["items"] = {
        "oneOf": [
            {
                "title": "default field" if always else "custom field",
                "type": "object",
                "required": ["isDefault"],
                "properties": {"isDefault": {"type": "boolean", "enum": [always]}},
                "oneOf": [{"$ref": ref} for ref in refs.values()],
                "discriminator": {"propertyName": "slug" if always else "type", "mapping": refs},
            }
            for always, refs in by_kind.items()
        ]
    }
    # (c) Nest's generator writes `X | null` as {"nullable": true, "allOf"/"$ref": …} with no
    #     `type`, where OpenAPI 3.0.3 ignores `nullable`; the API does send null (event-type
    #     `recurrence` is required and null when not recurring). Say "null or X" explicitly.
    _allow_declared_nulls(doc)

    # User webhooks: the output differs from UserWebhookOutputDto in four places (Cal.com's source and
    # its own e2e test agree): `id` is a string (a uuid), `triggers` items are trigger names, not
    # objects, and `payloadTemplate` and `secret` are null when unset.
    hook = schemas["UserWebhookOutputDto"]["properties"]
    assert hook["id"] == {"type": "number"}, "spec changed at UserWebhookOutputDto.id"
    assert hook["triggers"]["items"] == {"type": "object"}, "spec changed at UserWebhookOutputDto.triggers"
    assert hook["secret"] == {"type": "string"}, "spec changed at UserWebhookOutputDto.secret"
    assert hook["payloadTemplate"]["type"] == "string", "spec changed at UserWebhookOutputDto.payloadTemplate"
    hook["id"] = {"type": "string"}
    hook["triggers"]["items"] = {
        "type": "string",
        "enum": schemas["CreateWebhookInputDto"]["properties"]["triggers"]["enum"],
    }
    hook["secret"] = {"type": "string", "nullable": True}
    hook["payloadTemplate"] = {**hook["payloadTemplate"], "nullable": True}
    # The inputs' `triggers` is typed a string with an enum, though its example is a list and Cal.com's
    # DTO (apps/api/v2/src/modules/webhooks/inputs/webhook.input.ts: `@IsArray()`,
    # `@IsEnum(WebhookTriggerEvents, { each: true })`) takes a list of trigger names.
    for dto in ("CreateWebhookInputDto", "UpdateWebhookInputDto"):
        triggers = schemas[dto]["properties"]["triggers"]
        assert triggers["type"] == "string" and isinstance(triggers["example"], list), f"spec changed at {dto}.triggers"
        schemas[dto]["properties"]["triggers"] = {
            "type": "array",
            "items": {"type": "string", "enum": triggers["enum"]},
        }


def _allow_declared_nulls(node: object) -> None:
    if isinstance(node, dict):
        for value in node.values():
            _allow_declared_nulls(value)
        if node.get("nullable") is True and "type" not in node and ("allOf" in node or "$ref" in node):
            inner = {k: node.pop(k) for k in ("allOf", "$ref") if k in node}
            node["anyOf"] = [{"enum": [None]}, inner]
    elif isinstance(node, list):
        for value in node:
            _allow_declared_nulls(value)


def _forbid_unknown_fields(node: object) -> None:
    """Mirror Cal.com's `forbidNonWhitelisted` pipes (NOTES §1): an unknown request field is a 400.

    The spec never says `additionalProperties`, so without this a typo in a request body would pass.
    Applied to the copy of the document that request bodies are checked against, not to responses,
    which may grow fields at any time.
    """
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _forbid_unknown_fields(value)
    elif isinstance(node, list):
        for value in node:
            _forbid_unknown_fields(value)


# Not in the spec at all: the two error body shapes Cal.com really sends (NOTES §4). Used only for
# error statuses the operation does not declare.
_ERROR_BODY_SCHEMA: Json = {
    "oneOf": [
        {
            "title": "v2 envelope",
            "type": "object",
            "required": ["status", "error"],
            "properties": {
                "status": {"type": "string", "enum": ["error"]},
                "timestamp": {"type": "string"},
                "path": {"type": "string"},
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
        {
            "title": "plain Nest body",
            "type": "object",
            "required": ["statusCode", "message"],
            "properties": {"statusCode": {"type": "integer"}, "message": {"type": "string"}},
        },
    ]
}


# --- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operation:
    method: str
    template: str
    segments: tuple[str, ...]
    request_op: Json  # from the strict copy (unknown fields forbidden)
    response_op: Json  # from the pinned copy

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.template}"


@dataclass(frozen=True)
class _Spec:
    request_doc: Json
    response_doc: Json
    operations: tuple[_Operation, ...]


@functools.cache
def _spec() -> _Spec:
    raw = SPEC_PATH.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    assert digest == _SPEC_SHA256, (
        f"{SPEC_PATH} is not the spec the pinned exceptions were written for (sha256 {digest}); "
        "re-check NOTES §11 and update _SPEC_SHA256"
    )
    response_doc: Json = json.loads(raw)
    _pin_known_spec_flaws(response_doc)
    request_doc = copy.deepcopy(response_doc)
    _forbid_unknown_fields(request_doc["components"])
    for path_item in request_doc["paths"].values():
        for op in path_item.values():
            if isinstance(op, dict) and "requestBody" in op:
                _forbid_unknown_fields(op["requestBody"])

    operations = []
    for template, path_item in response_doc["paths"].items():
        for method, op in path_item.items():
            if method not in _METHODS:
                continue
            for param in op.get("parameters", ()):
                if param["name"].lower() == VERSION_HEADER:
                    _expected_versions(param)  # fail at load if the declaration changes shape
            operations.append(
                _Operation(
                    method=method,
                    template=template,
                    segments=tuple(template.strip("/").split("/")),
                    request_op=request_doc["paths"][template][method],
                    response_op=op,
                )
            )
    return _Spec(request_doc=request_doc, response_doc=response_doc, operations=tuple(operations))


@functools.cache
def _validator(side: str, schema_json: str) -> OAS30Validator:
    # Resolve $refs against the whole document: root the schema in a dict that carries components.
    doc = _spec().request_doc if side == "request" else _spec().response_doc
    root = {**json.loads(schema_json), "components": doc["components"]}
    return OAS30Validator(root, format_checker=oas30_format_checker)


def _check(side: str, schema: Json, instance: object, where: str) -> None:
    """Validate against the request copy (unknown fields forbidden) or the response copy."""
    errors = list(_validator(side, json.dumps(schema, sort_keys=True)).iter_errors(instance))
    if errors:
        raise AssertionError(f"{where}: {_describe(errors)}")


def _describe(errors: list[ValidationError]) -> str:
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return _describe_one(best_match(errors)) + more


def _describe_one(error: ValidationError) -> str:
    """One error, readable; for a failed anyOf/oneOf, the best reason each branch refused."""
    at = "/".join(str(p) for p in error.absolute_path) or "(root)"
    if error.validator in ("anyOf", "oneOf") and error.context:
        by_branch: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
        reasons = [
            f"[{_branch_name(error.validator_value[i], i)}] {_describe_one(best_match(subs))}"
            for i, subs in sorted(by_branch.items())
        ]
        return f"at {at}: matches no {error.validator} branch: " + "; ".join(reasons)
    return f"at {at}: {error.message}"


def _branch_name(schema: object, index: int) -> str:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return str(schema["$ref"]).rsplit("/", 1)[-1]
        if "title" in schema:
            return str(schema["title"])
    return f"branch {index}"


# --- matching ----------------------------------------------------------------------------------


def _match(method: str, path: str) -> _Operation:
    """The operation for a concrete path (or a template); literal segments beat `{params}`."""
    method = method.lower()
    segments = tuple(unquote(s) for s in path.split("?", 1)[0].strip("/").split("/"))
    candidates: list[tuple[int, _Operation]] = []
    for op in _spec().operations:
        if op.method != method or len(op.segments) != len(segments):
            continue
        literal = 0
        for want, got in zip(op.segments, segments, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    break
            elif want == got:
                literal += 1
            else:
                break
        else:
            candidates.append((literal, op))
    if not candidates:
        raise AssertionError(f"{method.upper()} {path}: no such operation in the Cal.com spec")
    return max(candidates, key=lambda c: c[0])[1]


def _params(op: Json, location: str) -> Iterator[Json]:
    return (p for p in op.get("parameters", ()) if p["in"] == location)


def _expected_versions(param: Json) -> tuple[str, ...]:
    """What the spec requires for cal-api-version: its enum if it gives one, else its default.

    The spec declares the header as a required string with a `default` and the description
    "Must be set to <default>" (no enum), so the default is the one accepted value (NOTES §2).
    """
    schema = param.get("schema", {})
    if "enum" in schema:
        return tuple(schema["enum"])
    default = schema.get("default")
    assert isinstance(default, str) and param.get("description") == f"Must be set to {default}", (
        f"unexpected {VERSION_HEADER} declaration {param!r}; re-check NOTES §2"
    )
    return (default,)


# --- the checks --------------------------------------------------------------------------------


def validate_request(
    method: str,
    path: str,
    *,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: object | None,
) -> None:
    """Check one request against the spec operation its concrete `path` matches.

    Query: no unknown names, every required one present, values valid for their schema (comma
    lists for array params). Headers: required ones present, `cal-api-version` exactly the value
    the operation declares (and absent where it declares none), `Authorization` shaped
    `Bearer <token>`. Body: present iff the operation takes one, valid against its schema with
    unknown fields forbidden.
    """
    op = _match(method, path)
    where = f"{op.name} (requested as {path})"

    declared = {p["name"]: p for p in _params(op.request_op, "query")}
    unknown = sorted(set(query) - set(declared))
    if unknown:
        raise AssertionError(f"{where}: unknown query parameter(s) {unknown}; the spec has {sorted(declared)}")
    for name, param in declared.items():
        if name not in query:
            if param.get("required"):
                raise AssertionError(f"{where}: required query parameter {name!r} is missing")
            continue
        schema = param.get("schema", {})
        _check("request", schema, _coerce(query[name], schema), f"{where}: query {name}={query[name]!r}")

    sent = {k.lower(): v for k, v in headers.items()}
    header_params = {p["name"].lower(): p for p in _params(op.request_op, "header")}
    for name, param in header_params.items():
        if name not in sent:
            if param.get("required"):
                raise AssertionError(f"{where}: required header {param['name']!r} is missing")
            continue
        if name == VERSION_HEADER:
            allowed = _expected_versions(param)
            if sent[name] not in allowed:
                raise AssertionError(f"{where}: {VERSION_HEADER} is {sent[name]!r}, the spec requires {allowed}")
    if VERSION_HEADER in sent and VERSION_HEADER not in header_params:
        raise AssertionError(f"{where}: sends {VERSION_HEADER} but the operation declares none (NOTES §2)")
    if "authorization" in sent and not re.fullmatch(r"Bearer \S+", sent["authorization"]):
        raise AssertionError(f"{where}: Authorization must be 'Bearer <token>'")

    request_body = op.request_op.get("requestBody")
    if request_body is None:
        if body is not None:
            raise AssertionError(f"{where}: sends a body but the operation takes none")
        return
    if body is None:
        if request_body.get("required"):
            raise AssertionError(f"{where}: the request body is required")
        return
    schema = request_body["content"]["application/json"]["schema"]
    _check("request", schema, body, f"{where}: body")


def validate_response(method: str, path_template: str, status: int, body: object) -> None:
    """Check one response body against the spec (with NOTES §11 pinned).

    `path_template` may be the template or a concrete path. An error status the operation does not
    declare is checked against Cal.com's two real error shapes (NOTES §4); an undeclared success
    status fails.
    """
    op = _match(method, path_template)
    where = f"{op.name} -> {status}"
    responses = op.response_op.get("responses", {})
    declared = responses.get(str(status))
    if declared is None:
        if status < 400:
            raise AssertionError(f"{where}: the spec declares only {sorted(responses)} for this operation")
        _check("response", _ERROR_BODY_SCHEMA, body, f"{where}: error body")
        if isinstance(body, dict) and "statusCode" in body and body["statusCode"] != status:
            raise AssertionError(f"{where}: error body says statusCode {body['statusCode']}")
        return
    content = declared.get("content", {}).get("application/json")
    if content is None:
        return
    _check("response", content["schema"], body, f"{where}: body")


def _coerce(value: str, schema: Json) -> object:
    """A query string value as the type its schema declares, so the schema can judge it."""
    kind = schema.get("type")
    if kind == "array":
        return [_coerce(item, schema.get("items", {})) for item in value.split(",")]
    if kind in ("number", "integer"):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value
