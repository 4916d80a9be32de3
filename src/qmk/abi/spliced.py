"""JSON text with values kept encoded spliced in unparsed: the writer of what msgspec
cannot write whole.

A value with ``__json_bytes__`` (a job's stored result, kept as its UTF-8 JSON) is
written as a marker, which its bytes then replace: a big result is never parsed or
encoded again to be sent. The JSON-RPC writers (:func:`~qmk.abi.jsonrpc.dumps`,
:func:`~qmk.abi.jsonrpc.encode`, :func:`~qmk.abi.jsonrpc.dumps_parts`) come here only
where msgspec refuses a value (a kept value too big to copy, a ``default`` to call), so
a kernel whose replies are all small loads none of it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from qmk.abi.replies import Reply


def marked(value: Any, default: Callable[[Any], Any] | None) -> tuple[str, list[bytes], str]:
    """``value`` as compact JSON text with a marker string where each object with
    ``__json_bytes__`` goes; the bytes of those objects; the marker as the text holds it."""
    kept: list[bytes] = []
    marker = ""

    def splice(item: Any) -> Any:
        nonlocal marker
        method = getattr(type(item), "__json_bytes__", None)
        if method is None:
            if isinstance(item, Reply):  # its set fields (qmk.abi.replies)
                return item.fields()
            if default is not None:
                return default(item)
            raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
        if not marker:  # unguessable: no string of the value can look like it
            marker = f"\x00{secrets.token_hex(12)}\x00"
        kept.append(method(item))
        return marker

    text = json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=splice
    )
    return text, kept, json.dumps(marker)  # the marker as written: quoted, escaped


def spliced(text: str, kept: list[bytes], marker: str) -> list[bytes]:
    """The UTF-8 pieces of ``text`` with each marker replaced by its kept bytes."""
    parts = text.split(marker)
    if len(parts) != len(kept) + 1:
        raise ValueError("a spliced JSON value was not found where it was written")
    pieces = [parts[0].encode("utf-8")]
    for data, part in zip(kept, parts[1:], strict=True):
        pieces += (data, part.encode("utf-8"))
    return pieces
