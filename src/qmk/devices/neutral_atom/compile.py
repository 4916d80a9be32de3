"""The compiler: a verified QVM program lowered onto a neutral-atom device profile.

This module names the compiler and its runner together; the work is done in
:mod:`.lowering` (step 1 below), :mod:`.routing` (steps 2-4), :mod:`.compiler` (step 5
and the report) and :mod:`.run` (running the compiled job on the emulator).

Public API:

- :func:`compile_program` -- ``(program, profile) -> (wire job, CompileReport)``: the job
  is the device's wire form (``qmk device run`` reads it, the kernel serves it), the
  report says what the compiler did;
- :func:`run_program` -- compile, then run on the emulator
  (:func:`~qmk.devices.neutral_atom.emulator.run_job`), :data:`qmk.defaults.SHOTS` shots
  unless told; its :class:`DeviceRun` has ``counts`` keyed as :func:`qmk.run` keys them
  (events in the program's order, or its ``metadata.output`` layout; a lost atom reads
  ``L``);
- :data:`ROUTINGS`, :class:`CompileReport`, :class:`DeviceRun`.

What it does, in order:

1. **Lowering** (node by node, list order, each op as the op table and the engines' gate
   table say): every gate becomes one-qubit unitaries and CZ (``CNOT`` is ``H CZ H`` on
   the target, Toffoli and CCZ the six-CNOT circuit with T gates); ``SWAP`` costs
   nothing: the compiler relabels which atom holds which qubit. A composite op is its
   expansion in the op table (``TELEPORT_CNOT`` the CNOT it acts as, ``INJECT_T_STATE``
   a Reset then H and T). ``MEASURE_X/Y/ANGLE/BELL`` measure in Z after a basis change,
   undone when the qubit is used again; ``RESET`` uses the device's Reset. ``FREE_LQ``,
   ``FENCE_EPOCH``, ``BAR_REGION`` and ``SET_POLICY`` change no atom. Guards,
   ``COND_PAULI`` and channels need classical feed-forward or links the ISA does not
   have: ``QD301`` naming the node.
2. **Placement** of the program's qubits on the configuration's atoms: the coupling graph
   is the pairs the device's own ``connectivity`` and ``blockade`` validators accept for
   a CZ; a greedy embedding from several start atoms keeps the fewest interacting pairs
   apart (then the fewest atoms allocated). ``QD302`` when there are too few atoms.
3. **Routing** of each CZ whose atoms are not coupled: a ``MoveAtom`` of one of them to a
   free lattice site next to the other, checked by the device's ``transport`` validator
   (transport edges, move budgets, spacing). Else SWAPs (three CNOTs, as CZ and H) along
   the shortest coupled path. ``routing="move"`` or ``"swap"`` allows only one kind;
   ``QD303`` when neither gets there.
4. **Native gates**: runs of one-qubit gates on an atom fuse into one unitary. It is
   emitted as the shortest word of catalog Cliffords when it is one, T/TDG, a Z rotation,
   or ``U3`` (else ``RZ RY RZ`` or ``RZ RX RZ``), angles wrapped or split into the
   catalog's range. A run before a Z measurement drops its diagonal part, and a run after
   a qubit's last measurement is dropped (neither changes an outcome).
5. **Validation**: the job goes through the device's validator registry and scheduler
   (:func:`~qmk.devices.neutral_atom.validate.validate_job`), so the compiled program
   passes exactly the checks any job passes; the timeline gives its duration.

>>> from qmk.qvm.asm import assemble
>>> ghz = assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0, vq:q1, vq:q2
... h: APPLY_H vq:q0
... c1: APPLY_CNOT vq:q0, vq:q2
... c2: APPLY_CNOT vq:q2, vq:q1
... m0: MEASURE_Z vq:q0, out:m0
... m1: MEASURE_Z vq:q1, out:m1
... m2: MEASURE_Z vq:q2, out:m2
... ''')
>>> job, report = compile_program(ghz, "ideal_small_array")
>>> sorted(report.placement.items()), report.gates_after["CZ"], report.swaps, report.moves
([('q0', 0), ('q1', 2), ('q2', 1)], 2, 0, 0)
>>> sorted(run_program(ghz, "ideal_small_array", shots=200, seed=3).counts)
['000', '111']
"""

from __future__ import annotations

from qmk.devices.neutral_atom.compiler import ROUTINGS, CompileReport, compile_program
from qmk.devices.neutral_atom.run import DeviceRun, program_counts, run_program

__all__ = [
    "ROUTINGS",
    "CompileReport",
    "DeviceRun",
    "compile_program",
    "program_counts",
    "run_program",
]
