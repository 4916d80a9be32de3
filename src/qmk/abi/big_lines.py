"""A request line too big to decode on the event loop: read by its head, its graph kept
as text.

A line of :data:`~qmk.abi.jsonrpc.THREAD_BYTES` or more (a big program's submit) is
charged to the CPU budget of the session its first bytes name before it is decoded
(:func:`scan_head`), then decoded in a thread, its graph made its compact text
(:func:`compacted`). A kernel that never reads such a line never loads this module.
"""

from __future__ import annotations

import json
import re
from typing import Any

from qmk.qvm.graph import COMPACT_PIECE, GraphText, is_graph_data

#: How far into a big line :func:`scan_head` looks.
HEAD_BYTES = 4096


def scan_head(line: bytes) -> tuple[Any, str | None, str | None]:
    """A big request line's id, method and ``session_id``, read from its raw bytes
    without decoding it: ``(id, method, session_id)``, each None when not found where
    a request states it (the id, method and params' first member before the graph). The
    id is ``...`` when the line states none that could be read so (a notification, or
    an id after the params).

    >>> scan_head(b'{"jsonrpc": "2.0", "id": 7, "method": "q_submit", '
    ...           b'"params": {"session_id": "s-1", "graph": {}}}')
    (7, 'q_submit', 's-1')
    """
    params = line.find(b'"params"')
    head = line[: params if params >= 0 else HEAD_BYTES][:HEAD_BYTES]
    request_id: Any = ...
    found = _ID.search(head)
    if found is not None:  # every id the pattern reads is one JSON-RPC allows
        try:
            request_id = json.loads(found.group(1))
        except ValueError:  # a number with a leading zero
            request_id = ...
    method = _METHOD.search(head)
    session = _SESSION.search(line, params if params >= 0 else 0, params + HEAD_BYTES)
    return (
        request_id,
        None if method is None else method.group(1).decode("ascii"),
        None if session is None or params < 0 else session.group(1).decode("ascii"),
    )


_ID = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"[A-Za-z0-9_.:-]{0,128}"|null)\s*[,}]')
_METHOD = re.compile(rb'"method"\s*:\s*"([A-Za-z0-9_]{1,64})"')
_SESSION = re.compile(rb'"session_id"\s*:\s*"([A-Za-z0-9_.=-]{1,200})"')


def _compact_graph(message: Any) -> None:
    """A decoded ``q_submit`` request's graph, in place, as :class:`GraphText`.

    The decoded nodes are freed a piece at a time. One free of a big graph's objects
    holds the interpreter, and while they live every collection walks them."""
    if type(message) is not dict or message.get("method") != "q_submit":
        return
    params = message.get("params")
    graph = params.get("graph") if type(params) is dict else None
    if not is_graph_data(graph):
        return
    assert type(params) is dict and type(graph) is dict
    try:
        params["graph"] = GraphText.of(graph)
    except (TypeError, ValueError):  # not plain JSON: the kernel says so, as before
        return
    program = graph.get("program")
    nodes = program.get("nodes") if type(program) is dict else None
    del graph, program
    while isinstance(nodes, list) and nodes:
        del nodes[-COMPACT_PIECE:]


def named_session(decoded: tuple[Any, bool]) -> object:
    """The ``session_id`` the params of a decoded request name (None: none)."""
    message = decoded[0]
    params = message.get("params") if type(message) is dict else None
    return params.get("session_id") if type(params) is dict else None


def compacted(decoded: tuple[Any, bool]) -> tuple[Any, bool]:
    """A decoded big line (its value, and whether it may hold a number out of range), its
    ``q_submit`` graph made its compact text where no number may be out of range (one
    that may be is found in the decoded params, as for any line)."""
    value, suspect = decoded
    if not suspect:
        _compact_graph(value)
    return value, suspect
