"""The targets' table: what the kernel knows of each target without loading it, and a
target found by its name.

:data:`TARGETS` has one :class:`TargetSpec` per way to run a program; the protocol a
target meets, and what its module uses to refuse what it cannot honour, is
:mod:`qmk.execution.target`, which gives these names too. The kernel process reads only
this table (issue 79): a target's module loads where :func:`get` makes it.

>>> spec("logical").program, spec("stim").logical_machine
('qvm', False)
>>> spec("logicl")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.execution.targets.TargetError: QM101 target-unknown: no target named 'logicl'; \
did you mean 'logical'? known: logical...
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from qmk import defaults
from qmk.errors import QMKError, closest, register
from qmk.execution.request import DEFAULT_TARGET

if TYPE_CHECKING:
    from qmk.execution.target import Target


class TargetError(QMKError):
    """A target that does not exist, or an option or setting a target cannot honour."""

    exit_status = 2


register(
    TargetError,
    (
        "QM101",
        "target-unknown",
        "no target of this name",
        "name one of qmk.execution.target.TARGETS: logical, lattice-surgery, neutral-atom, stim",
    ),
    (
        "QM102",
        "option-unsupported",
        "an option or setting of the run that its target cannot honour (each target takes "
        "its own; the message names the option and the target)",
        "leave the option out, or run on a target that takes it",
    ),
)

#: What a target's programs are: QVM graphs, the neutral-atom device's wire-form jobs, or
#: stim circuits.
ProgramKind = Literal["qvm", "device-job", "stim-circuit"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSpec:
    """One target of :data:`TARGETS`: what the kernel knows of it without loading it.

    Attributes:
        name: its name, as :attr:`RunRequest.target` holds it.
        summary: one line for the docs.
        module: the module that defines its class (loaded on first use), and ``cls`` the
            class's name.
        program: what its programs are (:data:`ProgramKind`): a QVM graph, verified, or
            a device's wire-form job.
        options: the keys of a job's ``policy`` that are this target's own options
            (they travel as :attr:`RunRequest.target_options`; the target checks them).
        logical_machine: whether it runs on the kernel's logical machine. There the
            machine's physics (its noise model and calibration) apply. A job too big for
            one module is spanned over several (its cross-module gates teleported). The
            fault policies may rewrite its program (raise a profile, add idle cycles or
            fences: :mod:`qmk.kernel.admit.faults`). A target with physics of its own
            takes only what its job's policy says.
        parts: whether a big run may split its shots over workers
            (:mod:`qmk.execution.parts`).
        streams: whether its worker sends records while it runs (a device job's
            measurement stream, :mod:`qmk.kernel.storage.artifacts`).
        pauses: where a run may stop to yield its worker, its state saved: at the
            program's fences (``fences``: a program without one never stops), between
            its chunks of shots (``chunks``: any run), or nowhere (``never``).
        qvm_noise: whether :func:`qmk.run` runs a QVM program here with noise on when
            ``noise`` is not given; off where the target has no noise to give one (stim:
            the logical machine's noise is the logical target's).
    """

    name: str
    summary: str
    module: str
    cls: str
    program: ProgramKind = "qvm"
    options: tuple[str, ...] = ()
    logical_machine: bool = False
    parts: bool = False
    streams: bool = False
    pauses: Literal["fences", "chunks", "never"] = "fences"
    qvm_noise: bool = defaults.NOISE


#: The targets, the default first (the one table: docs/layout.md, the kernel's
#: ``q_submit`` and ``qmk run`` read it).
TARGETS: Mapping[str, TargetSpec] = {
    s.name: s
    for s in (
        TargetSpec(
            name=DEFAULT_TARGET,
            summary="the gate-level logical machine: trajectories and the batch sampler, "
            "logical errors from the code profiles",
            module="qmk.execution.logical",
            cls="LogicalTarget",
            logical_machine=True,
            parts=True,
        ),
        TargetSpec(
            name="lattice-surgery",
            summary="Pauli product measurements and pi/8 rotations on a patch layout, "
            "scheduled with its T factories, shots batched",
            module="qmk.execution.surgery",
            cls="SurgeryTarget",
            options=("block",),
            pauses="never",
        ),
        TargetSpec(
            name="neutral-atom",
            summary="the neutral-atom device: its wire-form job (or a QVM program compiled "
            "onto a preset) checked, scheduled and run on its emulator",
            module="qmk.devices.neutral_atom.target",
            cls="NeutralAtomTarget",
            program="device-job",
            pauses="chunks",
            options=("preset", "backend", "strict_timing", "stream", "routing", "configuration"),
            streams=True,
        ),
        TargetSpec(
            name="stim",
            summary="a stim circuit on stim's own compiled samplers: its measurement record, "
            "or its detectors and observables, decoded by matching or BP+OSD when asked",
            module="qmk.execution.stim_target",
            cls="StimTarget",
            program="stim-circuit",
            options=("detectors", "decode", "decoder"),
            pauses="never",
            qvm_noise=False,
        ),
    )
}


def spec(name: str) -> TargetSpec:
    """The :class:`TargetSpec` of ``name``.

    Raises:
        TargetError: ``QM101`` no such target (the closest name suggested).
    """
    found = TARGETS.get(name) if isinstance(name, str) else None
    if found is None:
        near = closest(str(name), TARGETS)
        hint = f"did you mean {near!r}? " if near else ""
        raise TargetError.of(
            "target-unknown",
            f"no target named {name!r}; {hint}known: {', '.join(TARGETS)}",
            target=str(name)[:64],
        )
    return found


@functools.cache
def get(name: str) -> Target:
    """The target ``name`` (its module loaded on first use; one instance per process).

    Raises:
        TargetError: ``QM101`` no such target.
    """
    entry = spec(name)
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    target: Target = cls()
    return target


__all__ = ["TARGETS", "ProgramKind", "TargetError", "TargetSpec", "get", "spec"]
