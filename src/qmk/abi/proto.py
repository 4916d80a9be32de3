"""The gRPC schema of qSyscall, derived from the method table: the ``.proto`` and its model.

:func:`schema` reads :data:`qmk.abi.methods.METHODS` into a small model
(:class:`ProtoFile`: messages, fields, rpcs); :func:`render` writes it as
``kernel.proto`` (proto3, package ``qmk.v1``, service ``Kernel``), which
:mod:`qmk.abi.codegen` keeps checked in and drift-checked, and :mod:`qmk.grpc.schema`
builds the very same model into protobuf descriptors at import. So the file a user
compiles with ``protoc`` and the messages the server speaks are one thing, read from
one table (``tests/grpc/test_schema.py`` compiles the file with ``grpc_tools`` and
compares the descriptors).

The rules, each applied to every row of the table:

- One rpc per syscall, named without ``q_`` in CamelCase (``q_negotiate_caps`` ->
  ``NegotiateCaps``), with a ``<Rpc>Request`` of the method's params in table order.
- ``session_id`` is no field: it travels as the metadata ``authorization: Bearer <id>``.
- A param's JSON type gives the field's type (:data:`SCALARS`); an object is a
  ``google.protobuf.Struct``, an array of strings ``repeated string``. Every scalar field
  is ``optional`` (it has presence): a param left out takes the table's default, and a
  required one left out is refused (``QR32602``) as on the other wires. ``null`` is
  "left out".
- The ``graph`` param (QVM JSON) travels as ``program``, the text of any format QMK reads,
  with an optional ``format`` (as the REST API's ``POST /v1/jobs``).
- A method that returns a job (its ``returns`` starts with ``job {``) answers ``Job``:
  ``job_id``, ``state``, ``counts`` (a COMPLETED job's, as ``map<string, int64>``) and
  the rest; the one that opens a session (``{session_id``) answers ``Session``; the
  others ``Reply``. Every answer carries ``json``: the syscall's whole result as JSON
  text, as the JSON-RPC wire has it.
- Beside the syscalls, ``WatchJob`` streams a job's events (``JobEvent``), as the REST
  API's ``GET /v1/jobs/{job_id}/events`` does.

>>> rpc = {r.name: r for r in schema().rpcs}["Wait"]
>>> rpc.request, rpc.reply, rpc.syscall
('WaitRequest', 'Job', 'q_wait')
>>> rpc_name("q_negotiate_caps")
'NegotiateCaps'
>>> [f"{f.label} {f.type} {f.name}".strip() for f in message("SubmitRequest").fields]
['optional string program', 'optional string format', 'optional int64 shots', \
'optional int64 seed', 'google.protobuf.Struct policy', \
'optional string idempotency_key', 'optional string target', 'optional int64 wait_ms', \
'optional string traceparent']
"""

from __future__ import annotations

import functools
import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from qmk.abi import replies
from qmk.abi.methods import METHODS, JsonType, MethodSpec, ParamSpec

#: The proto package and service.
PACKAGE = "qmk.v1"
SERVICE = "Kernel"
#: The service's full name (what reflection lists and health reports on).
SERVICE_NAME = f"{PACKAGE}.{SERVICE}"
#: The file's name as protoc and reflection know it.
FILE_NAME = "qmk/v1/kernel.proto"
STRUCT = "google.protobuf.Struct"
LIST = "google.protobuf.ListValue"

#: The proto type of each scalar JSON type.
SCALARS: Mapping[JsonType, str] = MappingProxyType(
    {
        JsonType.STRING: "string",
        JsonType.INTEGER: "int64",
        JsonType.NUMBER: "double",
        JsonType.BOOLEAN: "bool",
        JsonType.OBJECT: STRUCT,
        JsonType.ARRAY: LIST,
    }
)

#: The param that carries a QVM graph, and what travels in its place.
GRAPH_PARAM = "graph"
PROGRAM_FIELD = "program"
FORMAT_FIELD = "format"

