"""The execution state of a run, saved at a fence and resumed anywhere: checkpoint files.

A run in ``trajectories`` mode (:mod:`qmk.execution.trajectories`) can stop at any
``FENCE_EPOCH`` and go on later, in another process or on another machine, with the
same result as a run that never stopped. (A ``stim-batch`` run and a neutral-atom device
job stop between chunks of shots instead, with a state of the same format: no branch,
``bits`` the chunks done, ``group`` how many: :mod:`qmk.execution.batch`,
:mod:`qmk.devices.neutral_atom.shots`.) What it needs is an :class:`ExecutionState`
(a value of :mod:`qmk.execution.branches`, which the runner builds and this module
writes, reads and resumes from):

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
>>> from qmk.execution import run
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
...     def after_segment(self): return None
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

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from qmk.engines import EngineError
from qmk.execution.branches import FORMAT, VERSION, ExecutionState, Progress

if TYPE_CHECKING:
    from qmk.execution.stacked import StackedRunner
    from qmk.execution.trajectories import Runner


def capture(runner: Runner) -> ExecutionState:
    """The state of ``runner`` now (its running branch already on its stack):
    :meth:`~qmk.execution.trajectories.Runner.state`."""
    return runner.state()


def resume(runner: Runner | StackedRunner, state: ExecutionState) -> None:
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


def write_state(
    path: str | os.PathLike[str],
    state: ExecutionState,
    *,
    seal: Callable[[bytes], bytes] | None = None,
) -> int:
    """Write ``state`` to ``path`` atomically; its size in bytes. ``seal`` makes the
    bytes written of the state's (the kernel's adds its HMAC: :mod:`qmk.kernel.security.seals`)."""
    data = state.to_bytes()
    if seal is not None:
        data = seal(data)
    target = Path(path)
    private_dirs(target.parent)
    temporary = target.with_name(f".{target.name}.tmp")
    # 0600 whatever the umask (a state holds a tenant's amplitudes and random stream)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    return len(data)


def private_dirs(path: str | os.PathLike[str]) -> None:
    """Make the folder ``path`` and its missing parents, each mode 0700 whatever the
    umask (``Path.mkdir(parents=True)`` makes the parents with the umask's mode)."""
    missing: list[Path] = []
    here = Path(os.path.abspath(path))
    while not here.is_dir():
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue


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
    "private_dirs",
    "read_state",
    "resume",
    "write_state",
]
