"""Targets: the one protocol every way of running a program goes through.

A **target** compiles a program and its run request
(:class:`~qmk.execution.request.RunRequest`, whose ``target`` names it) into an
**executable**. An executable reports its :class:`~qmk.execution.footprint.Footprint`:
what one run asks of the machine, which the kernel's machine scheduler places and
advances. It runs shots with a seed and a control, returning the one
:class:`~qmk.execution.result.RunResult`. :data:`TARGETS` is the one table of them:

- ``logical``: the gate-level logical machine, the executor's trajectories and batch
  sampler (:mod:`qmk.execution.logical`);
- ``lattice-surgery``: the program lowered to Pauli product measurements and pi/8
  rotations, laid out in patches, scheduled with its factories and executed
  (:mod:`qmk.execution.surgery`);
- ``neutral-atom``: the neutral-atom device: a device job, or a QVM program compiled onto
  a preset (:mod:`qmk.devices.neutral_atom.target`);
- ``stim``: a stim circuit on stim's own samplers, its detectors and observables, decoded
  when asked (:mod:`qmk.execution.stim_target`).

Every caller runs a program the same way, whatever the target: ``qmk run``, ``qmk.run``,
the kernel's workers (:mod:`qmk.kernel.pools.attempt`) and the conformance suite
(:func:`qmk.testing.assert_target_conformance`)::

    target = get(request.target)
    program = target.read(source)              # verified, or parsed and validated
    executable = target.compile(program, request)
    executable.footprint                       # what the machine must hold
    result = executable.run(request.shots, request.seed, control=..., resume=...)

An executable may offer more than shots. One whose final state is exact offers
:class:`Differentiable`'s ``gradient``: expectation values and their derivatives by the
program's gate angles. :func:`differentiable` asks for it, and refuses with ``QM102``
where a target has none (the logical machine has it).

What differs between targets stays in its module: each target refuses the options and
settings of a request it cannot honour (``QM102``, or its own family's code), so no
caller keeps lists of flags per target. What the kernel must know of a target without
loading it (which programs it reads, whether they run on the kernel's logical machine,
whether its shots split over workers, which ``policy`` keys are its options) is in its
:class:`TargetSpec`.

A new target is one module with one class that meets :class:`Target`, one
:class:`TargetSpec` line in :data:`TARGETS`, and a test that passes it through
:func:`qmk.testing.assert_target_conformance`.

The table (:data:`TARGETS`, :func:`spec`, :func:`get`) is its own module,
:mod:`qmk.execution.targets`, which the kernel process reads without this one; its names
are given here too.

>>> spec("logical").program, get("logical").name
('qvm', 'logical')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from qmk.errors import QMKError
from qmk.execution.targets import TARGETS as TARGETS
from qmk.execution.targets import ProgramKind as ProgramKind
from qmk.execution.targets import TargetError as TargetError
from qmk.execution.targets import TargetSpec as TargetSpec
from qmk.execution.targets import get as get
from qmk.execution.targets import spec as spec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qmk.engines.observables import Observable
    from qmk.execution.footprint import Footprint
    from qmk.execution.gradient import Gradient
    from qmk.execution.request import RunRequest
    from qmk.execution.result import RunResult
    from qmk.execution.trajectories import Control


#: A target's options, as its own struct reads them (:func:`own_options`).
_Options = TypeVar("_Options")


@runtime_checkable
class Executable(Protocol):
    """A program compiled for a target with its run request: what the machine must hold,
    and its runs."""

    @property
    def footprint(self) -> Footprint:
        """What one run asks of the machine (:mod:`qmk.execution.footprint`)."""
        ...

    def run(
        self,
        shots: int,
        seed: int,
        *,
        control: Control | None = None,
        resume: Any = None,
    ) -> RunResult:
        """Run ``shots`` shots seeded ``seed``: the same seed gives the same result.

        ``control`` may ask the run, at its pause points, to save its state and go on
        or stop (:class:`~qmk.execution.trajectories.Control`); ``resume`` is such a
        state (or its file). A target without pause points never asks, and refuses a
        resume with ``QM102``.

        Raises:
            QMKError: what the program or the target refuses.
            Suspended: the control asked the run to stop; its state was saved first.
        """
        ...


@runtime_checkable
class Differentiable(Protocol):
    """An executable that gives a program's exact expectation values and their gradient."""

    def gradient(self, observables: Sequence[Observable]) -> Gradient:
        """Expectation values of ``observables`` on the program's ideal final state and
        their derivatives by every gate angle (:mod:`qmk.execution.gradient`).

        Raises:
            QMKError: a program or request without one pure final state (``QE113``).
        """
        ...


def differentiable(executable: Executable, target: str) -> Differentiable:
    """``executable`` where it offers :class:`Differentiable`'s gradient.

    Raises:
        TargetError: ``QM102`` where the ``target`` that compiled it has none.
    """
    if not isinstance(executable, Differentiable):
        raise refuse(target, "gradient", "its runs give no exact final state to differentiate")
    return executable


