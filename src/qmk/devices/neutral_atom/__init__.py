"""The neutral-atom hardware VM: a versioned ISA, device profiles, validators, a scheduler,
physical noise and an emulator on QMK's engines, behind the device interface (HAL).

Public API (the modules a user or a compiler reads; see each module's docstring):

- :mod:`.isa` -- the one op and gate table, ISA versions 1.0 and 1.1, program parsing;
- :mod:`.schema` -- the job's JSON Schema, generated from the table (``schema.json``);
- :mod:`.profiles` -- hardware (lattice vs configuration, zones, catalog, blockade, timing,
  transport) and profiles; :func:`presets`, :func:`load_profile`;
- :mod:`.noise` -- the wire form's noise model and the one noise IR of both backends;
- :mod:`.job` -- a wire-form job as a value (:func:`parse_job`);
- :mod:`.geometry` -- where the atoms are at each instruction, where a move takes one;
- :mod:`.schedule` -- program -> timeline (ns), ASAP within the parallelism caps;
- :mod:`.validate` -- the validator registry, run before any execution on every backend
  (:func:`validate_job`: validated and scheduled);
- :mod:`.emulator` -- a job run on the statevector or stabilizer engine, seeded shots:
  :func:`run_job`; the job as one circuit (:mod:`.circuit`) and its shots drawn on the
  engines' shot machinery (:mod:`.shots`);
- :mod:`.device` -- :class:`NeutralAtomDevice`, the HAL :class:`~qmk.devices.hal.Device`;
- :mod:`.compile` -- QVM programs onto a profile: :func:`compile_program` (wire job and
  report), :func:`run_program` (compiled and run, counts keyed as ``qmk.run`` keys them);
  the compiler's steps are :mod:`.lowering`, :mod:`.routing` and :mod:`.compiler`, the
  runner :mod:`.run`.

Names are imported lazily so that ``import qmk.devices.neutral_atom`` stays cheap.

>>> from qmk.devices import neutral_atom as na
>>> "benchmark_chain" in na.presets()
True
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "presets": "profiles",
    "load_profile": "profiles",
    "Profile": "profiles",
    "Hardware": "profiles",
    "NoiseModel": "noise",
    "Job": "job",
    "parse_job": "job",
    "run_job": "emulator",
    "Result": "emulator",
    "validate_job": "validate",
    "NeutralAtomDevice": "device",
    "compile_program": "compile",
    "run_program": "compile",
    "CompileReport": "compile",
    "DeviceRun": "compile",
    "VERSIONS": "isa",
    "OPS": "isa",
    "GATES": "isa",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
