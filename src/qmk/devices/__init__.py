"""Hardware-style devices behind one device interface (HAL, :mod:`qmk.devices.hal`).

- :mod:`qmk.devices.hal` -- the :class:`~qmk.devices.hal.Device` protocol and its values
  (inventory, capabilities, health), all plain JSON through ``to_json()``;
- :mod:`qmk.devices.logical` -- the simulated logical machine the kernel runs
  (:mod:`qmk.kernel.device`, plain data there) as a HAL device: its inventory,
  capabilities, health, status, models and calibration ingest;
- :mod:`qmk.devices.purification` -- BBPSSW purification of a link's Werner pairs;
- :mod:`qmk.devices.neutral_atom` -- the neutral-atom hardware VM (versioned ISA, profiles
  and presets, validators, scheduler, physical noise, emulator on the engines) and its HAL
  device; ``qmk.devices.neutral_atom.run_job(job, shots=, seed=, device=)``,
  ``load_profile``, ``presets()`` (docs/neutral-atom.md);
- :mod:`qmk.devices.errors` -- the ``QD`` error family of device jobs and constraints.

See docs/devices.md.
"""

from importlib import import_module
from typing import Any


def __getattr__(name: str) -> Any:
    # The neutral-atom VM loads on first use, so importing the HAL stays cheap.
    if name == "neutral_atom":
        return import_module("qmk.devices.neutral_atom")
    raise AttributeError(f"module 'qmk.devices' has no attribute {name!r}")
