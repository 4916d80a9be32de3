"""The OpenAPI 3.1 document of the REST API, built from the route and method tables.

Every syscall route's params come from :data:`qmk.abi.methods.METHODS` (JSON types,
required, defaults, docs); its verb, path, status and where each param travels from
:data:`qmk.http.routes.SYSCALL_ROUTES`; errors are problem documents
(:mod:`qmk.http.problems`). ``GET /openapi.json`` serves it; ``GET /docs`` serves
:func:`render_docs`, a page made from it with no script and nothing fetched from elsewhere.

>>> doc = openapi_document()
>>> doc["openapi"], sorted(doc["paths"]["/v1/jobs/{job_id}"])
('3.1.0', ['delete', 'get'])
"""

from __future__ import annotations

import functools
import html
import json
from typing import Any

from qmk.abi.methods import ParamSpec
from qmk.abi.probing import version
from qmk.http.programs import PROGRAM_FORMATS
from qmk.http.routes import OTHER_ROUTES, SYSCALL_ROUTES, SyscallRoute

_ERRORS = {
    "400": "the body is not JSON, or nests too deeply",
    "401": "no session, or a session that is forged, revoked or expired (QS1001-QS1003)",
    "403": "a capability the session lacks, or the entanglement firewall (QS1004, QS1010)",
    "404": "no such job, channel or checkpoint of this tenant (QS1005)",
    "409": "the request does not fit the object's state (QS1009)",
    "413": "the body is longer than the server's limit",
    "415": "a body that is not application/json",
    "422": "params that do not fit the method, a program that does not lower or verify, or "
    "values out of range (QR32602, QS1007, QS1008, QS1012, QL..., QA..., QF...)",
    "429": "a tenant quota would be exceeded (QS1006)",
    "503": "the kernel is draining or cannot take the request now (QS1011)",
}


def _schema(param: ParamSpec) -> dict[str, Any]:
    types = [t.value for t in param.types]
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    if param.items is not None:
        schema["items"] = {"type": param.items.value}
    if not param.required and param.json_default is not None:
        schema["default"] = param.json_default
    schema["description"] = param.doc
    return schema


def _problem_response(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _operation(route: SyscallRoute) -> dict[str, Any]:
    spec = route.spec
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _schema(spec.param(name)),
            "description": spec.param(name).doc,
        }
        for name in route.path_params
    ]
    for name in route.query:
        param = spec.param(name)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": param.required,
                "schema": _schema(param),
                "description": param.doc,
            }
        )
    if route.program:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "as the body's idempotency_key (the body's wins)",
            }
        )
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary or spec.doc,
        "description": f"qSyscall `{spec.name}` (docs/qsyscall.md). Returns: {spec.returns}.",
        "tags": [route.tag],
        "parameters": parameters,
        "responses": {
            str(route.status): {
                "description": spec.returns,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **{code: _problem_response(text) for code, text in _ERRORS.items()},
        },
    }
    if spec.needs_session:
        operation["security"] = [{"session": []}]
    if route.body:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name in route.body:
            param = spec.param(name)
            if route.program and name == "graph":
                properties["program"] = {
                    "type": ["object", "string"],
                    "description": "the program: QVM JSON (an object), or the text of "
                    "OpenQASM 2/3, QIR (LLVM IR text) or QVM assembly",
                }
                properties["format"] = {
                    "type": ["string", "null"],
                    "enum": [*PROGRAM_FORMATS, None],
                    "description": "how to read program: qvm-json for objects; for text, "
                    "required unless it starts with an OPENQASM header",
                }
                required.append("program")
                continue
            properties[name] = _schema(param)
            if param.required:
                required.append(name)
        body: dict[str, Any] = {"type": "object", "properties": properties}
        body["additionalProperties"] = False
        if required:
            body["required"] = required
        operation["requestBody"] = {
            "required": bool(required),
            "content": {"application/json": {"schema": body}},
        }
    return operation


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route (built once; callers must not change it)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in SYSCALL_ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    for other in OTHER_ROUTES:
        if other.tag is None:
            continue
        parameters = [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": kind},
                "description": doc,
            }
            for name, kind, doc in other.query
        ]
        parameters.extend(
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in other.path.split("/")
            if part.startswith("{")
        )
        operation: dict[str, Any] = {
            "operationId": other.name,
            "summary": other.summary,
            "tags": [other.tag],
            "responses": {
                "200": {
                    "description": other.summary,
                    "content": {other.media: {"schema": {"type": "string"}}}
                    if not other.media.endswith("json")
                    else {other.media: {"schema": {"type": "object"}}},
                }
            },
        }
        if parameters:
            operation["parameters"] = parameters
        if other.session:
            operation["security"] = [{"session": []}]
            operation["responses"].update(
                {code: _problem_response(_ERRORS[code]) for code in ("401", "404")}
            )
        paths.setdefault(other.path, {})[other.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "QMK REST API",
            "version": version(),
            "summary": "the qSyscalls of a QMK kernel over HTTP, with live events and metrics",
            "description": "Every qSyscall (docs/qsyscall.md) has a route. Open a session with "
            "POST /v1/sessions, then send its session_id as Authorization: Bearer. Errors "
            "are RFC 9457 problem documents carrying QMK's stable code (docs/errors.md).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the session_id of POST /v1/sessions",
                }
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details with QMK's error code",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "code": {"type": "string", "description": "e.g. QS1005"},
                        "name": {"type": "string", "description": "e.g. not-found"},
                        "rpc_code": {
                            "type": "integer",
                            "description": "the JSON-RPC error.code of the same error",
                        },
                        "details": {"type": "object"},
                    },
                    "required": ["type", "title", "status", "detail", "code", "name"],
                }
            },
        },
        "tags": [
            {"name": name}
            for name in (
                "sessions",
                "jobs",
                "devices",
                "channels",
                "telemetry",
                "machine",
                "service",
                "billing",
                "workflows",
                "graphql",
            )
        ],
    }


