"""Examples of the run request and its parts (:mod:`qmk.execution.request`), a footprint
the lattice-surgery target reported, and that target's options.

Each is a realistic value, most fields away from their defaults; its JSON is its
struct's golden file (:mod:`support.golden`)."""

from __future__ import annotations

from qmk.execution.footprint import Footprint, Step
from qmk.execution.locations import Noise
from qmk.execution.plan import Call
from qmk.execution.request import MachineRun, Policy, Rewrite, RunRequest, Schedule
from qmk.execution.stim_target import StimOptions
from qmk.execution.surgery import SurgeryOptions
from qmk.execution.trajectories import MicroOp
from qmk.qec.logical import Calibration
from qmk.qvm.expansions import Micro
from qmk.qvm.graph import Guard, GuardTerm

FOOTPRINT = Footprint(
    target="lattice-surgery",
    logical_qubits=2,
    block="compact",
    data_tiles=2,
    routing_tiles=4,
    code_distance=9,
    steps=(
        Step(kind="rotation", cycles=9, t_states=1, routed=True, measurements=2, node="magic"),
        Step(kind="ppm", cycles=9, routed=True, measurements=1, node="meas_anc"),
        Step(kind="ppm", cycles=1, routed=True, measurements=1, node="meas_data"),
    ),
    physical_qubits=2972,
    duration_ns=68400.0,
)

STEP = Step(kind="rotation", cycles=9, t_states=1, routed=True, measurements=2, node="magic")

SURGERY_OPTIONS = SurgeryOptions(block="compact")
STIM_OPTIONS = StimOptions(detectors=True, decode=True, decoder="bposd")

#: A MEASURE_ANGLE's expansion: rz(-0.5) then h, the measurement, then undone.
CALL = Call(kind=Micro.GATE, qubits=("q",), gate="rz", params=(0.5,), undo=True)

#: A logical error of an op after step 4 on qubit q1 (d=9 surface code, one cycle).
NOISE = Noise(step=4, before=False, qubit="q1", px=1e-07, py=1e-07, pz=1e-07, cause="op")

#: A feed-forward X on bob, when alice's measurement (column 0) read 1.
MICRO_OP = MicroOp(
    kind="cond",
    qubits=("bob",),
    guard=Guard(terms=(GuardTerm(event="m_alice", equals=1),)),
    gate="x",
    inputs=(0,),
)

MACHINE_RUN = MachineRun(
    arrival_cycle=0,
    start_cycle=100,
    end_cycle=180,
    tiles=9,
    module=0,
    wait_cycles={"queue": 100, "factory": 30},
    idle_logical_error=1e-05,
    code_distance=11,
    block="compact",
    own_logical_error=2e-04,
    idle={"t": 30.0},
)

POLICY = Policy(
    priority=7,
    timeout_ms=1500,
    engine="statevector",
    profile="logical:surface_code(d=5)",
    precision="single",
    channels={"link": "ch_1"},
    noise_model="depolarizing(p=0.001)",
    cache=False,
)

REWRITE = Rewrite(
    profiles={"logical:surface_code(d=5)": "logical:surface_code(d=7)"},
    channels={"o": 0.97},
    idle={"m": 2},
    fences=("a",),
)

RUN_REQUEST = RunRequest(
    program_digest="44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    shots=300,
    seed=1099511627776,
    engine="statevector",
    precision="double",
    profile="logical:surface_code(d=5)",
    noise_model="depolarizing(p=0.001)",
    calibration=Calibration(  # a request carries a calibration as its JSON
        family="surface_code", crossing_prefactor=0.07, error_correction_threshold=0.011
    ).to_json(),
    rewrite=Rewrite(idle={"m": 1}),
    machine=MachineRun(
        arrival_cycle=0,
        start_cycle=100,
        end_cycle=180,
        tiles=9,
        module=0,
        wait_cycles={"queue": 100, "factory": 30},
        idle_logical_error=1e-05,
        idle={"t": 30.0},
    ),
    checkpoint_every_ops=40,
    part=(1, 3),
    policy=Policy(priority=7, timeout_ms=1500),
    trace_context="00-abababababababababababababababab-cdcdcdcdcdcdcdcd-01",
)

SCHEDULE = Schedule(priority=7, deadline=1700000000.5, timeout_ms=1500)


#: Every example of this room.
EXAMPLES = (
    FOOTPRINT,
    STEP,
    CALL,
    NOISE,
    MICRO_OP,
    SURGERY_OPTIONS,
    STIM_OPTIONS,
    MACHINE_RUN,
    POLICY,
    REWRITE,
    RUN_REQUEST,
    SCHEDULE,
)
