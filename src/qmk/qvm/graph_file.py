"""A graph's file form: its bytes read under the byte limit, its canonical text written.

The canonical text has a fixed key order and one node a line; QMK's tools write it
(``qmk program``, the front-ends' output) and compare graphs by it. A process that
takes graphs off a wire (the kernel) reads neither files nor this text.

>>> from qmk.qvm.graph import loads
>>> g = loads('{"version": "0.1", "program": {"nodes": [{"id": "a", "op": "ALLOC_LQ",'
...           ' "vqs": ["q"]}]}, "resources": {"vqs": ["q"], "events": []}}')
>>> print(dumps(g))
{
  "version": "0.1",
  "program": {
    "nodes": [
      {"id": "a", "op": "ALLOC_LQ", "vqs": ["q"]}
    ]
  },
  "resources": {"vqs": ["q"], "chs": [], "events": []},
  "caps": []
}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qmk.qvm.errors import FormatError
from qmk.qvm.graph import Graph, loads
from qmk.qvm.limits import Limits


def read_bytes(path: str | Path, *, limits: Limits | None = None) -> bytes:
    """Read a file's bytes, refusing files over the byte limit before reading them.

    Raises:
        FormatError: unreadable-file or too-large.
    """
    limits = limits or Limits()
    path = Path(path)
    try:
        size = path.stat().st_size
        if limits.max_bytes is not None and size > limits.max_bytes:
            raise FormatError.of(
                "too-large", f"{path}: {size} bytes is over the limit of {limits.max_bytes}"
            )
        return path.read_bytes()
    except OSError as exc:
        raise FormatError.of("unreadable-file", f"{path}: {exc.strerror or exc}") from None


def load(path: str | Path, *, limits: Limits | None = None) -> Graph:
    """Read a graph from a JSON file (see :func:`loads`)."""
    return loads(read_bytes(path, limits=limits), source=str(path), limits=limits)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)


def dumps(graph: Graph) -> str:
    """The graph as canonical JSON text: fixed key order, one node per line.

    Two graphs are equal after canonicalisation exactly when their ``dumps``
    are equal. The text ends without a newline; files add one.
    """
    data = graph.to_json()
    lines = ["{", f'  "version": {_compact(data["version"])},']
    if "description" in data:
        lines.append(f'  "description": {_compact(data["description"])},')
    lines.append('  "program": {')
    nodes = data["program"]["nodes"]
    if nodes:
        lines.append('    "nodes": [')
        for i, node in enumerate(nodes):
            _row_lines(node, "      ", "," if i < len(nodes) - 1 else "", lines)
        lines.append("    ]")
    else:
        lines.append('    "nodes": []')
    blocks = data["program"].get("blocks")
    if blocks:
        lines[-1] += ","
        lines.append('    "blocks": [')
        for i, block in enumerate(blocks):
            _row_lines(block, "      ", "," if i < len(blocks) - 1 else "", lines)
        lines.append("    ]")
    lines.append("  },")
    lines.append(f'  "resources": {_compact(data["resources"])},')
    tail = "," if "metadata" in data else ""
    lines.append(f'  "caps": {_compact(data["caps"])}{tail}')
    if "metadata" in data:
        lines.append(f'  "metadata": {_compact(data["metadata"])}')
    lines.append("}")
    return "\n".join(lines)


def _row_lines(row: dict[str, Any], indent: str, tail: str, lines: list[str]) -> None:
    """One row of :func:`dumps`: a line, or a REPEAT row's (a block's) head, its body's
    rows (one a line, indented) and the line that closes it."""
    body = row.get("body")
    if body is None:
        lines.append(f"{indent}{_compact(row)}{tail}")
        return
    head = _compact({key: value for key, value in row.items() if key != "body"})
    lines.append(f'{indent}{head[:-1]}, "body": [')
    for i, item in enumerate(body):
        _row_lines(item, indent + "  ", "," if i < len(body) - 1 else "", lines)
    lines.append(f"{indent}]}}{tail}")


def canonical(text: str | bytes) -> str:
    """Canonical JSON text of a graph given as JSON text (see :func:`dumps`)."""
    return dumps(loads(text))
