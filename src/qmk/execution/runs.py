"""A program run in this process: the one run request of a caller's keywords, then its
target's compile and run (:mod:`qmk.execution.target`).

Every in-process run goes this way: :func:`qmk.run` (once it has read its source), the
Qiskit backend and estimator, the PennyLane device, the assistant's ``run`` tool, a
workflow's local jobs (its device steps too), ``qmk run`` and the audit's replay. None
calls the executor itself: it is the ``logical`` target's
(:mod:`qmk.execution.logical`).

The keywords are :meth:`~qmk.execution.request.RunRequest.build`'s, its one list:
:func:`build_request` passes them on, after reading what a user gives in place of a
value (a noise-model object, a calibration or physics file, a part as a
:class:`~qmk.execution.parts.Part`), and checks shots, seed and precision in the
executor's family (``QE105 engine-misuse``).

>>> from qmk.qvm.asm import assemble
>>> bell = assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0, vq:q1
... h: APPLY_H vq:q0
... c: APPLY_CNOT vq:q0, vq:q1
... m0: MEASURE_Z vq:q0, out:m0
... m1: MEASURE_Z vq:q1, out:m1
... ''')
>>> result = run(bell, shots=1000, seed=7)
>>> sorted(result.counts), result.engine, result.telemetry.mode
(['00', '11'], 'stabilizer', 'stim-batch')
>>> run(bell, shots=1000, seed=7).counts == result.counts
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qmk import defaults
from qmk.execution import kept_digests
from qmk.execution.request import RunRequest, canonical_profile, program_digest

if TYPE_CHECKING:
    from qmk.errors import QMKError
    from qmk.execution.result import RunResult
    from qmk.execution.trajectories import Control
    from qmk.qec.physics import PhysicsConfig


def build_request(program: Any, *, digest: bool = True, **keywords: Any) -> RunRequest:
    """The run request of ``keywords`` (:meth:`RunRequest.build`'s) for ``program``, a
    verified program or a program of a target's own (a device job's JSON data), whose
    digest it holds.

    ``digest`` False leaves a verified program's digest out (``""``): a run in this
    process that nobody reads the request of digests it only where the run's key is
    needed, to save or resume a state (:func:`~qmk.execution.kept_digests.digest_of`). A
    million-row program's canonical text costs half a second, and ``qmk run`` reads it
    nowhere else.

    Read first, in place of a value: ``noise`` a noise model (:mod:`qmk.qec.noise`:
    noise on, its rates as ``noise_model``), ``calibration`` a calibration's file,
    ``physics`` a physics file (its value, JSON data, text or path), ``part`` a
    :class:`~qmk.execution.parts.Part` or ``[k, n]``. A calibration given must fit some
    qubit of the program unless ``require_calibration`` is False.

    Raises:
        EngineError: ``QE105`` engine-misuse for shots, seed, precision, ``dtype`` or
            ``part`` out of range. QECError: ``noise`` is neither a bool nor a noise
            model; ``QC102`` for a profile that does not parse.
    """
    noise = keywords.get("noise", defaults.NOISE)
    if not isinstance(noise, bool):
        from qmk.qec.errors import QECError
        from qmk.qec.noise import NoiseModel, describe_noise_model

        if not isinstance(noise, NoiseModel):
            raise QECError.of(
                "bad-parameter",
                f"noise must be True, False or a noise model of qmk.qec.noise, got {noise!r}",
            )
        keywords.update(noise=True, noise_model=describe_noise_model(noise))
    calibration = keywords.get("calibration")
    if calibration is not None:
        from qmk.qec.logical import Calibration

        if not isinstance(calibration, Calibration):
            keywords["calibration"] = Calibration.load(calibration)
    keywords.setdefault("require_calibration", True)
    physics = keywords.pop("physics", None)
    if physics is not None:
        from qmk.qec.physics import load_physics

        keywords.update(_physics(load_physics(physics), keywords))
    if keywords.get("part") is not None:
        from qmk.execution.parts import Part

        share = Part.from_json(keywords["part"])
        keywords["part"] = (share.index, share.of)
    if isinstance(program, Mapping):  # JSON data, which its owner may change
        text = program_digest(kept_digests.canonical_text_of(program))
    else:
        text = kept_digests.digest_of(program) if digest else ""
    return RunRequest.build(program_digest=text, error=_misuse, **keywords)


def _physics(physics: PhysicsConfig, keywords: Mapping[str, Any]) -> dict[str, Any]:
    """The ``profile``, ``qubit`` (its base technology) and ``noise_model`` a physics
    file sets on the base qubit of ``keywords``
    (:meth:`~qmk.qec.physics.PhysicsConfig.resolve`).

    Raises:
        QECError: ``QC103`` for a noise model, noise off or a profile of another code
            given beside it; what :meth:`~qmk.qec.physics.PhysicsConfig.resolve` raises.
    """
    from qmk.qec.errors import QECError  # a physics file is read: the QEC layer is here
    from qmk.qec.values import qubit_of

    noise, model = keywords.get("noise", defaults.NOISE), keywords.get("noise_model")
    if model is not None or not noise:
        given = "noise off" if not noise else f"noise model {model!r}"
        raise QECError.of(
            "bad-parameter",
            f"the physics file sets the error rates; {given} contradicts it: give one",
        )
    resolved = physics.resolve(qubit_of(keywords.get("qubit", defaults.QUBIT)))
    profile = keywords.get("profile", defaults.PROFILE)
    if profile != defaults.PROFILE and canonical_profile(profile) != resolved.profile:
        raise QECError.of(
            "bad-parameter",
            f"the physics file's code is {resolved.profile}; profile {profile!r} "
            "contradicts it: give one",
        )
    return {
        "profile": resolved.profile,
        "qubit": resolved.qubit,
        "noise_model": resolved.noise_model,
    }


def run(
    program: Any,
    *,
    own: bool | None = None,
    limits: Any = None,
    initial_state: Any = None,
    final_state: bool | str = False,
    control: Control | None = None,
    resume: Any = None,
    **keywords: Any,
) -> RunResult:
    """Run ``program`` in this process on its target (``keywords``' ``target``; the
    logical machine by default), as the request of ``keywords`` says.

    Args:
        program: a QVM program (a :class:`~qmk.qvm.graph.Graph`, a verified program, QVM
            JSON data or a file's path), or, for a target whose programs are its own, one
            of them (a device job's JSON data, a stim circuit).
        own: whether ``program`` is its target's own; None: JSON data that is no QVM graph
            is, for a target whose programs are not QVM graphs. Its digest is of its data
            (a device job's), or of the JSON of what its target read (a stim circuit's).
        limits: size limits for reading it (:class:`~qmk.qvm.limits.Limits`).
        initial_state, final_state: the logical machine's
            (:meth:`qmk.execution.logical.LogicalTarget.compile`); a target without them
            refuses them (``QM102``).
        control, resume: who may pause the run at its pause points, and a state it saved
            to go on from (:meth:`qmk.execution.target.Executable.run`).
        keywords: :func:`build_request`'s.

    Raises:
        QMKError: what the target's reading, compiling or running refuses (``QM101`` no
            such target, ``QM102`` an option it cannot honour), and what
            :func:`build_request` raises, all before any simulation.
        Suspended: the control asked the run to stop; its state was saved first.
    """
    from qmk.execution import target as targets

    entry = targets.spec(keywords.get("target", defaults.TARGET))  # QM101 before any reading
    chosen = targets.get(entry.name)
    if own is None:
        own = entry.program != "qvm" and _own(program)
    if own:  # the target's own program, which it reads
        read = chosen.read(program, limits=limits)
        digested = program if isinstance(program, Mapping) else read.to_json()
    else:
        digested = targets.read_qvm(program, limits=limits)
        read = chosen.read(digested, limits=limits)
        if not entry.qvm_noise:  # a QVM program has no noise there: off unless asked
            keywords.setdefault("noise", False)
    # (the request stays here: a QVM program is digested only where a state needs its key)
    request = build_request(digested, digest=False, **keywords)
    executable = chosen.compile(
        read, request, local=True, initial_state=initial_state, final_state=final_state
    )
    return executable.run(request.shots, request.seed, control=control, resume=resume)


def _own(program: Any) -> bool:
    """Whether ``program`` is JSON data that is no QVM graph (whose ``program`` is not an
    object of nodes): a program of a target's own, which that target reads."""
    return isinstance(program, Mapping) and not isinstance(program.get("program"), Mapping)


def _misuse(message: str, key: str) -> QMKError:
    """An in-process run's bad parameter: ``QE105 engine-misuse``."""
    from qmk.engines import EngineError

    return EngineError.of("engine-misuse", message, key=key)


__all__ = ["build_request", "run"]
