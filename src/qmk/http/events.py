"""Server-Sent Events: the wire format of the REST API's live streams.

The streams themselves (:class:`~qmk.abi.events.EventHub`, :class:`~qmk.abi.events.
JobWatch`) live in :mod:`qmk.abi.events`, below every wire. The format is the WHATWG
``text/event-stream``: ``id`` (the record's cursor, :class:`~qmk.abi.probe.Cursor`:
``SEQ`` for an audit line, ``SEQ-SUB`` for a stream part after it), ``event`` and one
``data`` line of JSON, then a blank line (:func:`sse`; :func:`sse_parts` keeps a stored
result's bytes as they are, for a writer that sends them in chunks).

>>> sse("state", {"state": "QUEUED"}, 7)
b'id: 7\\nevent: state\\ndata: {"state":"QUEUED"}\\n\\n'
>>> from qmk.abi.probe import Cursor
>>> sse("stream", {}, Cursor(7, 2))
b'id: 7-2\\nevent: stream\\ndata: {}\\n\\n'
"""

from __future__ import annotations

from typing import Any

from qmk.abi.jsonrpc import dumps, dumps_parts


def sse(event: str, data: Any, event_id: object = None) -> bytes:
    """One Server-Sent Event: ``id`` (its text; None: none), ``event`` and a one-line
    JSON ``data``."""
    text = dumps(data, default=str)  # a stored result is spliced in as it is kept
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n".encode()


def sse_parts(event: str, data: Any, event_id: object = None) -> list[bytes]:
    """:func:`sse` as pieces: a value kept encoded (a stored result) is one of them,
    its own bytes, not a copy.

    >>> b"".join(sse_parts("state", {"state": "QUEUED"}, 7)) == sse("state", {"state": "QUEUED"}, 7)
    True
    """
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = dumps_parts(data, default=str)
    return [f"{head}event: {event}\ndata: ".encode(), *body, b"\n\n"]


__all__ = ["sse", "sse_parts"]
