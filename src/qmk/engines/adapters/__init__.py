"""Adapters to the field's simulators, one module each, each an optional extra.

Every adapter is an entry of :data:`qmk.engines.registry.SPECS` and meets the
:class:`~qmk.engines.Engine` protocol. Importing a module here imports no simulator:
the package is imported when an engine is made, and an engine whose package is missing
raises ``QE108 engine-unavailable`` (``qmk engines`` lists which are installed).

- :mod:`~qmk.engines.adapters.qsim` -- qsim (``qsimcirq``) on the CPU, and its CUDA
  backend where a GPU is present (``qsim``, ``qsim-gpu``)
- :mod:`~qmk.engines.adapters.aer` -- Qiskit Aer's statevector, density_matrix and
  matrix_product_state methods (``aer-statevector``, ``aer-density-matrix``, ``aer-mps``)
- :mod:`~qmk.engines.adapters.cirq` -- ``cirq.Simulator`` (``cirq``)
- :mod:`~qmk.engines.adapters.qutip` -- QuTiP density matrices and Lindblad evolution
  (``qutip``; :func:`~qmk.engines.adapters.qutip.evolve_open`)
- :mod:`~qmk.engines.adapters.lightning` -- PennyLane ``lightning.qubit`` (``lightning``)
- :mod:`~qmk.engines.adapters.braket` -- the Braket local simulator (``braket``)
- :mod:`~qmk.engines.adapters.custatevec` -- NVIDIA cuStateVec (``custatevec``, GPU only)

They are *segment* engines (:mod:`~qmk.engines.adapters._segments`; ``aer-mps`` in its
own way): QMK holds the state between calls and the simulator evolves each unitary
segment from it, so they pass the whole conformance suite, mid-circuit measurement
included. See ``docs/engines.md``.
"""