def render_docs(document: dict[str, Any]) -> str:
    """The reference page of ``document``: one section per route, its params and errors."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(document['info']['title'])}</title>",
        "<style>body{font:14px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem;color:#1d2330}code,pre{font:13px ui-monospace,monospace}"
        "h2{margin-top:2rem;border-bottom:1px solid #ccd}section{margin:1rem 0}"
        ".verb{display:inline-block;min-width:4.5rem;font-weight:700}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;"
        "border-bottom:1px solid #eee;vertical-align:top}</style></head><body>",
        f"<h1>{esc(document['info']['title'])} <small>{esc(document['info']['version'])}"
        "</small></h1>",
        f"<p>{esc(document['info']['description'])}</p>",
        "<p>The machine-readable document: <a href='/openapi.json'>/openapi.json</a>. "
        "The console: <a href='/'>/</a>.</p>",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            by_tag.setdefault(operation["tags"][0], []).append((verb, path, operation))
    for tag in [t["name"] for t in document["tags"]]:
        parts.append(f"<h2 id='{esc(tag)}'>{esc(tag)}</h2>")
        for verb, path, operation in by_tag.get(tag, []):
            parts.append(
                f"<section id='{esc(operation['operationId'])}'><div><span class='verb'>"
                f"{esc(verb.upper())}</span><code>{esc(path)}</code></div>"
                f"<p>{esc(operation['summary'])}"
                + (" (needs a session)" if "security" in operation else "")
                + "</p>"
            )
            rows = [
                (p["name"], p["in"], json.dumps(p["schema"].get("type")), p.get("description", ""))
                for p in operation.get("parameters", [])
            ]
            body = operation.get("requestBody")
            if body is not None:
                schema = body["content"]["application/json"]["schema"]
                for name, prop in schema["properties"].items():
                    rows.append(
                        (name, "body", json.dumps(prop.get("type")), prop.get("description", ""))
                    )
            if rows:
                parts.append("<table><tr><th>param</th><th>in</th><th>type</th><th>doc</th></tr>")
                parts.extend(
                    f"<tr><td><code>{esc(n)}</code></td><td>{esc(w)}</td><td>{esc(t)}</td>"
                    f"<td>{esc(d)}</td></tr>"
                    for n, w, t, d in rows
                )
                parts.append("</table>")
            codes = ", ".join(sorted(operation["responses"]))
            parts.append(f"<p>Responses: {esc(codes)}</p></section>")
    parts.append("</body></html>")
    return "\n".join(parts)
