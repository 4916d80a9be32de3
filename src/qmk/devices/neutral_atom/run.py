"""A QVM program compiled onto a neutral-atom device and run on its emulator.

:func:`run_program` compiles (:func:`~qmk.devices.neutral_atom.compiler.compile_program`)
and runs the job (:func:`~qmk.devices.neutral_atom.emulator.run_job`); its
:class:`DeviceRun` has ``counts`` keyed as :func:`qmk.run` keys them
(:func:`program_counts`: events in the program's order, or its ``metadata.output``
layout; a lost atom reads ``L``). Shots default to :data:`qmk.defaults.SHOTS`, as every
other runner's do.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from qmk import defaults
from qmk.devices.neutral_atom.compiler import CompileReport, compile_program, profile_of
from qmk.devices.neutral_atom.emulator import run_job
from qmk.devices.neutral_atom.job import AUTO, parse_job
from qmk.devices.neutral_atom.noise import NoiseModel
from qmk.devices.neutral_atom.profiles import Profile
from qmk.qvm.graph import Graph
from qmk.qvm.output import layout_of
from qmk.qvm.verify import VerifiedProgram


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRun:
    """A program compiled and run on the device.

    Attributes:
        counts: outcome -> shots, keyed as :func:`qmk.run` keys them (events in program
            order, first leftmost, or the program's output layout); ``L`` for a bit whose
            atom was lost.
        result: the emulator's :class:`~qmk.devices.neutral_atom.emulator.Result`.
        report: the :class:`CompileReport`.
        job: the wire-form job that ran.
    """

    counts: Mapping[str, int]
    result: Any
    report: CompileReport
    job: Mapping[str, Any]

    @property
    def shots(self) -> int:
        return int(self.result.shots)

    @property
    def seed(self) -> int:
        return int(self.result.seed)

    def to_json(self) -> dict[str, Any]:
        """``counts``, ``shots``, ``seed``, ``events``, the device run (backend, telemetry)
        and the compile report."""
        device = self.result.to_json(measurements=False)
        return {
            "counts": dict(self.counts),
            "shots": self.shots,
            "seed": self.seed,
            "events": list(self.report.events),
            "device": {
                "profile": device["profile"],
                "backend": device["device_id"],
                "isa_version": device["isa_version"],
                "counts": device["counts"],
                "telemetry": device["telemetry"],
            },
            "compile": self.report.to_json(),
        }


def program_counts(bits: np.ndarray, report: CompileReport) -> dict[str, int]:
    """The device's bits (shots x columns, -1 lost) as counts keyed in program terms."""
    table = np.frombuffer(b"01L", dtype=np.uint8)
    shots = bits.shape[0]
    columns = [report.readout.get(e) for e in report.events]
    chars = np.full((shots, len(columns)), ord("0"), dtype=np.uint8)
    for k, column in enumerate(columns):
        if column is not None:
            chars[:, k] = table[np.where(bits[:, column] < 0, 2, bits[:, column]).astype(np.intp)]
    layout = layout_of({"output": report.output} if report.output else None, report.events)
    if not columns:
        # No event at all: every shot reads the same (possibly empty) key; the layout still
        # decides it (a 4-bit creg never measured is '0000', as qmk.run and Aer key it).
        return {"" if layout is None else layout.key(""): shots}
    rows = np.ascontiguousarray(chars).view(f"S{len(columns)}").ravel()
    keys, counts = np.unique(rows, return_counts=True)
    out = {k.decode(): int(c) for k, c in zip(keys, counts, strict=True)}
    if layout is None:
        return out
    laid: Counter[str] = Counter()
    for key, count in out.items():
        laid[layout.key(key)] += count
    return dict(sorted(laid.items()))


def run_program(
    program: Graph | VerifiedProgram,
    device: str | os.PathLike[str] | Profile,
    *,
    shots: int = defaults.SHOTS,
    seed: int | None = None,
    routing: str = "auto",
    configuration: str | None = None,
    backend: str = AUTO,
    noiseless: bool = False,
) -> DeviceRun:
    """Compile ``program`` onto ``device`` and run it on the emulator.

    Raises:
        DeviceError: as :func:`compile_program` and
            :func:`~qmk.devices.neutral_atom.emulator.run_job`.
    """
    chosen = profile_of(device)
    job, report = compile_program(
        program,
        chosen,
        routing=routing,
        configuration=configuration,
        shots=shots,
        seed=seed,
        backend=backend,
        noiseless=noiseless,
    )
    profile = replace(chosen, noise=NoiseModel()) if noiseless else chosen
    result = run_job(parse_job(job, preset=profile))
    return DeviceRun(
        counts=program_counts(result.bits, report), result=result, report=report, job=job
    )


__all__ = ["DeviceRun", "program_counts", "run_program"]
