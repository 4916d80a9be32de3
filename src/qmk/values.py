"""Typed values from plain data, through one schema library (msgspec).

Every value that crosses a boundary (a kernel config, a workflow file, a device job, a
job's policy and its run request) is a ``msgspec.Struct`` (frozen, keyword-only) or a
type msgspec knows. This module is the one way in and out:

- :func:`convert` makes the typed value from plain data (a parsed TOML, YAML or JSON
  document) and turns msgspec's validation error into a coded QMK error of the caller's
  family, in one line that names the key: ``policy.priority: Expected `int` <= 9``;
- :func:`decode_json` does the same from JSON text or bytes;
- :func:`to_builtins` and :func:`encode_json` give the plain data back;
- :func:`json_schema` is the JSON Schema of a type (``qmk schema`` prints them).

>>> import msgspec
>>> class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
...     shots: int = 1
>>> convert({"shots": 8}, Limits)
Limits(shots=8)
>>> try:
...     convert({"shots": "8"}, Limits, where="job")
... except InvalidArgument as exc:
...     print(exc.message, exc.details)
job.shots: Expected `int`, got `str` {'key': 'job.shots'}
>>> try:
...     convert({"shot": 8}, Limits, where="job")
... except InvalidArgument as exc:
...     print(exc.message)
job.shot: unknown key; expected one of shots
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from qmk.errors import InvalidArgument, QMKError

T = TypeVar("T")

#: Makes the caller's coded error from a one-line message and the key it is about.
ErrorFactory = Callable[[str, str], QMKError]

_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")


def _invalid(message: str, key: str) -> QMKError:
    return InvalidArgument(message, key=key)


def _join(where: str, path: str) -> str:
    """``where`` and a msgspec path (``.a[0].b``) as one dotted key (``where.a[0].b``)."""
    path = path.lstrip(".")
    if not where:
        return path
    if not path:
        return where
    return f"{where}{'' if path.startswith('[') else '.'}{path}"


def _fields_of(type_: Any, path: str) -> tuple[str, ...]:
    """The field names of the Struct at ``path`` inside ``type_`` (empty when unknown)."""
    try:
        info: Any = msgspec.inspect.type_info(type_)
    except Exception:  # a type msgspec cannot describe: no list of keys in the message
        return ()
    for step in re.findall(r"\.([^.\[]+)|\[[^\]]*\]", path):
        info = _inner(info)
        if isinstance(info, msgspec.inspect.StructType) and step:
            found = [f for f in info.fields if f.encode_name == step]
            if not found:
                return ()
            info = found[0].type
        elif not step:  # an index: the item type
            info = _item(info)
    info = _inner(info)
    if isinstance(info, msgspec.inspect.StructType):
        return tuple(f.encode_name for f in info.fields)
    return ()


def _inner(info: Any) -> Any:
    """A Struct inside an optional or a union of one Struct, else ``info``."""
    if isinstance(info, msgspec.inspect.UnionType):
        structs = [t for t in info.types if isinstance(t, msgspec.inspect.StructType)]
        if len(structs) == 1:
            return structs[0]
    return info


def _item(info: Any) -> Any:
    info = _inner(info)
    for attr in ("item_type", "value_type"):
        if hasattr(info, attr):
            return getattr(info, attr)
    return info


def _coded(exc: msgspec.ValidationError, type_: Any, where: str, error: ErrorFactory) -> QMKError:
    match = _AT.match(str(exc))
    reason, path = (match["reason"], match["path"] or "") if match else (str(exc), "")
    unknown = _UNKNOWN.match(reason)
    if unknown is not None:
        key = _join(where, f"{path}.{unknown['field']}")
        fields = _fields_of(type_, path)
        expected = f"; expected one of {', '.join(fields)}" if fields else ""
        return error(f"{key}: unknown key{expected}", key)
    key = _join(where, path)
    return error(f"{key}: {reason}" if key else reason, key)


def convert(
    data: Any,
    type_: type[T] | Any,
    *,
    where: str = "",
    error: ErrorFactory = _invalid,
    strict: bool = True,
) -> T:
    """``data`` (plain data) as a value of ``type_``, checked against its schema.

    Args:
        data: what a JSON, TOML or YAML parser gave.
        type_: a ``msgspec.Struct`` class or any type msgspec converts to.
        where: the key ``data`` sits at, prefixed to every key an error names.
        error: makes the coded error (default ``InvalidArgument`` with ``key=``).
        strict: refuse lax conversions (a string where a number goes); TOML's and JSON's
            own types need none.

    Raises:
        QMKError: what ``error`` makes, one line naming the key and what was wrong.
    """
    try:
        value: T = msgspec.convert(data, type_, strict=strict)
    except msgspec.ValidationError as exc:
        raise _coded(exc, type_, where, error) from None
    return value


def decode_json(
    text: str | bytes,
    type_: type[T] | Any,
    *,
    where: str = "",
    error: ErrorFactory = _invalid,
) -> T:
    """JSON ``text`` as a value of ``type_`` (see :func:`convert`).

    Raises:
        QMKError: not JSON, or not of the schema (``error``'s family).
    """
    try:
        value: T = msgspec.json.decode(text, type=type_)
    except msgspec.ValidationError as exc:
        raise _coded(exc, type_, where, error) from None
    except msgspec.DecodeError as exc:
        raise error(f"{where or 'the document'}: not JSON ({exc})", where) from None
    return value


def to_builtins(value: Any) -> Any:
    """``value`` as plain data (dicts, lists, strings, numbers, None)."""
    return msgspec.to_builtins(value)


def encode_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    return msgspec.json.encode(value)


def json_schema(type_: Any) -> dict[str, Any]:
    """The JSON Schema (2020-12) of ``type_``."""
    schema: dict[str, Any] = clean_descriptions(msgspec.json.schema(type_))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def clean_descriptions(schema: Any) -> Any:
    r"""``schema`` with every ``description`` as :func:`inspect.cleandoc` gives it.

    msgspec takes descriptions from docstrings, and from 0.23 it cleans them itself:
    cleaning here makes the shipped schemas the same whichever msgspec made them.

    >>> clean_descriptions({"description": "One.\n    Two.", "items": [{"x": 1}]})
    {'description': 'One.\nTwo.', 'items': [{'x': 1}]}
    """
    import inspect  # only schema generation needs it; every process imports this module

    if isinstance(schema, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else clean_descriptions(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [clean_descriptions(item) for item in schema]
    return schema


__all__ = [
    "ErrorFactory",
    "clean_descriptions",
    "convert",
    "decode_json",
    "encode_json",
    "json_schema",
    "to_builtins",
]