#: Every answer's field with the whole result as JSON text.
JSON_FIELD = "json"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtoField:
    """One field of a message.

    Attributes:
        name: the field's name (a param's name where it carries one).
        type: a scalar (``string``, ``int64``, ...), a message's full name, or
            ``map<string, int64>``.
        number: its tag.
        label: ``optional`` (it has presence), ``repeated`` or ``""``.
        doc: one line for the file.
    """

    name: str
    type: str
    number: int
    label: str = ""
    doc: str = ""

    @property
    def is_map(self) -> bool:
        return self.type.startswith("map<")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtoMessage:
    """One message: its name, fields in tag order, and a line of doc."""

    name: str
    fields: tuple[ProtoField, ...]
    doc: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtoRpc:
    """One rpc of the service.

    Attributes:
        name: the rpc (CamelCase).
        request, reply: its messages' names.
        doc: one line for the file.
        syscall: the qSyscall method it calls (None: ``WatchJob``).
        streaming: the server streams its replies.
    """

    name: str
    request: str
    reply: str
    doc: str
    syscall: str | None = None
    streaming: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtoFile:
    """The whole schema: the messages, then the service's rpcs."""

    messages: tuple[ProtoMessage, ...]
    rpcs: tuple[ProtoRpc, ...]

    @property
    def imports(self) -> tuple[str, ...]:
        """The well-known files its fields use."""
        used = {f.type for m in self.messages for f in m.fields}
        return ("google/protobuf/struct.proto",) if used & {STRUCT, LIST} else ()


def rpc_name(syscall: str) -> str:
    """``q_get_result`` -> ``GetResult``."""
    return "".join(part.capitalize() for part in syscall.removeprefix("q_").split("_"))


def _field_type(spec: MethodSpec, param: ParamSpec) -> tuple[str, str]:
    kinds = [kind for kind in param.types if kind is not JsonType.NULL]
    if len(kinds) != 1:
        raise ValueError(f"{spec.name}: param {param.name!r} has no single proto type")
    kind = kinds[0]
    if kind is JsonType.ARRAY and param.items is not None:
        if param.items is JsonType.ARRAY or param.items is JsonType.OBJECT:
            raise ValueError(f"{spec.name}: param {param.name!r}: arrays of {param.items.value}")
        return "repeated", SCALARS[param.items]
    # a message field has presence as it is; a scalar needs ``optional`` for it
    return ("" if kind in (JsonType.OBJECT, JsonType.ARRAY) else "optional"), SCALARS[kind]


def _param_doc(param: ParamSpec) -> str:
    text = param.doc
    if param.required:
        return f"{text} (required)"
    if param.default is not None:
        return f"{text} (default {json.dumps(param.json_default)})"
    return text


def _request(spec: MethodSpec) -> ProtoMessage:
    fields: list[ProtoField] = []
    for param in spec.params:
        if param.name == "session_id":
            continue
        if param.name == GRAPH_PARAM:
            for name, doc in (
                (PROGRAM_FIELD, "the program: QVM JSON or the text of any format QMK reads"),
                (FORMAT_FIELD, "qvm-json, qvm-asm, qasm2, qasm3, qasm, qir; none: OpenQASM"),
            ):
                fields.append(
                    ProtoField(
                        name=name,
                        type="string",
                        number=len(fields) + 1,
                        label="optional",
                        doc=doc + (" (required)" if name == PROGRAM_FIELD else ""),
                    )
                )
            continue
        label, kind = _field_type(spec, param)
        fields.append(
            ProtoField(
                name=param.name,
                type=kind,
                number=len(fields) + 1,
                label=label,
                doc=_param_doc(param),
            )
        )
    return ProtoMessage(name=f"{rpc_name(spec.name)}Request", fields=tuple(fields), doc=spec.name)


def _fields(*rows: tuple[str, str, str, str]) -> tuple[ProtoField, ...]:
    return tuple(
        ProtoField(name=name, type=kind, number=n, label=label, doc=doc)
        for n, (label, kind, name, doc) in enumerate(rows, start=1)
    )


_JSON = ("", "string", JSON_FIELD, "the whole result as JSON text (as JSON-RPC answers it)")

