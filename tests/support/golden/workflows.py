"""Examples of a workflow file as written and as read, its steps, and a trigger.

Each is a realistic value, most fields away from their defaults; its JSON is its
struct's golden file (:mod:`support.golden`)."""

from __future__ import annotations

from pathlib import Path

from qmk.workflows.spec import Step, StepOptions, StepTable, Workflow, WorkflowFile
from qmk.workflows.triggers import TriggerSpec

WORKFLOW_FILE = WorkflowFile(
    name="bell-and-rotations",
    defaults=StepOptions(shots=1000, seed=7),
    steps=[
        StepTable(retries=1, program="bell.qasm", name="bell"),
        StepTable(
            source=(
                'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput floa'
                "t theta;\nqubit q;\nbit c;\nry(theta) q;\nc = measur"
                "e q;\n"
            ),
            after=["bell"],
            sweep={"theta": [0.0, 0.7854, 1.5708, 2.3562, 3.1416]},
            name="rotation",
        ),
        StepTable(
            shots=500,
            program="bell.qasm",
            after=["bell"],
            sweep={"distance": [3, 5, 7]},
            name="distances",
        ),
    ],
)

STEP_OPTIONS = StepOptions(shots=1000, seed=7)

STEP_TABLE = StepTable(
    source=(
        'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput floa'
        "t theta;\nqubit q;\nbit c;\nry(theta) q;\nc = measur"
        "e q;\n"
    ),
    after=["bell"],
    sweep={"theta": [0.0, 0.7854, 1.5708, 2.3562, 3.1416]},
    name="rotation",
)

WORKFLOW = Workflow(
    name="bell-and-rotations",
    steps=(
        Step(
            shots=1000,
            seed=7,
            retries=1,
            name="bell",
            source=(
                'OPENQASM 2.0;\ninclude "qelib1.inc";\n// A Bell pa'
                'ir: counts are "00" and "11", each about half th'
                "e shots.\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], "
                "q[1];\nmeasure q -> c;\n"
            ),
            origin="examples/bell.qasm",
        ),
        Step(
            shots=1000,
            seed=7,
            name="rotation",
            source=(
                'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput floa'
                "t theta;\nqubit q;\nbit c;\nry(theta) q;\nc = measur"
                "e q;\n"
            ),
            origin="<rotation>",
            after=("bell",),
            sweep={"theta": (0.0, 0.7854, 1.5708, 2.3562, 3.1416)},
        ),
        Step(
            shots=500,
            seed=7,
            name="distances",
            source=(
                'OPENQASM 2.0;\ninclude "qelib1.inc";\n// A Bell pa'
                'ir: counts are "00" and "11", each about half th'
                "e shots.\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], "
                "q[1];\nmeasure q -> c;\n"
            ),
            origin="examples/bell.qasm",
            after=("bell",),
            sweep={"distance": (3, 5, 7)},
        ),
    ),
    path=Path("examples/workflow.toml"),
)

STEP = Step(
    shots=1000,
    seed=7,
    name="rotation",
    source=(
        'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput floa'
        "t theta;\nqubit q;\nbit c;\nry(theta) q;\nc = measur"
        "e q;\n"
    ),
    origin="<rotation>",
    after=("bell",),
    sweep={"theta": (0.0, 0.7854, 1.5708, 2.3562, 3.1416)},
)

TRIGGER_SPEC = TriggerSpec(name="nightly", on="schedule", cron="30 2 * * *")


#: Every example of this room.
EXAMPLES = (
    WORKFLOW_FILE,
    STEP_OPTIONS,
    STEP_TABLE,
    WORKFLOW,
    STEP,
    TRIGGER_SPEC,
)
