"""Verified programs by their QVM JSON text, kept per process: the kernel's admission,
its fault policies, attestation and replay, and every worker verify a text once.

The cache is bounded twice: at most :data:`VERIFIED_CACHE_SIZE` programs, and at most
:data:`VERIFIED_CACHE_NODES` graph nodes in all, so a tenant submitting 99,990-node
programs cannot make it pin 256 of them (25 million nodes, gigabytes). A program larger
than the node bound alone is verified and not kept. The least recently used go first.

The kernel verifies big programs in threads (:mod:`qmk.kernel.admit.budget`), so the cache
is held under a lock (the verification itself is not).

Each process verifies with the kernel's configured limits (:func:`limits_of`): stored rows
within ``kernel.max_graph_nodes`` (never below the verifier's default), unrolled nodes
within ``kernel.max_unrolled_nodes``.
Admission reads a program with REPEAT rows folded (``folded=True``): it is kept as a
:class:`~qmk.qvm.verify.FoldedProgram` and admitted by its totals, never unrolled in the
kernel for it. A worker reads it unrolled, and refuses one past the second limit
(``QV505 unrolled-too-large``).

>>> from qmk.kernel.records.programs import VerifiedCache
>>> cache = VerifiedCache(size=4, nodes=5)
>>> cache.put("a", 3, "A"); cache.put("b", 2, "B"); cache.put("c", 1, "C")
>>> cache.get("a"), cache.get("c"), cache.nodes  # a was first in: evicted for c
(None, 'C', 3)
>>> cache.put("huge", 6, "H"); cache.get("huge") is None  # over the bound alone
True
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

from qmk.errors import ProgramError
from qmk.qvm.codes import BY_NAME
from qmk.qvm.graph import GraphText, compact_text
from qmk.qvm.limits import DEFAULT_MAX_NODES, Limits

#: How many verified programs a process keeps, by graph text.
VERIFIED_CACHE_SIZE = 256
#: How many graph nodes the kept programs may hold together (two and a half programs of
#: the default ``max_graph_nodes``).
VERIFIED_CACHE_NODES = 250_000


class VerifiedCache:
    """A least-recently-used map of graph text to program, bounded in entries and nodes.

    Args:
        size: the most programs kept.
        nodes: the most graph nodes kept, all programs together.
    """

    def __init__(self, *, size: int = VERIFIED_CACHE_SIZE, nodes: int = VERIFIED_CACHE_NODES):
        self.size, self.limit = size, nodes
        self._entries: OrderedDict[str, tuple[int, Any, Limits | None]] = OrderedDict()
        self.nodes = 0  # held now
        self._lock = threading.Lock()

    def get(self, text: str, limits: Limits | None = None) -> Any:
        """The program kept for ``text`` under ``limits`` (None: the defaults), or None."""
        with self._lock:
            entry = self._entries.get(text)
            if entry is None or (entry[2] is not limits and entry[2] != limits):
                return None
            self._entries.move_to_end(text)
            return entry[1]

    def nodes_of(self, text: str) -> int | None:
        """The graph nodes of the program kept for ``text`` (None: none is kept). A
        text kept by the same string object is found without reading it (its hash is
        cached on the string, and the key is that object)."""
        with self._lock:
            entry = self._entries.get(text)
            return None if entry is None else entry[0]

    def put(self, text: str, nodes: int, program: Any, limits: Limits | None = None) -> None:
        """Keep ``program`` (of ``nodes`` nodes, verified under ``limits``) for ``text``,
        evicting the least recently used past either bound; a program over the node
        bound alone is not kept."""
        if nodes > self.limit:
            return
        evicted = []  # freed after the lock is let go
        with self._lock:
            old = self._entries.pop(text, None)
            if old is not None:
                self.nodes -= old[0]
            self._entries[text] = (nodes, program, limits)
            self.nodes += nodes
            while len(self._entries) > self.size or self.nodes > self.limit:
                _, entry = self._entries.popitem(last=False)
                self.nodes -= entry[0]
                evicted.append(entry)
        del evicted

    def __len__(self) -> int:
        return len(self._entries)


_CACHE = VerifiedCache()


def limits_of(config: Any) -> Limits:
    """The limits a kernel with ``config`` verifies with: its admission, its fault
    policies and its workers alike, so that one kept program serves them all.

    Unrolled nodes are within ``max_unrolled_nodes``. Stored rows are within
    ``max_graph_nodes`` but never below the verifier's default: a submit's rows are
    held to ``max_graph_nodes`` before it is read (``QS1006``), and the runs the kernel
    rewrites (fences, idle, teleported gates) may add rows to an admitted program.

    >>> from qmk.kernel.config import config_from_dict
    >>> config = config_from_dict({"machine": {"physical_qubits": 1000},
    ...                            "kernel": {"max_graph_nodes": 5_000_000}})
    >>> limits = limits_of(config)
    >>> limits.max_nodes, limits.max_unrolled_nodes
    (5000000, 2000000)
    """
    return _limits(config.max_graph_nodes, config.max_unrolled_nodes)


@functools.lru_cache(maxsize=8)
def _limits(max_graph_nodes: int, max_unrolled_nodes: int | None) -> Limits:
    """:func:`limits_of`'s object, built once per pair of settings (a kernel asks for it
    several times a job; :class:`~qmk.qvm.limits.Limits` is frozen, so one serves all)."""
    return Limits(
        max_nodes=max(max_graph_nodes, DEFAULT_MAX_NODES),
        max_unrolled_nodes=max_unrolled_nodes,
    )


def verified(text: str, limits: Limits | None = None, *, folded: bool = False) -> Any:
    """The verified program of QVM JSON ``text`` under ``limits`` (cached by text).

    With ``folded``, a program with REPEAT rows is its
    :class:`~qmk.qvm.verify.FoldedProgram`, nothing unrolled (what admission reads: its
    totals and its one-turn view). Without, it is unrolled within
    ``limits.max_unrolled_nodes`` and refused past it with ``QV505 unrolled-too-large``
    (what a worker that runs it reads, and the fault policies that rewrite its run).

    Raises:
        QMKError: FormatError or VerificationError, as :func:`qmk.qvm.verify.verify`.
    """
    from qmk.qvm.verify import FoldedProgram

    program = _CACHE.get(text, limits)
    if program is not None and (folded or not isinstance(program, FoldedProgram)):
        return program
    from qmk.qvm import graph as graph_io
    from qmk.qvm.verify import verify, verify_folded

    graph = graph_io.loads(text, limits=limits)
    if not folded:
        program = verify(graph, limits=limits)  # past the unrolling limit: QV505
        _CACHE.put(text, len(program.graph.nodes), program, limits)
        return program
    program = verify_folded(graph, limits=limits, unroll=False)
    _CACHE.put(text, len(program.graph.nodes), program, limits)
    return program


def verified_kept(text: str, limits: Limits | None = None) -> Any:
    """The verified program kept for ``text`` (:func:`verified`'s, read with no work of
    its own: no reading, no verifying), or None when none is kept.

    >>> from qmk.qvm.generate import uniform_graph
    >>> from qmk.qvm.graph import compact_text
    >>> verified_kept('{"no": "graph"}') is None  # never verified, so never kept
    True
    >>> text = compact_text(uniform_graph(3).to_json())
    >>> program = verified(text)
    >>> verified_kept(text) is program
    True
    """
    return _CACHE.get(text, limits)


def verified_nodes(text: str) -> int | None:
    """The graph nodes of ``text``'s program if it is verified and kept, else None.

    >>> from qmk.qvm.generate import uniform_graph
    >>> from qmk.qvm.graph import compact_text
    >>> text = compact_text(uniform_graph(2).to_json())
    >>> verified_nodes(text) is None, len(verified(text).graph.nodes) == verified_nodes(text)
    (True, True)
    """
    return _CACHE.nodes_of(text)


#: The code of a submitted program that is not plain JSON (an object), as of an
#: unreadable file.
UNREADABLE = BY_NAME["unreadable-file"].code


def graph_text(graph: Any) -> str:
    """The submitted graph as compact JSON text (what is stored and run): a
    :class:`~qmk.qvm.graph.GraphText`'s own, or written a few hundred nodes at a time.

    Raises:
        ProgramError: ``UNREADABLE``: it is not plain JSON.
    """
    if isinstance(graph, GraphText):
        return graph.text
    try:
        return compact_text(graph)
    except (TypeError, ValueError) as exc:
        raise ProgramError(f"graph is not plain JSON: {exc}", code=UNREADABLE) from None


__all__ = [
    "UNREADABLE",
    "VERIFIED_CACHE_NODES",
    "VERIFIED_CACHE_SIZE",
    "VerifiedCache",
    "graph_text",
    "limits_of",
    "verified",
    "verified_kept",
    "verified_nodes",
]
