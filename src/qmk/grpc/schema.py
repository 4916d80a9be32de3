"""The messages of ``qmk.v1.Kernel`` at run time, built from the same model as the .proto.

No generated ``_pb2`` modules: :func:`file_descriptor` builds the
``FileDescriptorProto`` of :func:`qmk.abi.proto.schema` (the model ``kernel.proto`` is
rendered from), adds it to protobuf's default pool (so server reflection finds it, as
it finds generated code's) and makes the message classes from it. Both therefore follow
the method table together, with no build step and nothing generated to drift; a test
compiles the checked-in ``kernel.proto`` with ``protoc`` and compares.

Converting: :func:`params_of` reads a request message as the syscall's JSON params
(fields left out are left out, so the table's defaults apply; a ``Struct`` becomes the
JSON object it holds, whole numbers as integers); :func:`reply_of` fills an answer
message from the syscall's JSON result.

>>> messages()["WaitRequest"](job_id="job_1").job_id
'job_1'
>>> params_of(messages()["WaitRequest"](job_id="j"))
{'job_id': 'j'}
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import msgspec
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2
from google.protobuf.message import Message

from qmk.abi.errors import InvalidParams
from qmk.abi.jsonrpc import dumps, dumps_parts
from qmk.abi.proto import (
    FILE_NAME,
    JSON_FIELD,
    LIST,
    PACKAGE,
    SERVICE,
    STRUCT,
    ProtoField,
    ProtoFile,
    ProtoMessage,
    schema,
)

_F = descriptor_pb2.FieldDescriptorProto
_SCALAR_TYPES = {
    "string": _F.TYPE_STRING,
    "int64": _F.TYPE_INT64,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _set_type(out: Any, kind: str) -> None:
    if kind in _SCALAR_TYPES:
        out.type = _SCALAR_TYPES[kind]
    else:
        out.type = _F.TYPE_MESSAGE
        out.type_name = f".{kind}" if kind in (STRUCT, LIST) else f".{PACKAGE}.{kind}"


def _add_message(file: Any, msg: ProtoMessage) -> None:
    out = file.message_type.add()
    out.name = msg.name
    oneofs = 0
    for field in msg.fields:
        _add_field(out, msg, field)
        if field.label == "optional":  # proto3 optional: a synthetic oneof of its own
            out.field[-1].proto3_optional = True
            out.field[-1].oneof_index = oneofs
            out.oneof_decl.add().name = f"_{field.name}"
            oneofs += 1


def _add_field(out: Any, msg: ProtoMessage, field: ProtoField) -> None:
    added = out.field.add()
    added.name = field.name
    added.number = field.number
    added.json_name = _camel(field.name)
    added.label = _F.LABEL_REPEATED if field.label == "repeated" else _F.LABEL_OPTIONAL
    if not field.is_map:
        _set_type(added, field.type)
        return
    key, value = (part.strip() for part in field.type[4:-1].split(","))
    entry = out.nested_type.add()
    entry.name = "".join(part.capitalize() for part in field.name.split("_")) + "Entry"
    entry.options.map_entry = True
    for number, name, kind in ((1, "key", key), (2, "value", value)):
        part = entry.field.add()
        part.name, part.number, part.json_name = name, number, name
        part.label = _F.LABEL_OPTIONAL
        _set_type(part, kind)
    added.label = _F.LABEL_REPEATED
    added.type = _F.TYPE_MESSAGE
    added.type_name = f".{PACKAGE}.{msg.name}.{entry.name}"


def build(model: ProtoFile) -> descriptor_pb2.FileDescriptorProto:
    """The ``FileDescriptorProto`` of ``model`` (what protoc makes of its rendered text)."""
    file = descriptor_pb2.FileDescriptorProto()
    file.name = FILE_NAME
    file.package = PACKAGE
    file.syntax = "proto3"
    file.dependency.extend(model.imports)
    for msg in model.messages:
        _add_message(file, msg)
    service = file.service.add()
    service.name = SERVICE
    for rpc in model.rpcs:
        method = service.method.add()
        method.name = rpc.name
        method.input_type = f".{PACKAGE}.{rpc.request}"
        method.output_type = f".{PACKAGE}.{rpc.reply}"
        if rpc.streaming:
            method.server_streaming = True
    return file


@functools.cache
def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The schema's file, added once to protobuf's default pool."""
    file = build(schema())
    struct_pb2.Struct  # noqa: B018  (its file is in the default pool before ours)
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(FILE_NAME)
    except KeyError:
        pool.Add(file)
    return file


