"""The reader's rows with a body: a ``REPEAT`` row's and a ``BLOCK``'s, their shapes checked.

:func:`qmk.qvm.graph.from_json` reads each row; a row with a body is read here, at the
first such program (a kernel of flat programs holds none of it). Each body row is read
as any row, by the reader the caller gives (``read``: a row's JSON, its path and its
depth of REPEAT rows, to its node).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qmk.qvm.errors import FormatError

if TYPE_CHECKING:
    from qmk.qvm.graph import Node
    from qmk.qvm.limits import Limits

#: The reader of one row: its JSON, its path, its depth of REPEAT rows -> its node.
ReadRow = Callable[[Any, str, int], "Node"]


def repeat_body(
    value: dict[str, Any], path: str, limits: Limits, depth: int, read: ReadRow
) -> tuple[Node, ...]:
    """The rows of a ``REPEAT`` row, its shape checked: ``args`` is ``{"count": N}``
    with N >= 1, ``body`` a non-empty array of rows, and nothing else but its ``id``."""
    _only(value, path, "a REPEAT row", ("id", "op", "args", "body"))
    args = value.get("args")
    count = args.get("count") if type(args) is dict and args.keys() == {"count"} else None
    if type(count) is float and count.is_integer():
        count = int(count)
    if not isinstance(args, dict) or type(count) is not int or count < 1:
        raise FormatError.of(
            "bad-value",
            f'{path}.args: a REPEAT row\'s args are {{"count": N}} with a whole N >= 1',
            path=f"{path}.args",
        )
    args["count"] = count
    if limits.max_depth is not None and depth >= limits.max_depth:
        raise FormatError.of(
            "too-deep",
            f"{path}: REPEAT rows nest deeper than {limits.max_depth}",
            path=path,
            limit=limits.max_depth,
        )
    return _rows(value, path, depth, read)


def block_body(value: dict[str, Any], path: str, depth: int, read: ReadRow) -> tuple[Node, ...]:
    """The rows of a ``BLOCK``, its shape checked: ``id``, ``op``, ``vqs`` (its formal
    qubits) and a non-empty ``body``, nothing else."""
    _only(value, path, "a BLOCK", ("id", "op", "vqs", "body"))
    return _rows(value, path, depth, read)


def _only(value: dict[str, Any], path: str, what: str, keys: tuple[str, ...]) -> None:
    """Refuse a key of ``value`` (``what``, at ``path``) that is not one of ``keys``."""
    extra = [key for key in value if key not in keys]
    if extra:
        taken = f"{', '.join(keys[:-1])} and {keys[-1]}"
        raise FormatError.of(
            "unknown-key",
            f"{path}: {what} has no {extra[0]!r}; it takes {taken}",
            path=path,
            key=extra[0],
        )


def _rows(value: dict[str, Any], path: str, depth: int, read: ReadRow) -> tuple[Node, ...]:
    """The body of ``value``: a non-empty array of rows, each read one level deeper."""
    raw = value.get("body")
    if type(raw) is not list or not raw:
        raise FormatError.wrong_type(f"{path}.body", "a non-empty array of rows", raw)
    return tuple(read(item, f"{path}.body[{i}]", depth + 1) for i, item in enumerate(raw))