@runtime_checkable
class Target(Protocol):
    """A way to run programs (the module docstring)."""

    #: Its name in :data:`TARGETS`.
    name: str

    def read(self, source: Any, *, limits: Any = None) -> Any:
        """The program of ``source`` as this target runs it: a QVM graph verified (from a
        :class:`~qmk.qvm.graph.Graph`, its JSON text or data, a verified program), or a
        device job parsed and validated. It has ``required_caps``, the capabilities a
        job of it needs.

        Raises:
            QMKError: a program this target cannot read (its code says why).
        """
        ...

    def compile(
        self, program: Any, request: RunRequest, *, local: bool = False, **options: Any
    ) -> Executable:
        """``program`` (from :meth:`read`) compiled for ``request``. ``local``: the run
        is the caller's own process (``qmk run``, :func:`qmk.run`), whose options may
        name files of this host; a kernel's job's may not. ``options`` are run settings
        outside the request that a target may take (``initial_state`` and
        ``final_state`` on the logical machine); a target refuses those, and the
        request's settings, it cannot honour.

        Raises:
            TargetError: ``QM102`` for an option or setting it cannot honour.
            QMKError: a program it cannot compile (its own family's code).
        """
        ...


def read_qvm(source: Any, *, limits: Any = None) -> Any:
    """A verified QVM program from a graph, QVM JSON (its text or data), a verified
    program or a file path (:func:`qmk.execution.executor.load_program`): what the
    targets whose programs are QVM graphs read.

    Raises:
        QMKError: unreadable input, a source that does not lower, a graph with errors.
    """
    import json

    from qmk.execution.executor import load_program
    from qmk.qvm.graph import GraphText

    if isinstance(source, GraphText):  # a submitted graph, as its compact text
        source = source.text
    if isinstance(source, str) and source.lstrip().startswith("{"):
        source = json.loads(source)
    return load_program(source, limits=limits)


def refuse(target: str, option: str, why: str) -> TargetError:
    """The ``QM102`` refusal of ``option`` by ``target``, saying ``why``."""
    return TargetError.of(
        "option-unsupported",
        f"{option} is not an option of the {target} target: {why}",
        target=target,
        option=option,
    )


def check_unset(target: str, request: RunRequest, fields: Mapping[str, str], why: str) -> None:
    """Refuse (``QM102``) the first field of ``request`` named in ``fields`` (field ->
    the option's name as its user wrote it) that differs from its default.

    Raises:
        TargetError: ``QM102``.
    """
    from qmk.execution.request import RunRequest

    defaults = _DEFAULTS.get(RunRequest)
    if defaults is None:
        defaults = _DEFAULTS[RunRequest] = _defaults(RunRequest)
    for field, option in fields.items():
        if getattr(request, field) != defaults.get(field):
            raise refuse(target, option, why)


#: The logical machine's settings of a run request (field -> the option's name), which a
#: target whose physics is its own (a device's preset, a stim circuit's channels) refuses.
MACHINE_SETTINGS: Mapping[str, str] = {
    "precision": "precision",
    "engine_options": "engine_options",
    "qubit": "qubit",
    "profile": "profile",
    "noise_model": "noise_model",
    "calibration": "calibration",
    "part": "part",
    "rewrite": "rewrite",
}


def own_options(
    target: str,
    request: RunRequest,
    options: Mapping[str, Any],
    cls: type[_Options],
    *,
    unhonoured: Mapping[str, str],
    why: str,
    channels: str,
) -> _Options:
    """The target options of ``request`` (:attr:`RunRequest.target_options`) as ``cls``
    reads them.

    It is for a target that refuses some of what it is given. That is the run options
    (``options``: a state to start from or to return), and the settings of the request
    named in ``unhonoured`` (:func:`check_unset`, saying ``why``). It is also a kernel
    job's channels (saying ``channels``).

    Raises:
        TargetError: ``QM102`` naming the first option or setting refused, or
            ``target_options`` that ``cls`` does not read (the message says why).
    """
    from qmk.values import convert

    for option, value in options.items():
        if value not in (None, False):
            raise refuse(target, option, why)
    check_unset(target, request, unhonoured, why)
    if request.policy is not None and request.policy.channels:
        raise refuse(target, "channels", channels)
    try:
        chosen: _Options = convert(request.target_options, cls, where="target_options")
    except QMKError as exc:
        raise refuse(target, "target_options", exc.message) from None
    return chosen


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = {}
    for f in msgspec.structs.fields(cls):
        if f.default is not msgspec.NODEFAULT:
            out[f.name] = f.default
        elif f.default_factory is not msgspec.NODEFAULT:
            out[f.name] = f.default_factory()
    return out


__all__ = [
    "MACHINE_SETTINGS",
    "TARGETS",
    "Differentiable",
    "Executable",
    "ProgramKind",
    "Target",
    "TargetError",
    "TargetSpec",
    "check_unset",
    "differentiable",
    "get",
    "own_options",
    "read_qvm",
    "refuse",
    "spec",
]
