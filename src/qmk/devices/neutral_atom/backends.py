"""The neutral-atom device's backends: one table, each entry an engine of the engines'
registry and what the device can do on it.

Public API: :data:`BACKENDS` (name -> :class:`Backend`), :func:`backend` (one, or
``QD103``), :func:`capabilities` (a backend's capability metadata here: the table's facts
and its engine's live ones: installed, why not, atom limit, GPU) and
:func:`capability_table` (every backend's, for ``qmk device show`` and the kernel).

A job names its backend as ``device_id`` (or ``--backend``, or the kernel policy's
``backend``); ``auto`` picks the stabilizer for a Clifford program with Pauli noise and
the state vector otherwise. Every backend runs the same lowered circuit with the same
shot machinery (:mod:`.shots`). Loss and readout are drawn classically, so all of them
model atom loss. The stabilizer draws Pauli noise inside its batch sampler. The others
draw Pauli errors per shot and simulate each pattern once on their engine (amplitude
damping as the measured ancilla of its dilation, so they need mid-circuit measurement).

- ``state-vector``: QMK's numpy statevector (28 atoms); analog (ISA 1.2 ``Evolve``) jobs
  are integrated exactly on it (the result names ``analog-exact``).
- ``stabilizer``: stim's tableau and batch sampler: Clifford gates and Pauli noise, 10^5
  atoms.
- ``mps``: QMK's matrix product state: every gate, wide registers (1000 atoms) at low
  entanglement, exact or refused with ``QE114`` (never silently truncated).
- ``gpu-state-vector``: NVIDIA cuStateVec on a CUDA GPU (the ``gpu`` extra); refused here
  with ``QD113`` where no GPU or package is present.

>>> sorted(BACKENDS)
['gpu-state-vector', 'mps', 'stabilizer', 'state-vector']
>>> capabilities("mps")["max_atoms"], capabilities("mps")["gates"]
(1000, 'every ISA gate')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qmk import defaults
from qmk.devices.errors import DeviceError


@dataclass(frozen=True, slots=True, kw_only=True)
class Backend:
    """One backend: its ``device_id``, the engine it runs on and what the device does there.

    Attributes:
        name: the ``device_id`` a job names.
        engine: the engines' registry name (``qmk engines``).
        summary: one line for ``qmk device show``.
        clifford_only: only Clifford gates (and Pauli noise).
        damping: amplitude damping (the dilation's mid-circuit measurement).
        analog: analog (``Evolve``) jobs run on it.
        wide: what it is for, in a few words.
    """

    name: str
    engine: str
    summary: str
    clifford_only: bool
    damping: bool
    analog: bool
    wide: str


_TABLE: tuple[Backend, ...] = (
    Backend(
        name="state-vector",
        engine=defaults.STATEVECTOR,
        summary="QMK's numpy statevector; analog Evolve jobs integrated exactly (analog-exact)",
        clifford_only=False,
        damping=True,
        analog=True,
        wide="any program on few atoms",
    ),
    Backend(
        name="stabilizer",
        engine=defaults.STABILIZER,
        summary="stim's tableau simulator and batch sampler",
        clifford_only=True,
        damping=False,
        analog=False,
        wide="Clifford programs with Pauli noise on thousands of atoms",
    ),
    Backend(
        name="mps",
        engine=defaults.MPS,
        summary="QMK's matrix product state: exact, or refused with QE114 past its bond limit",
        clifford_only=False,
        damping=True,
        analog=False,
        wide="wide registers at low entanglement",
    ),
    Backend(
        name="gpu-state-vector",
        engine=defaults.CUSTATEVEC,
        summary="NVIDIA cuStateVec on a CUDA GPU (the gpu extra)",
        clifford_only=False,
        damping=True,
        analog=False,
        wide="any program on more atoms than the CPU statevector holds, where a GPU is",
    ),
)

#: Every backend by its ``device_id``, in the order ``qmk device show`` lists them.
BACKENDS: dict[str, Backend] = {b.name: b for b in _TABLE}


def backend(name: str) -> Backend:
    """The backend ``name``.

    Raises:
        DeviceError: ``QD103`` for a name that is not a backend (nor ``auto``).
    """
    try:
        return BACKENDS[name]
    except KeyError:
        raise DeviceError.of(
            "device-id-unknown",
            f"no device_id {name!r}; device ids: {', '.join([*BACKENDS, 'auto'])}",
            device_id=name,
            device_ids=[*BACKENDS, "auto"],
        ) from None


def capabilities(name: str) -> dict[str, Any]:
    """What backend ``name`` can do here, as JSON: the table's facts and its engine's.

    ``available`` and ``reason`` are the engine's (package installed, GPU present);
    ``max_atoms`` its qubit limit here (0 where it is not available).
    """
    from qmk.engines.registry import capabilities as engine_capabilities

    entry = backend(name)
    engine = engine_capabilities(entry.engine)
    noise = ["pauli", "atom loss", "readout"]
    if entry.damping:
        noise.insert(1, "amplitude damping")
    if entry.analog:
        noise.append("lindblad (analog: decay, dephasing)")
    return {
        "name": entry.name,
        "engine": entry.engine,
        "summary": entry.summary,
        "for": entry.wide,
        "available": engine.available,
        "reason": engine.reason,
        "extra": engine.extra,
        "max_atoms": engine.max_qubits,
        "gates": "Clifford gates" if entry.clifford_only else "every ISA gate",
        "noise": noise,
        "analog": entry.analog,
        "mid_circuit": engine.mid_circuit,
        "gpu": engine.gpu,
        "batch_sampling": engine.batch,
        "precision": list(engine.precisions),
    }


def capability_table() -> list[dict[str, Any]]:
    """:func:`capabilities` of every backend, in table order."""
    return [capabilities(name) for name in BACKENDS]


def require(name: str, atoms: int) -> Backend:
    """The backend ``name``, checked to run ``atoms`` atoms here.

    Raises:
        DeviceError: ``QD103`` unknown; ``QD113`` its engine is not available here;
            ``QD107`` more atoms than it holds.
    """
    entry = backend(name)
    caps = capabilities(name)
    if not caps["available"]:
        raise DeviceError.of(
            "backend-unavailable",
            f"the {name} backend is not available here: {caps['reason']}"
            + (f" (the {caps['extra']} extra)" if caps["extra"] else ""),
            device_id=name,
        )
    if atoms > caps["max_atoms"]:
        raise DeviceError.of(
            "backend-unsupported",
            f"the {name} backend holds at most {caps['max_atoms']} atoms here; the job has "
            f"{atoms}: use device_id "
            + ("mps or stabilizer" if name != "mps" else "stabilizer (Clifford programs)"),
            device_id=name,
            atoms=atoms,
            limit=caps["max_atoms"],
        )
    return entry


__all__ = ["BACKENDS", "Backend", "backend", "capabilities", "capability_table", "require"]
