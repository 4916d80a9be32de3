"""Helpers the tests share, imported as ``support`` from any test (pytest puts ``tests/``
on the path: ``pythonpath`` in pyproject.toml), whatever the working directory.

- :mod:`support.paths`: the repository's folders, resolved from this file.
- :mod:`support.cli`: the ``qmk`` command run in-process.
- :mod:`support.frontends`: comparisons with Qiskit Aer and the shared test circuits.
- :mod:`support.qasm_spec`: OpenQASM 3's rules for bits, integers and angles, written
  from the specification (the reference of the classical core's tests).
- :mod:`support.kernel`: in-process kernels, real ``qmk serve`` processes, and the worker
  gate that holds jobs until a test lets them run.
- :mod:`support.pools`: the tests' worker pool (``GatedPool``: the gate, the pause gate,
  the stall and the probe, around the workers' tasks through the pool's public
  ``WorkerHooks`` seam; production code has no test hooks), and :mod:`support.serve`,
  ``python -m support.serve``: the real ``qmk serve`` on that pool.
- :mod:`support.isolation`: the escape attempts a probe runs inside a confined worker.
- :mod:`support.fuzz`: the fuzz targets (every reader of untrusted input), their
  hypothesis settings and strategies (tests/fuzz, ``make fuzz``).
- :mod:`support.golden`: an example of every msgspec struct of ``src/qmk`` (one module
  per room), where each one's golden JSON file is, and the update mode that writes them
  (``QMK_GOLDEN=update``; ``tests/test_golden.py``).
"""
