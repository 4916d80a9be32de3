"""The shared fault-tolerant machine in machine time (docs/machine.md).

A floorplan of tiles per module with factories, links and a decoder all tenants share
(:mod:`~qmk.kernel.machine.spec`), a scheduler that places and advances jobs by their
footprints epoch by epoch (:mod:`~qmk.kernel.machine.core`) under pluggable policies
(:mod:`~qmk.kernel.machine.policies`), footprints of programs
(:mod:`~qmk.kernel.machine.footprints`), workload files and schedule-only runs with their
metrics (:mod:`~qmk.kernel.machine.workload`, :mod:`~qmk.kernel.machine.simulate`,
:mod:`~qmk.kernel.machine.metrics`). Nothing here imports the service, the store or the
wires: ``qmk machine simulate`` needs no server.
"""
