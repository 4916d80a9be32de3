"""Fault-tolerant execution: programs laid out as code patches and run by lattice surgery.

- :mod:`qmk.ft.model`: the machine's numbers (distance, cycle time, logical error rate,
  T factory), read from the estimator so a schedule and an estimate agree on them.
- :mod:`qmk.ft.layout`: the layout compiler (Litinski's compact, intermediate and fast
  blocks, factories beside them), drawn as text or PNG (``qmk plan FILE --layout``).
- :mod:`qmk.ft.lower`: Clifford+T programs as pi/8 rotations and Pauli product
  measurements, Cliffords commuted to the end.
- :mod:`qmk.ft.schedule`: the PPMs on the layout in ticks of ``d`` code cycles, with
  routing stalls and factory waits.
- :mod:`qmk.ft.execute`: the schedule executed on an engine, magic states injected, logical
  errors per patch and cycle (``qmk run FILE --lattice-surgery``).

See ``docs/ft-execution.md``.
"""
