"""One attempt of a job on a worker: what the kernel hands a worker pool.

The kernel hands a worker pool ``run_job(attempt)``: an :class:`Attempt` holds the job's
run request (:class:`~qmk.execution.request.RunRequest`, as the fault policies left it),
the program text as submitted, the capabilities granted at submit, and where the
attempt's checkpoints go and which one it resumes from. The worker runs it
(:mod:`qmk.kernel.pools.runner`, the worker's side, which the kernel process never
imports): it reads and verifies the program again, checks the capabilities again and
runs the program through its target.

What comes back is one of the typed outcomes of :mod:`qmk.kernel.records.outcome`, sent as
its MessagePack (it crosses a process boundary, or a Dask cluster:
:func:`~qmk.kernel.records.outcome.pack`):

- :class:`~qmk.kernel.records.outcome.Done`: the result encoded once, here
  (:func:`qmk.kernel.pools.runner._answer`), with the artifacts of a target that streams;
- :class:`~qmk.kernel.records.outcome.Ran` for a part of a split job;
- :class:`~qmk.kernel.records.outcome.Failed` for a refusal or an error of the program
  or engine;
- :class:`~qmk.kernel.records.outcome.Yielded` when the kernel asked the job to stop and
  it did, its state saved.

A traced attempt's outcome carries its ``spans``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.execution.request import RunRequest
from qmk.kernel.records.outcome import pack
from qmk.kernel.storage.store import GRAPH_PACKED_AHEAD, pack_graph
from qmk.qvm.limits import DEFAULT_MAX_NODES, DEFAULT_MAX_UNROLLED_NODES, Limits

if TYPE_CHECKING:
    from qmk.kernel.pools.control import WorkerControl


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of a job on a worker: what :func:`run_job` runs.

    ``request`` decides the run; ``program`` is the job's text as submitted (QVM JSON,
    or a device job's stored ``{"job": wire job, "strict_timing": bool}``); ``caps``
    the capabilities granted at submit (checked again here). ``checkpoint_dir`` is where
    the attempt saves execution states (None: nowhere), ``resume`` the state file it goes
    on from (None: the start), and ``max_result_bytes`` the largest result the kernel
    keeps (None: no limit). ``state_key`` seals the states it saves and must open the
    one it resumes from (:mod:`qmk.kernel.security.seals`: an edited file is ``QK309``); None:
    states are neither sealed nor checked (an attempt outside a kernel).
    """

    request: RunRequest
    program: str
    caps: tuple[str, ...]
    checkpoint_dir: str | None = None
    resume: str | None = None
    max_result_bytes: int | None = None
    state_key: bytes | None = None
    #: The kernel's limits on the program (``kernel.max_graph_nodes``: stored rows;
    #: ``kernel.max_unrolled_nodes``: unrolled nodes; None: the verifier's defaults).
    max_nodes: int | None = None
    max_unrolled_nodes: int | None = None

    @property
    def limits(self) -> Limits | None:
        """The limits the worker verifies the program with (None: the defaults)."""
        if self.max_nodes is None and self.max_unrolled_nodes is None:
            return None
        return Limits(
            max_nodes=DEFAULT_MAX_NODES if self.max_nodes is None else self.max_nodes,
            max_unrolled_nodes=DEFAULT_MAX_UNROLLED_NODES
            if self.max_unrolled_nodes is None
            else self.max_unrolled_nodes,
        )

    def resume_state(self) -> Any:
        """What the run resumes from: the state file's path, or (with ``state_key``)
        the state read from it once its seal is checked; None: the start.

        Raises:
            JobError: ``QK309 checkpoint-tampered``.
            EngineError: ``QE107 checkpoint-unreadable``.
        """
        if self.resume is None or self.state_key is None:
            return self.resume
        from qmk.engines import EngineError
        from qmk.execution.checkpoint import ExecutionState
        from qmk.kernel.security.seals import unseal_state

        try:
            with open(self.resume, "rb") as handle:
                sealed = handle.read()
        except OSError as exc:
            raise EngineError.of(
                "checkpoint-unreadable", f"cannot read checkpoint {self.resume!r}: {exc}"
            ) from None
        return ExecutionState.from_bytes(unseal_state(self.state_key, sealed))

    def __reduce__(self) -> tuple[Callable[..., Attempt], tuple[bytes, ...]]:
        """Pickled as its MessagePack, read back by :func:`_unpickled` (a task crosses
        the pool's line as a pickle). A pickle of the structs themselves names each of
        their classes (the attempt, its request, the policy, a rewrite, a schedule...).
        The pickler looks each name up as an import, which costs more than the rest of a
        small job's task together. The same fields come back, checked by their
        types as a stored request is. A program of :data:`GRAPH_PACKED_AHEAD`
        characters or more crosses packed, as the store keeps it (:func:`pack_graph`,
        made once where the kernel read the program). A big text encoded on the event
        loop would hold it; packed it is a fifteenth of the bytes. The worker unpacks it.
        A shorter one crosses as it is: packing it here would cost more than encoding it
        (``docs/kernel.md`` has the figures).

        >>> import pickle
        >>> request = RunRequest(program_digest="ab" * 32, shots=10, seed=1)
        >>> attempt = Attempt(request=request, program="{}", caps=("cap",), state_key=b"k")
        >>> pickle.loads(pickle.dumps(attempt)) == attempt
        True
        >>> big = msgspec.structs.replace(attempt, program="[" + "0," * GRAPH_PACKED_AHEAD + "0]")
        >>> pickle.loads(pickle.dumps(big)) == big
        True
        """
        if len(self.program) < GRAPH_PACKED_AHEAD:
            return _unpickled, (_ATTEMPT_ENCODER.encode(self),)
        without = msgspec.structs.replace(self, program="")
        return _unpickled, (_ATTEMPT_ENCODER.encode(without), pack_graph(self.program))


_ATTEMPT_ENCODER = msgspec.msgpack.Encoder()
_ATTEMPT_DECODER = msgspec.msgpack.Decoder(Attempt)


def _unpickled(data: bytes, packed: bytes | None = None) -> Attempt:
    """The attempt :meth:`Attempt.__reduce__` pickled as ``data`` (and its program
    ``packed``, a big one)."""
    attempt = _ATTEMPT_DECODER.decode(data)
    if packed is None:
        return attempt
    from qmk.kernel.storage.job_reads import unpack_graph  # a worker's, for a big program

    return msgspec.structs.replace(attempt, program=unpack_graph(packed))


def run_job(
    attempt: Attempt, *, control: Callable[..., WorkerControl] | None = None
) -> bytes | dict[str, Any]:
    """Run one attempt of a job in a worker: the task a pool runs. Its outcome
    (:func:`qmk.kernel.pools.runner.attempt_outcome`) as it crosses the pool's line, its
    MessagePack (:func:`qmk.kernel.records.outcome.pack`; the kernel reads it back with
    ``decode``). The run is the worker's side (:mod:`qmk.kernel.pools.runner`), imported
    in the worker at its first job: the kernel hands this function to its pool and runs
    none of it."""
    from qmk.kernel.pools.runner import attempt_outcome

    return pack(attempt_outcome(attempt, control=control))


__all__ = ["Attempt", "run_job"]
