"""The pieces of a resumable run's state: its waiting branches, its progress, the state.

A trajectories run (:mod:`qmk.execution.trajectories`) keeps every branch that waits
(:class:`Branch`, with what it does first when restored: :class:`Pending`) and what it
has done so far (:class:`Progress`); saved at a fence they make an
:class:`ExecutionState`, which :mod:`qmk.execution.checkpoint` writes to files and reads
back. These values sit below both: the runner builds states, the checkpoint files
carry them, and neither imports the other.

>>> progress = Progress(simulations=3, preempted_at_epochs=[1])
>>> progress.to_json()["preempted_at_epochs"], progress.to_json()["simulations"]
([1], 3)
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from qmk.engines import EngineError, engine_class
from qmk.engines.base import generator_at


@dataclass(frozen=True, slots=True)
class Pending:
    """What a branch restored from its split's snapshot does first: take its outcome.

    ``kind`` is "collapse" (a measurement: ``event`` records the outcome), "discard"
    (the Z outcome of a free or reset, ``free`` telling which) or "pauli" (a Werner or
    Pauli channel's Pauli, ``outcome`` indexing I, X, Y, Z; on two qubits, ``qubit``'s
    and ``partner``'s, ``4 * first + second``).
    """

    kind: str
    qubit: int
    outcome: int
    basis: str = "Z"
    event: int = -1
    name: str = ""
    free: bool = False
    partner: int = -1


@dataclass(slots=True, eq=False)
class Branch:
    """A trajectory that waits: where it is, its shots, its stream and its path.

    ``snapshot`` is the engine state to restore first, then ``pending`` is applied. None
    is a group's first branch: at ``pos`` 0 it starts on a fresh engine, past it on the
    error-free run's engine as it is (:class:`qmk.execution.trajectories.Runner`).
    """

    pos: int
    snapshot: Any
    qmap: dict[str, int]
    events: np.ndarray
    shots: int
    rng: np.random.Generator
    path: tuple[int, ...]
    pending: Pending | None = None


@dataclass(slots=True, kw_only=True)
class Progress:
    """What a run has done so far (saved with its state, so it adds up across resumes)."""

    simulations: int = 0
    checkpoints: int = 0
    preempted_at_epochs: list[int] | None = None
    rollbacks: int = 0
    rollback_gates: int = 0
    resumed_from_epoch: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "simulations": self.simulations,
            "checkpoints": self.checkpoints,
            "preempted_at_epochs": list(self.preempted_at_epochs or ()),
            "rollbacks": self.rollbacks,
            "rollback_gates": self.rollback_gates,
            "resumed_from_epoch": self.resumed_from_epoch,
        }


#: The file format's name and version (a reader refuses any other).
FORMAT = "qmk-execution-state"
VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionState:
    """Everything a run needs to go on from where it stopped (see
    :mod:`qmk.execution.checkpoint` for what each field means and the file format)."""

    key: str
    engine: str
    epoch: int
    group: int
    bits: np.ndarray
    leaves: tuple[tuple[tuple[int, ...], np.ndarray], ...]
    branches: tuple[Branch, ...]
    progress: Mapping[str, Any]

    def to_bytes(self) -> bytes:
        """The state as one ``.npz`` archive (:mod:`qmk.execution.checkpoint` has the format)."""
        export = _codec(self.engine)[0]
        arrays: dict[str, np.ndarray] = {"bits": self.bits}
        for i, (_, rows) in enumerate(self.leaves):
            arrays[f"leaf{i}"] = rows
        snapshots: dict[int, int] = {}  # id(snapshot) -> index: branches share snapshots
        branches = []
        for i, branch in enumerate(self.branches):
            arrays[f"events{i}"] = branch.events
            snap_index = None
            if branch.snapshot is not None:
                snap_index = snapshots.get(id(branch.snapshot))
                if snap_index is None:
                    snap_index = snapshots[id(branch.snapshot)] = len(snapshots)
                    meta, parts = export(branch.snapshot)
                    for name, array in parts.items():
                        arrays[f"snap{snap_index}.{name}"] = np.asarray(array)
                    arrays[f"snapmeta{snap_index}"] = _text(json.dumps(meta))
            pending = branch.pending
            branches.append(
                {
                    "pos": branch.pos,
                    "snapshot": snap_index,
                    "qmap": branch.qmap,
                    "shots": branch.shots,
                    "rng": branch.rng.bit_generator.state,
                    "path": list(branch.path),
                    "pending": None
                    if pending is None
                    else {
                        "kind": pending.kind,
                        "qubit": pending.qubit,
                        "outcome": pending.outcome,
                        "basis": pending.basis,
                        "event": pending.event,
                        "name": pending.name,
                        "free": pending.free,
                        "partner": pending.partner,
                    },
                }
            )
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "key": self.key,
            "engine": self.engine,
            "epoch": self.epoch,
            "group": self.group,
            "leaves": [list(path) for path, _ in self.leaves],
            "branches": branches,
            "progress": dict(self.progress),
        }
        arrays["manifest"] = _text(json.dumps(manifest))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ExecutionState:
        """Read a state :meth:`to_bytes` wrote.

        Raises:
            EngineError: ``QE107 checkpoint-unreadable`` for anything else (another
                format or version, a damaged archive).
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            manifest = json.loads(bytes(arrays["manifest"]).decode("utf-8"))
            if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
                raise ValueError(
                    f"format {manifest.get('format')!r} version {manifest.get('version')!r}, "
                    f"expected {FORMAT!r} version {VERSION}"
                )
            engine = str(manifest["engine"])
            load = _codec(engine)[1]
            snapshots: dict[int, Any] = {}
            branches = []
            for i, entry in enumerate(manifest["branches"]):
                snap = None
                if entry["snapshot"] is not None:
                    index = int(entry["snapshot"])
                    if index not in snapshots:
                        prefix = f"snap{index}."
                        parts = {
                            name[len(prefix) :]: arrays[name]
                            for name in arrays
                            if name.startswith(prefix)
                        }
                        meta = json.loads(bytes(arrays[f"snapmeta{index}"]).decode("utf-8"))
                        snapshots[index] = load(meta, parts)
                    snap = snapshots[index]
                rng = generator_at(entry["rng"])
                p = entry["pending"]
                branches.append(
                    Branch(
                        int(entry["pos"]),
                        snap,
                        {str(k): int(v) for k, v in entry["qmap"].items()},
                        np.array(arrays[f"events{i}"], dtype=np.uint8),
                        int(entry["shots"]),
                        rng,
                        tuple(int(c) for c in entry["path"]),
                        None
                        if p is None
                        else Pending(
                            str(p["kind"]),
                            int(p["qubit"]),
                            int(p["outcome"]),
                            basis=str(p["basis"]),
                            event=int(p["event"]),
                            name=str(p["name"]),
                            free=bool(p["free"]),
                            partner=int(p.get("partner", -1)),
                        ),
                    )
                )
            return cls(
                key=str(manifest["key"]),
                engine=engine,
                epoch=int(manifest["epoch"]),
                group=int(manifest["group"]),
                bits=np.array(arrays["bits"], dtype=np.uint8),
                leaves=tuple(
                    (tuple(int(c) for c in path), np.array(arrays[f"leaf{i}"], dtype=np.uint8))
                    for i, path in enumerate(manifest["leaves"])
                ),
                branches=tuple(branches),
                progress=dict(manifest["progress"]),
            )
        except EngineError:
            raise
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise EngineError.of(
                "checkpoint-unreadable", f"not a QMK execution state: {exc}"
            ) from None


def _text(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _codec(engine: str) -> tuple[Any, Any]:
    """The engine's ``(export_snapshot, import_snapshot)``.

    Raises:
        EngineError: ``QE106`` when the engine cannot write its state to a file.
    """
    cls = engine_class(engine)
    export = getattr(cls, "export_snapshot", None)
    load = getattr(cls, "import_snapshot", None)
    if export is None or load is None:
        raise EngineError.of(
            "checkpoint-mismatch", f"the {engine} engine cannot save its state to a checkpoint"
        )
    return export, load


__all__ = ["FORMAT", "VERSION", "Branch", "ExecutionState", "Pending", "Progress"]
