"""Hardware-style devices behind one device interface (HAL, :mod:`qmk.devices.hal`).

- :mod:`qmk.devices.hal` -- the :class:`~qmk.devices.hal.Device` protocol and its values
  (inventory, capabilities, health), all plain JSON through ``to_json()``;
- :mod:`qmk.devices.logical` -- the simulated logical machine the kernel runs, with its
  fault schedule (calibration drift, link fidelity, module failures, decoder capacity);
- :mod:`qmk.devices.purification` -- BBPSSW purification of a link's Werner pairs.

See docs/devices.md.
"""
