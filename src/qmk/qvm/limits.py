"""Size limits for reading and verifying graphs, in one explicit object.

``None`` means "no limit". The defaults admit graphs far larger than any
example (millions of nodes) while refusing input that would exhaust memory.

>>> Limits().max_nodes
2000000
>>> Limits(max_nodes=10).max_nodes
10
"""

from __future__ import annotations

from dataclasses import dataclass

#: Default limits, as named constants.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_NODES = 2_000_000
DEFAULT_MAX_QUBITS = 1_000_000
DEFAULT_MAX_CHANNELS = 100_000
DEFAULT_MAX_EVENTS = 2_000_000
DEFAULT_MAX_OPERANDS = 4096
DEFAULT_MAX_NAME_LENGTH = 256
DEFAULT_MAX_UNROLLED_NODES = DEFAULT_MAX_NODES


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How large a graph QMK reads and verifies.

    Attributes:
        max_bytes: size of the input text, in bytes (reading).
        max_depth: nesting depth of ``args`` and ``metadata`` values (reading).
        max_nodes: number of nodes (verifying).
        max_qubits: number of declared virtual qubits (verifying).
        max_channels: number of declared channels (verifying).
        max_events: number of declared events (verifying).
        max_operands: operands of one node, all kinds together (verifying).
        max_name_length: length of any id or handle name (verifying).
        max_unrolled_nodes: nodes of a program's REPEAT rows unrolled, for a consumer
            that applies operations one at a time (:func:`qmk.qvm.fold.unroll`); reading,
            verifying, counting and estimating stay folded and are bounded by
            ``max_nodes`` stored rows.
    """

    max_bytes: int | None = DEFAULT_MAX_BYTES
    max_depth: int | None = DEFAULT_MAX_DEPTH
    max_nodes: int | None = DEFAULT_MAX_NODES
    max_qubits: int | None = DEFAULT_MAX_QUBITS
    max_channels: int | None = DEFAULT_MAX_CHANNELS
    max_events: int | None = DEFAULT_MAX_EVENTS
    max_operands: int | None = DEFAULT_MAX_OPERANDS
    max_name_length: int | None = DEFAULT_MAX_NAME_LENGTH
    max_unrolled_nodes: int | None = DEFAULT_MAX_UNROLLED_NODES

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"Limits.{name} must be a non-negative int or None, got {value!r}")
