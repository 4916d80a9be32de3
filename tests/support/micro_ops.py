"""Micro-op columns made from micro-op objects one by one: the reference that the plan's
column builder (``trajectories.NoiselessOps``) and the router's gate features
(``executor._gate_features``) are checked against."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from qmk.execution.trajectories import MicroOp, OpColumns, kind_codes


def op_columns(ops: Sequence[MicroOp]) -> OpColumns:
    """The columns of ``ops``, their qubits and gates numbered as they first appear."""
    qubits = [op.qubits for op in ops]
    flat = list(itertools.chain.from_iterable(qubits))
    index = dict(zip(dict.fromkeys(flat), itertools.count()))
    gates = [op.gate for op in ops]
    code = dict(zip(dict.fromkeys(gates), itertools.count()))
    return OpColumns(
        kind_codes((op.kind for op in ops), len(ops)),
        [op.guard for op in ops],
        np.array([code[g] for g in gates], dtype=np.int64),
        list(code),
        np.array([len(q) for q in qubits], dtype=np.int64),
        np.array([index[q] for q in flat], dtype=np.int64),
        list(index),
    )


def same_columns(a: OpColumns, b: OpColumns) -> bool:
    """Whether ``a`` and ``b`` hold the same micro-ops' fields, however their qubits and
    gates are numbered."""
    return (
        np.array_equal(a.kinds, b.kinds)
        and a.guards == b.guards
        and [a.gate_names[c] for c in a.gates.tolist()]
        == [b.gate_names[c] for c in b.gates.tolist()]
        and np.array_equal(a.sizes, b.sizes)
        and [a.names[i] for i in a.ids.tolist()] == [b.names[i] for i in b.ids.tolist()]
    )
