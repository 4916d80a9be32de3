"""The execution state of a run, saved at a fence and resumed anywhere: checkpoint files.

A run in ``trajectories`` mode (:mod:`qmk.execution.trajectories`) can stop at a
``FENCE_EPOCH`` and go on later, in another process or on another machine, with the
same result as a run that never stopped. What it needs is an :class:`ExecutionState`:

- ``key``: a digest of everything that decides the result (the program, shots, seed,
  engine and its options, noise, qubit parameters, profile, calibration). A state only
  resumes the run it came from; anything else is ``QE106 checkpoint-mismatch``;
- the position: which shot group is running (groups come from the seed again), the
  rows of the groups done, the leaves of the running group (with their paths), and
  every waiting branch: its position in the micro-ops, qubit map, events, shots,
  random stream (numpy's PCG64 state) and engine snapshot (the engine's
  ``export_snapshot``: amplitudes, or a stim tableau);
- ``epoch``: the fence (the number of the epoch it opens) where the running branch
  stopped, and ``progress``: simulations, checkpoints, stops, rollbacks so far.

On disk a state is one NumPy ``.npz`` archive (no pickle: read with
``allow_pickle=False``): a ``manifest`` (UTF-8 JSON with ``format``, ``version`` and
the fields above) and the arrays it names. :func:`write_state` writes it atomically
(a temporary file, fsync, rename), so a crash leaves the previous checkpoint or the
new one, never half of one.

>>> from qmk.qvm.asm import assemble
>>> from qmk.execution.executor import run
>>> program = assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q
... h: APPLY_H vq:q
... m: MEASURE_Z vq:q, out:m
... f: FENCE_EPOCH
... t: APPLY_T vq:q
... h2: APPLY_H vq:q
... m2: MEASURE_Z vq:q, out:m2
... ''')
>>> class AtFirstFence:
...     urgent = False
...     saved = None
...     def at_fence(self, epoch): return "yield" if self.saved is None else None
...     def at_op(self): return None
...     def save(self, state): self.saved = state
>>> control = AtFirstFence()
>>> run(program, shots=500, seed=3, noise=False, control=control)
Traceback (most recent call last):
...
qmk.execution.trajectories.Suspended: suspended
>>> data = control.saved.to_bytes()
>>> resumed = run(program, shots=500, seed=3, noise=False, resume=ExecutionState.from_bytes(data))
>>> resumed.counts == run(program, shots=500, seed=3, noise=False).counts
True
>>> resumed.telemetry.resumed_from_epoch, resumed.telemetry.preempted_at_epochs
(1, (1,))
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qmk.engines import EngineError, engine_class
from qmk.execution.trajectories import Branch, Pending, Progress

if TYPE_CHECKING:
    from qmk.execution.trajectories import Runner

#: The file format's name and version (a reader refuses any other).
FORMAT = "qmk-execution-state"
VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionState:
    """Everything a run needs to go on from where it stopped (see the module docstring)."""

    key: str
    engine: str
    epoch: int
    group: int
    bits: np.ndarray
    leaves: tuple[tuple[tuple[int, ...], np.ndarray], ...]
    branches: tuple[Branch, ...]
    progress: Mapping[str, Any]

    def to_bytes(self) -> bytes:
        """The state as one ``.npz`` archive (see the module docstring)."""
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
                rng = np.random.default_rng()
                rng.bit_generator.state = entry["rng"]
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


def run_key(parts: Mapping[str, Any]) -> str:
    """The digest of what decides a run's result (``parts``: plain JSON values)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def capture(runner: Runner) -> ExecutionState:
    """The state of ``runner`` now (its running branch already on its stack)."""
    return ExecutionState(
        key=runner.key,
        engine=runner.engine_name,
        epoch=runner.epoch,
        group=runner.group,
        bits=runner.bits.copy(),
        leaves=tuple(runner.leaves),
        branches=tuple(runner.stack),
        progress=runner.progress.to_json(),
    )


def resume(runner: Runner, state: ExecutionState) -> None:
    """Put ``runner`` where ``state`` left its run.

    Raises:
        EngineError: ``QE106 checkpoint-mismatch`` when the state is of another run.
    """
    if state.key != runner.key:
        raise EngineError.of(
            "checkpoint-mismatch",
            "the checkpoint is of another run (program, shots, seed, engine, noise or "
            "profile differ): resume it with the same ones",
        )
    if state.bits.shape != runner.bits.shape or state.group > len(runner.groups):
        raise EngineError.of("checkpoint-mismatch", "the checkpoint's shape does not fit the run")
    runner.bits = state.bits.copy()
    runner.group = state.group
    runner.leaves = list(state.leaves)
    runner.stack = list(state.branches)
    progress = state.progress
    runner.progress = Progress(
        simulations=int(progress["simulations"]),
        checkpoints=int(progress["checkpoints"]),
        preempted_at_epochs=[int(e) for e in progress["preempted_at_epochs"]],
        rollbacks=int(progress["rollbacks"]),
        rollback_gates=int(progress["rollback_gates"]),
        resumed_from_epoch=state.epoch,
    )
    runner.epoch = state.epoch


def write_state(path: str | os.PathLike[str], state: ExecutionState) -> int:
    """Write ``state`` to ``path`` atomically; its size in bytes."""
    data = state.to_bytes()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    return len(data)


def read_state(path: str | os.PathLike[str]) -> ExecutionState:
    """The state in the file ``path``.

    Raises:
        EngineError: ``QE107 checkpoint-unreadable`` when it is missing or not a state.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EngineError.of(
            "checkpoint-unreadable", f"cannot read checkpoint {os.fspath(path)!r}: {exc}"
        ) from None
    return ExecutionState.from_bytes(data)


__all__ = [
    "FORMAT",
    "VERSION",
    "ExecutionState",
    "capture",
    "read_state",
    "resume",
    "run_key",
    "write_state",
]