@functools.cache
def messages() -> dict[str, type[Message]]:
    """Every message class of the schema, by its short name."""
    file_descriptor()
    pool = descriptor_pool.Default()
    return {
        msg.name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{PACKAGE}.{msg.name}")
        )
        for msg in schema().messages
    }


# --------------------------------------------------------------------------- converting


def _plain(value: Any) -> Any:
    """A whole float (as every Struct number is) as an int; the rest as it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def struct_value(value: struct_pb2.Value, depth: int, max_depth: int) -> Any:
    """The JSON value a protobuf ``Value`` holds (numbers that are whole as ints).

    Raises:
        InvalidParams: it nests deeper than ``max_depth``.
    """
    if depth > max_depth:
        raise InvalidParams(f"a Struct nests deeper than {max_depth} levels")
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_object(value.struct_value, depth + 1, max_depth)
    if kind == "list_value":
        return [struct_value(item, depth + 1, max_depth) for item in value.list_value.values]
    if kind == "number_value":
        return _plain(value.number_value)
    if kind in (None, "null_value"):
        return None
    return getattr(value, kind)


def struct_object(value: struct_pb2.Struct, depth: int = 1, max_depth: int = 64) -> dict[str, Any]:
    """The JSON object a ``Struct`` holds."""
    if depth > max_depth:
        raise InvalidParams(f"a Struct nests deeper than {max_depth} levels")
    return {key: struct_value(item, depth, max_depth) for key, item in value.fields.items()}


def _repeated(field: Any) -> bool:
    """Whether a field is repeated (``is_repeated`` from protobuf 5.28 on; ``label``, which
    protobuf 7 dropped, before)."""
    found = getattr(field, "is_repeated", None)
    return bool(found) if found is not None else field.label == field.LABEL_REPEATED


def params_of(request: Message, max_depth: int = 64) -> dict[str, Any]:
    """A request message as JSON params: the fields it carries, by name."""
    params: dict[str, Any] = {}
    for field, value in request.ListFields():
        if field.message_type is not None and field.message_type.full_name == STRUCT:
            params[field.name] = struct_object(value, 1, max_depth)
        elif field.message_type is not None and field.message_type.full_name == LIST:
            params[field.name] = [struct_value(item, 1, max_depth) for item in value.values]
        elif _repeated(field):
            params[field.name] = list(value)
        else:
            params[field.name] = value
    return params


def to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    """A JSON object as a ``Struct`` (the client's side of :func:`struct_object`)."""
    out = struct_pb2.Struct()
    out.update(value)
    return out


def _counts(result: Any) -> dict[str, int]:
    """A result's counts where it has them as whole numbers (else none)."""
    if not isinstance(result, Mapping):
        return {}
    try:
        counts = result["counts"]
    except KeyError:
        return {}
    if not isinstance(counts, Mapping):
        return {}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        return {}
    return {str(k): int(v) for k, v in counts.items()}


#: The most outcomes a job's typed ``counts`` map holds; a result with more has its
#: counts in ``json`` only (a big result's map, millions of entries, cost seconds of the
#: kernel's CPU to build and doubled the answer, for what ``json`` says already).
TYPED_COUNTS_MAX = 4096


def _typed_counts(result: Any) -> dict[str, int]:
    """A result's counts for the typed map: none past :data:`TYPED_COUNTS_MAX` outcomes
    (a stored result says how many it has without being read: its ``entries``)."""
    entries = getattr(result, "entries", None)
    if isinstance(entries, int) and entries > TYPED_COUNTS_MAX:
        return {}
    counts = _counts(result)
    return counts if len(counts) <= TYPED_COUNTS_MAX else {}


class _Counted(msgspec.Struct):
    """A relayed job result's member that a typed answer reads: its counts."""

    counts: Any = None


_read_counts = msgspec.json.Decoder(_Counted).decode


#: :func:`_members`' structs, by the answer's full name.
_MEMBERS: dict[str, type[msgspec.Struct]] = {}


def _members(kind: type[Message]) -> type[msgspec.Struct]:
    """The members of a result that the answer ``kind`` types (its fields but ``json``;
    for ``counts``, the job's ``result`` left encoded): what a gateway's relayed
    reply is read as (:meth:`~qmk.gateway.line.Relayed.read_as`), its other members
    (a job's telemetry, most of its bytes) skipped unread. Made at the first answer."""
    name = kind.DESCRIPTOR.full_name
    made = _MEMBERS.get(name)
    if made is None:
        wanted: list[tuple[str, Any, Any]] = [
            ("result", msgspec.Raw, msgspec.UNSET)
            if field == "counts"
            else (field, Any, msgspec.UNSET)
            for field in kind.DESCRIPTOR.fields_by_name
            if field != JSON_FIELD
        ]
        made = _MEMBERS[name] = msgspec.defstruct(f"{kind.__name__}Members", wanted)
    return made


def _relayed_members(kind: type[Message], read_as: Any) -> dict[str, Any]:
    """The members ``kind`` types of a relayed reply (:func:`_members`), as
    :func:`reply_of` reads a reply struct's: a job's ``result`` as ``{"counts": ...}``."""
    picked = read_as(_members(kind))
    if picked is None:  # no object: it names nothing
        return {}
    members = {
        name: value
        for name in picked.__struct_fields__
        if (value := getattr(picked, name)) is not msgspec.UNSET
    }
    raw = members.get("result")
    if raw is not None:
        try:
            members["result"] = {"counts": _read_counts(raw).counts}
        except msgspec.ValidationError:  # a result that is no object has no counts
            members["result"] = None
    return members


def reply_of(kind: type[Message], result: Any) -> Message:
    """The answer message ``kind`` filled from a syscall's ``result`` (its reply
    struct): each of its fields that the result has (a job's ``counts`` from its
    ``result``, for at most :data:`TYPED_COUNTS_MAX` outcomes), and ``json``."""
    reply = kind()
    fields = kind.DESCRIPTOR.fields_by_name
    # a reply struct says which of its members are set with fields(); a gateway's
    # relayed reply (its JSON as the kernel wrote it) is read for those the answer types
    read_as = getattr(result, "read_as", None)
    if read_as is not None:
        members: Any = _relayed_members(kind, read_as)
    else:
        members = result.fields() if hasattr(result, "fields") else result
    if isinstance(members, Mapping):
        for name, field in fields.items():
            if name == JSON_FIELD:
                continue
            if name == "counts":
                reply.counts.update(_typed_counts(members.get("result")))
                continue
            value = members.get(name)
            if value is None:
                continue
            if _repeated(field):
                getattr(reply, name).extend(value)
            else:
                setattr(reply, name, value)
    setattr(reply, JSON_FIELD, json_text(result))
    return reply


def kept_json(result: Any) -> bytes | None:
    """The JSON of a syscall's ``result`` kept encoded whole (``__json_bytes__``: a
    gateway's relayed reply, as the kernel wrote it); None for another result."""
    kept = getattr(type(result), "__json_bytes__", None)
    return None if kept is None else bytes(kept(result))


def json_text(result: Any) -> str:
    """A syscall's ``result`` as the JSON text of an answer's ``json`` field (one kept
    encoded whole as its own text)."""
    kept = kept_json(result)
    return json_of(result) if kept is None else str(kept, "utf-8")


def json_of(value: Any) -> str:
    """``value`` as the JSON text of a message's ``json`` field: as the JSON-RPC wire
    writes it (msgspec's fast writer, where ``dumps`` with a ``default`` never takes
    it), and a value neither can write as its ``str``, as gRPC always wrote it."""
    try:
        return dumps(value)
    except TypeError:
        return dumps(value, default=str)


def json_size(value: Any) -> int:
    """The bytes of :func:`json_of`'s text, counted without joining a big value's
    pieces (:func:`~qmk.abi.jsonrpc.dumps_parts`)."""
    try:
        parts = dumps_parts(value)
    except TypeError:
        parts = dumps_parts(value, default=str)
    return sum(map(len, parts))
