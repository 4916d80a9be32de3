"""Running a plan on an engine: simulate once, branch at mid-circuit outcomes, sample the end.

The shots of one group (shots that share a logical-error pattern) start as one
trajectory. At a measurement whose outcome is random, the group's shots split
binomially between the two outcomes and each branch goes on with its share; a
channel's Werner noise splits them multinomially the same way. The branch with
fewer shots runs first and the other waits as a snapshot, so at most about
log2(shots) snapshots are held at once. Measurements at the end of the program
(on distinct qubits, with nothing after them that reads their events) are not
simulated one by one: each leaf applies their basis changes and draws all its
shots from the final state at once. A program with no mid-circuit measurement is
thus simulated exactly once per group and sampled.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qmk.engines.base import Engine
from qmk.execution.plan import Plan
from qmk.qvm.graph import Guard


@dataclass(frozen=True, slots=True)
class _Op:
    """One engine-level step: alloc, free, gate, meas, reset, cond (feed-forward) or werner."""

    kind: str
    qubits: tuple[str, ...]
    guard: Guard | None = None
    gate: str = ""
    params: tuple[float, ...] = ()
    basis: str = "Z"
    event: int = -1
    inputs: tuple[int, ...] = ()
    fidelity: float = 1.0


def micro_ops(plan: Plan, errors: Mapping[int, Sequence[tuple[bool, str, str]]]) -> list[_Op]:
    """The plan as engine-level micro-ops, with the Pauli ``errors`` (by step index:
    ``(before, qubit, pauli)``) inserted."""
    ev = {name: i for i, name in enumerate(plan.events)}
    out: list[_Op] = []
    append = out.append

    def paulis(step: int, before: bool) -> None:
        for when, q, pauli in errors.get(step, ()):
            if when is before:
                append(_Op("gate", (q,), gate=pauli.lower()))

    for step in plan.steps:
        node = step.node
        guard = node.guard
        qs = node.vqs
        kind = step.kind
        if step.index in errors:
            paulis(step.index, True)
        if kind == "gate":
            append(_Op("gate", qs, guard, gate=step.gate or "", params=step.params))
        elif kind == "teleport_cnot":
            append(_Op("gate", qs, guard, gate="cx"))
        elif kind == "measure":
            append(_Op("meas", qs, guard, basis=step.basis, event=ev.get(node.produces[0], -1)))
        elif kind == "measure_angle":
            angle = step.params[0]
            append(_Op("gate", qs, guard, gate="rz", params=(-angle,)))
            append(_Op("gate", qs, guard, gate="h"))
            append(_Op("meas", qs, guard, event=ev.get(node.produces[0], -1)))
            append(_Op("gate", qs, guard, gate="h"))
            append(_Op("gate", qs, guard, gate="rz", params=(angle,)))
        elif kind == "bell":
            a, b = qs
            xx, zz = (ev.get(e, -1) for e in node.produces)
            append(_Op("gate", qs, guard, gate="cx"))
            append(_Op("gate", (a,), guard, gate="h"))
            append(_Op("meas", (a,), guard, event=xx))
            append(_Op("meas", (b,), guard, event=zz))
            append(_Op("gate", (a,), guard, gate="h"))
            append(_Op("gate", qs, guard, gate="cx"))
        elif kind == "alloc":
            for q in qs:
                append(_Op("alloc", (q,), guard))
        elif kind == "free":
            for q in qs:
                append(_Op("free", (q,), guard))
        elif kind == "reset":
            append(_Op("reset", qs, guard))
        elif kind == "inject_t":
            append(_Op("reset", qs, guard))
            append(_Op("gate", qs, guard, gate="h"))
            append(_Op("gate", qs, guard, gate="t"))
        elif kind == "cond_pauli":
            if step.pauli != "I":
                inputs = tuple(ev.get(e, -1) for e in node.inputs)
                append(_Op("cond", qs, guard, gate=step.pauli.lower(), inputs=inputs))
        elif kind == "open_chan":
            a, b = qs
            append(_Op("reset", (a,), guard))
            append(_Op("reset", (b,), guard))
            append(_Op("gate", (a,), guard, gate="h"))
            append(_Op("gate", qs, guard, gate="cx"))
            if step.fidelity < 1:
                append(_Op("werner", (b,), guard, fidelity=step.fidelity))
        if step.index in errors:
            paulis(step.index, False)
    return out


def tail_start(ops: Sequence[_Op]) -> int:
    """Where the terminal-measurement suffix begins (``len(ops)`` when there is none).

    The suffix holds unguarded measurements of distinct qubits, frees, and gates
    that either come before every measurement of their qubits (basis changes,
    applied before sampling) or after all of them (unobservable, skipped).
    """
    start = len(ops)
    while (
        start > 0
        and ops[start - 1].guard is None
        and ops[start - 1].kind in ("meas", "free", "gate")
    ):
        start -= 1
    while start < len(ops):
        bad = _first_conflict(ops, start)
        if bad is None:
            return start
        start = bad + 1
    return start


def _first_conflict(ops: Sequence[_Op], start: int) -> int | None:
    measured: set[str] = set()
    for i in range(start, len(ops)):
        op = ops[i]
        if op.kind == "meas":
            if op.qubits[0] in measured:
                return i
            measured.add(op.qubits[0])
        elif op.kind == "gate":
            done = [q in measured for q in op.qubits]
            if any(done) and not all(done):
                return i
    return None


def _holds(guard: Guard | None, events: np.ndarray, index: Mapping[str, int]) -> bool:
    if guard is None:
        return True
    return all(int(events[index[t.event]]) == t.equals for t in guard.terms if t.event in index)


_TO_Z = {"Z": (), "X": ("h",), "Y": ("sdg", "h")}


def run_group(
    plan: Plan,
    ops: Sequence[_Op],
    engine: Engine,
    shots: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Simulate ``shots`` shots of ``ops`` on ``engine``: event rows (uint8) and the
    number of trajectories simulated."""
    index = {name: i for i, name in enumerate(plan.events)}
    width = len(plan.events)
    tail = tail_start(ops)
    blocks: list[np.ndarray] = []
    # (position, snapshot, qubit map, events, shots, action to take after restoring)
    stack: list[tuple[int, object, dict[str, int], np.ndarray, int, Callable[[], None] | None]]
    stack = []
    qmap: dict[str, int] = {}
    events = np.zeros(width, dtype=np.uint8)
    pos, n = 0, shots
    trajectories = 1

    def split(choices: Sequence[float], act: Callable[[int], None]) -> int:
        """Split the current n shots by ``choices``; returns the choice this branch takes."""
        nonlocal n, trajectories
        counts = rng.multinomial(n, choices)
        taken = [c for c in range(len(choices)) if counts[c] > 0]
        if len(taken) > 1:
            snap = engine.snapshot()
            order = sorted(taken, key=lambda c: (counts[c], c))
            for c in reversed(order[1:]):
                stack.append(
                    (
                        pos,
                        snap,
                        dict(qmap),
                        events.copy(),
                        int(counts[c]),
                        functools.partial(act, c),
                    )
                )
                trajectories += 1
        choice = min(taken, key=lambda c: (counts[c], c))
        n = int(counts[choice])
        return choice

    while True:
        while pos < tail:
            op = ops[pos]
            pos += 1
            if op.guard is not None and not _holds(op.guard, events, index):
                continue
            kind = op.kind
            if kind == "gate":
                engine.apply(op.gate, [qmap[q] for q in op.qubits], op.params)
            elif kind == "meas":
                q = qmap[op.qubits[0]]
                p1 = min(max(engine.probability(q, op.basis), 0.0), 1.0)
                evi = op.event

                def act(outcome: int, q: int = q, basis: str = op.basis, evi: int = evi) -> None:
                    engine.collapse(q, outcome, basis)
                    if evi >= 0:
                        # late binding on purpose: the branch's own events row
                        events[evi] = outcome  # noqa: B023

                act(split((1.0 - p1, p1), act))
            elif kind == "alloc":
                qmap[op.qubits[0]] = engine.allocate()
            elif kind in ("free", "reset"):
                # The engine's free/reset would collapse the qubit with one random draw
                # for the whole group; split the shots on its Z outcome instead (a
                # measurement that records nothing), so its partners stay right per shot.
                name = op.qubits[0]
                q = qmap[name]
                p1 = min(max(engine.probability(q, "Z"), 0.0), 1.0)

                def discard(outcome: int, q: int = q, name: str = name, kind: str = kind) -> None:
                    engine.collapse(q, outcome, "Z")
                    if kind == "free":
                        engine.free(qmap.pop(name))  # noqa: B023 (the branch's own map)
                    else:
                        engine.reset(q)

                discard(split((1.0 - p1, p1), discard))
            elif kind == "cond":
                if sum(int(events[i]) for i in op.inputs if i >= 0) % 2:
                    engine.apply(op.gate, [qmap[op.qubits[0]]])
            elif kind == "werner":
                q = qmap[op.qubits[0]]
                p = (1.0 - op.fidelity) / 3

                def werner(choice: int, q: int = q) -> None:
                    if choice:
                        engine.apply("ixyz"[choice], [q])

                werner(split((op.fidelity, p, p, p), werner))
        blocks.append(_leaf(ops, tail, engine, qmap, events, n, index))
        if not stack:
            break
        pos, snap, qmap, events, n, action = stack.pop()
        engine.restore(snap)
        # restore() brings the engine's random stream back too: without a fresh seed
        # every branch restored from one snapshot would replay the same draws.
        engine.reseed(int(rng.integers(2**63)))
        if action is not None:
            action()
    return np.concatenate(blocks, axis=0), trajectories


def _leaf(
    ops: Sequence[_Op],
    tail: int,
    engine: Engine,
    qmap: Mapping[str, int],
    events: np.ndarray,
    shots: int,
    index: Mapping[str, int],
) -> np.ndarray:
    rows = np.tile(events, (shots, 1))
    measured: list[tuple[int, int]] = []
    done: set[str] = set()
    for op in ops[tail:]:
        if op.kind == "meas":
            q = qmap[op.qubits[0]]
            for gate in _TO_Z[op.basis]:
                engine.apply(gate, [q])
            measured.append((q, op.event))
            done.add(op.qubits[0])
        elif op.kind == "gate" and not any(q in done for q in op.qubits):
            engine.apply(op.gate, [qmap[q] for q in op.qubits], op.params)
    if measured and shots:
        samples = engine.sample([q for q, _ in measured], shots)
        for column, (_, evi) in enumerate(measured):
            if evi >= 0:
                rows[:, evi] = samples[:, column]
    return rows