#: The answers, by the kind of result they carry.
JOB = ProtoMessage(
    name="Job",
    doc="a job",
    fields=_fields(
        ("", "string", "job_id", "the job"),
        ("", "string", "state", "QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT, ..."),
        ("", "string", "tenant", "its tenant"),
        ("", "int64", "shots", "shots asked for"),
        ("optional", "int64", "seed", "its seed (none: not drawn yet)"),
        ("", "map<string, int64>", "counts", "a COMPLETED job's counts by outcome"),
        ("optional", "double", "created_at", "when it was accepted (seconds since the epoch)"),
        ("optional", "double", "started_at", "when it (last) started"),
        ("optional", "double", "finished_at", "when it ended"),
        _JSON,
    ),
)
SESSION = ProtoMessage(
    name="Session",
    doc="a session (send its id as authorization: Bearer <session_id>)",
    fields=_fields(
        ("", "string", "session_id", "the session"),
        ("", "string", "tenant", "its tenant"),
        ("repeated", "string", "granted", "capabilities granted"),
        ("repeated", "string", "denied", "capabilities asked for and refused"),
        ("optional", "double", "expires_at", "when it expires"),
        _JSON,
    ),
)
REPLY = ProtoMessage(name="Reply", doc="any other result", fields=_fields(_JSON))
WATCH_REQUEST = ProtoMessage(
    name="WatchJobRequest",
    doc="WatchJob",
    fields=_fields(
        ("", "string", "job_id", "the job"),
        (
            "optional",
            "int64",
            "after",
            "resume past this cursor (the seq of the last event seen): the job's events "
            "after it, then live; unset: from the job's state now",
        ),
    ),
)
JOB_EVENT = ProtoMessage(
    name="JobEvent",
    doc="one event of a job (GET /v1/jobs/{job_id}/events has the same)",
    fields=_fields(
        ("", "string", "event", "state, progress, result, lagged, closing or an audit event"),
        ("optional", "int64", "seq", "its audit sequence number, where it is an audit record"),
        ("", "string", "job_id", "the job"),
        ("", "string", "state", "the job's state then, where the event says"),
        ("", "string", JSON_FIELD, "the event's data as JSON text"),
    ),
)


def reply_of(spec: MethodSpec) -> ProtoMessage:
    """The answer of ``spec``'s rpc, by what its table row says it returns."""
    if spec.reply is replies.Job:
        return JOB
    if spec.reply is replies.Session:
        return SESSION
    return REPLY


@functools.cache
def schema() -> ProtoFile:
    """The whole schema, from the method table (made once: the table does not change)."""
    requests = [_request(spec) for spec in METHODS.values()]
    rpcs = [
        ProtoRpc(
            name=rpc_name(spec.name),
            request=request.name,
            reply=reply_of(spec).name,
            doc=f"{spec.name}: {spec.doc}",
            syscall=spec.name,
        )
        for spec, request in zip(METHODS.values(), requests, strict=True)
    ]
    rpcs.append(
        ProtoRpc(
            name="WatchJob",
            request=WATCH_REQUEST.name,
            reply=JOB_EVENT.name,
            doc="a job's events as they happen: its states, progress, then its result",
            streaming=True,
        )
    )
    return ProtoFile(
        messages=(*requests, WATCH_REQUEST, JOB, SESSION, REPLY, JOB_EVENT), rpcs=tuple(rpcs)
    )


def message(name: str) -> ProtoMessage:
    """The schema's message called ``name`` (KeyError if none)."""
    for found in schema().messages:
        if found.name == name:
            return found
    raise KeyError(name)


def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(
        text,
        96 - len(indent),
        initial_indent=f"{indent}// ",
        subsequent_indent=f"{indent}// ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def render(regenerate: str) -> str:
    """The ``.proto`` text of :func:`schema` (``regenerate``: the command that writes it)."""
    model = schema()
    lines = [
        "// qSyscall over gRPC: the service qmk.v1.Kernel, one rpc per syscall.",
        "//",
        "// GENERATED from qmk.abi.methods.METHODS by qmk.abi.proto:",
        f"// do not edit; change the table and run {regenerate}.",
        "// The session travels as the metadata `authorization: Bearer <session_id>`;",
        "// errors are gRPC status codes whose message starts with QMK's code (docs/grpc.md).",
        "",
        'syntax = "proto3";',
        "",
        f"package {PACKAGE};",
        "",
    ]
    lines += [f'import "{name}";' for name in model.imports]
    lines += ["", f"service {SERVICE} {{"]
    for rpc in model.rpcs:
        lines += _comment(rpc.doc, "  ")
        reply = f"stream {rpc.reply}" if rpc.streaming else rpc.reply
        lines.append(f"  rpc {rpc.name}({rpc.request}) returns ({reply});")
    lines.append("}")
    for msg in model.messages:
        lines.append("")
        lines += _comment(msg.doc, "")
        lines.append(f"message {msg.name} {{")
        for field in msg.fields:
            lines += _comment(field.doc, "  ")
            head = f"{field.label} " if field.label else ""
            lines.append(f"  {head}{field.type} {field.name} = {field.number};")
        lines.append("}")
    return "\n".join(lines) + "\n"
