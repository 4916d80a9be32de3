"""A program's sorted compact JSON text: the text its digest hashes.

It is ``json.dumps(data, sort_keys=True, separators=(",", ":"))`` to the byte, written by
msgspec (a few times faster) wherever msgspec writes the same text. It is a module of
its own, loaded at a program's first digest, so a process that takes digests as given
(the kernel, for a job's) need not load it.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
from dataclasses import replace
from typing import Any

import msgspec

from qmk.qvm.graph import Graph

#: A number msgspec writes otherwise than Python's json does: with an exponent
#: (``1e16``, ``1e-7``), or a fraction of four leading zeros, which json writes with one
#: (``1e-05``); a string that has either only sends :func:`canonical_text` the slower
#: way. (A regular expression of one letter and a class: those of more scan slower.)
_EXPONENT = re.compile(rb"e[-0-9]")
_TINY = b"0.0000"


def canonical_text(data: Any) -> str:
    """``json.dumps(data, sort_keys=True, separators=(",", ":"))``, the same text, written
    by msgspec (a few times faster) where it writes the same: ASCII without DEL, no
    number it formats otherwise (see ``_EXPONENT``); json itself otherwise.

    >>> data = {"b": [1.5, 1e-05, "x"], "a": {"d": None, "c": True}}
    >>> canonical_text(data) == json.dumps(data, sort_keys=True, separators=(",", ":"))
    True
    """
    text = _sorted_by_msgspec(data)
    return json.dumps(data, sort_keys=True, separators=(",", ":")) if text is None else text


def _sorted_by_msgspec(data: Any) -> str | None:
    """msgspec's sorted compact text of ``data`` where it is json's very text (ASCII
    without DEL, no number it formats otherwise); None where it may not be, or msgspec
    cannot write ``data`` (json's errors, or its text, then)."""
    try:
        text = msgspec.json.encode(data, order="sorted")
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return None
    if text.isascii() and b"\x7f" not in text and _TINY not in text and not _EXPONENT.search(text):
        return text.decode("ascii")
    return None


def canonical_graph_text(graph: Graph) -> str:
    """``canonical_text(graph.to_json(sort=False))``, the same text, with the nodes
    written by msgspec as they are (a guarded node as its JSON) rather than turned into
    a dict each first: a program's digest writes every node, a million for a big one.

    Where msgspec's text could differ from json's (:func:`canonical_text`: a number it
    formats otherwise, a character it escapes otherwise, a value it cannot write) the
    text is made the slower way.

    >>> from qmk.qvm.graph import Guard, GuardTerm, Node
    >>> guard = Guard(terms=(GuardTerm(event="e", equals=1),))
    >>> g = Graph(nodes=(Node(id="a", op="ALLOC_LQ", vqs=("q",)),
    ...                  Node(id="x", op="APPLY_X", vqs=("q",), guard=guard)))
    >>> canonical_graph_text(g) == canonical_text(g.to_json())
    True
    """
    shell = replace(graph, nodes=()).to_json(sort=False)
    nodes = graph.nodes
    guards = map(operator.is_not, map(_NODE_GUARD, nodes), itertools.repeat(None))
    shell["program"]["nodes"] = (
        [node if node.guard is None else node.to_json(sort=False) for node in nodes]
        if any(guards)
        else nodes
    )
    text = _sorted_by_msgspec(shell)
    return canonical_text(graph.to_json(sort=False)) if text is None else text


_NODE_GUARD = operator.attrgetter("guard")
