"""Examples of the neutral-atom device's structs: a job on the wire, a profile file (a shipped
preset's, and a grid given site by site) and its parts, the target's options and streams.

Each is a realistic value, most fields away from their defaults; its JSON is its
struct's golden file (:mod:`support.golden`)."""

from __future__ import annotations

from qmk.devices.neutral_atom.job import JobWire
from qmk.devices.neutral_atom.profiles import (
    BlockadeWire,
    ConfigurationWire,
    Connectivity,
    DriveLimits,
    HardwareWire,
    InteractionGraphWire,
    Lattice,
    LatticeZone,
    MoveLimits,
    NativeGateWire,
    ProfileFile,
    PulseLimits,
    RegionWire,
    SitePair,
    SiteWire,
    TimingLimits,
    Transport,
    TransportEdge,
    ZoneRadius,
)
from qmk.devices.neutral_atom.streams import StreamSpec
from qmk.devices.neutral_atom.target import NeutralAtomOptions

BLOCKADE_WIRE = BlockadeWire(radius=1.5)

DRIVE_LIMITS = DriveLimits(
    omega_max=15.8,
    delta_min=-125.0,
    delta_max=125.0,
    omega_slew_max=250.0,
    delta_slew_max=2500.0,
    local_delta_max=125.0,
    duration_max_ns=4000.0,
)

TIMING_LIMITS = TimingLimits(measurement_cooldown_ns=50000.0, measurement_duration_ns=50000.0)

NATIVE_GATE_WIRE = NativeGateWire(
    name="CZ", arity=2, duration_ns=1000.0, connectivity=Connectivity.NEAREST_NEIGHBOR_CHAIN
)

LATTICE = Lattice(n=6, spacing=1.5)

REGION_WIRE = RegionWire(name="parking", role="PARKING", site_ids=[4, 5])

CONFIGURATION_WIRE = ConfigurationWire(
    name="data_plus_parking",
    site_ids=[0, 1, 2, 3],
    regions=[
        RegionWire(name="data", site_ids=[0, 1, 2, 3]),
        RegionWire(name="parking", role="PARKING", site_ids=[4, 5]),
    ],
    description="Four data atoms; the tail sites are parking.",
)

ZONE_RADIUS = ZoneRadius(zone_id=1, radius=1.2)

LATTICE_ZONE = LatticeZone(site_ids=[0, 1, 2, 3, 4, 5, 6, 7])

TRANSPORT = Transport(duration_per_unit_ns=200.0)

MOVE_LIMITS = MoveLimits(max_total_displacement_per_atom=8.0, max_moves_per_atom=8, min_spacing=0.5)

PULSE_LIMITS = PulseLimits(
    detuning_min=-10.0,
    detuning_max=10.0,
    duration_min_ns=10.0,
    duration_max_ns=10000.0,
    max_overlapping_pulses=2,
)

SITE_WIRE = SiteWire(id=3, x=4.0, y=4.0, zone_id=1)

SITE_PAIR = SitePair(site_b=1)

INTERACTION_GRAPH_WIRE = InteractionGraphWire(
    gate_name="CZ",
    allowed_pairs=[
        SitePair(site_b=1),
        SitePair(site_b=2),
        SitePair(site_a=1, site_b=3),
        SitePair(site_a=2, site_b=3),
    ],
)

TRANSPORT_EDGE = TransportEdge(dst_site_id=1, distance=4.0, duration_ns=8000.0)

HARDWARE_WIRE = HardwareWire(
    sites=[
        SiteWire(id=0),
        SiteWire(id=1, x=4.0),
        SiteWire(id=2, y=4.0, zone_id=1),
        SiteWire(id=3, x=4.0, y=4.0, zone_id=1),
    ],
    site_ids=[0, 1, 3],
    native_gates=[
        NativeGateWire(
            name="RZ",
            arity=1,
            duration_ns=500.0,
            angle_min=-6.283185307179586,
            angle_max=6.283185307179586,
        ),
        NativeGateWire(
            name="CZ", arity=2, duration_ns=1000.0, connectivity=Connectivity.NEAREST_NEIGHBOR_CHAIN
        ),
    ],
    interaction_graphs=[
        InteractionGraphWire(
            gate_name="CZ",
            allowed_pairs=[
                SitePair(site_b=1),
                SitePair(site_b=2),
                SitePair(site_a=1, site_b=3),
                SitePair(site_a=2, site_b=3),
            ],
        )
    ],
    blockade_model=BlockadeWire(radius=4.5),
    timing_limits=TimingLimits(measurement_cooldown_ns=50000.0, measurement_duration_ns=50000.0),
    transport_edges=[
        TransportEdge(dst_site_id=1, distance=4.0, duration_ns=8000.0),
        TransportEdge(src_site_id=2, dst_site_id=3, distance=4.0, duration_ns=8000.0),
    ],
    move_limits=MoveLimits(
        max_total_displacement_per_atom=8.0, max_moves_per_atom=8, min_spacing=0.5
    ),
    c6=5420503.0,
    drive_limits=DriveLimits(
        omega_max=15.8,
        delta_min=-125.0,
        delta_max=125.0,
        omega_slew_max=250.0,
        delta_slew_max=2500.0,
        local_delta_max=125.0,
        duration_max_ns=4000.0,
    ),
)

PROFILE_FILE = ProfileFile(
    name="lossy_chain",
    label="Loss-dominated chain",
    description=(
        "Six-site chain (1.5 spacing, blockade radius 1.5"
        "); 10% loss at measurement, 5% per gate, 5/s idl"
        "e."
    ),
    persona="loss-aware algorithms",
    isa_version="1.1",
    lattice=Lattice(n=6, spacing=1.5),
    hardware=HardwareWire(
        native_gates=[
            NativeGateWire(name="X", arity=1, duration_ns=500.0),
            NativeGateWire(name="Y", arity=1, duration_ns=500.0),
            NativeGateWire(name="Z", arity=1, duration_ns=500.0),
            NativeGateWire(name="H", arity=1, duration_ns=500.0),
            NativeGateWire(name="S", arity=1, duration_ns=500.0),
            NativeGateWire(name="SDG", arity=1, duration_ns=500.0),
            NativeGateWire(name="T", arity=1, duration_ns=500.0),
            NativeGateWire(name="TDG", arity=1, duration_ns=500.0),
            NativeGateWire(
                name="RX",
                arity=1,
                duration_ns=500.0,
                angle_min=-6.283185307179586,
                angle_max=6.283185307179586,
            ),
            NativeGateWire(
                name="RY",
                arity=1,
                duration_ns=500.0,
                angle_min=-6.283185307179586,
                angle_max=6.283185307179586,
            ),
            NativeGateWire(
                name="RZ",
                arity=1,
                duration_ns=500.0,
                angle_min=-6.283185307179586,
                angle_max=6.283185307179586,
            ),
            NativeGateWire(name="U3", arity=1, duration_ns=500.0),
            NativeGateWire(
                name="CZ",
                arity=2,
                duration_ns=1000.0,
                connectivity=Connectivity.NEAREST_NEIGHBOR_CHAIN,
            ),
            NativeGateWire(
                name="CX",
                arity=2,
                duration_ns=2000.0,
                connectivity=Connectivity.NEAREST_NEIGHBOR_CHAIN,
            ),
        ],
        blockade_model=BlockadeWire(radius=1.5),
        timing_limits=TimingLimits(
            measurement_cooldown_ns=50000.0, measurement_duration_ns=50000.0
        ),
        drive_limits=DriveLimits(
            omega_max=15.8,
            delta_min=-125.0,
            delta_max=125.0,
            omega_slew_max=250.0,
            delta_slew_max=2500.0,
            local_delta_max=125.0,
            duration_max_ns=4000.0,
        ),
    ),
    configurations=[
        ConfigurationWire(name="dense_chain", description="All 6 sites occupied."),
        ConfigurationWire(
            name="data_plus_parking",
            site_ids=[0, 1, 2, 3],
            regions=[
                RegionWire(name="data", site_ids=[0, 1, 2, 3]),
                RegionWire(name="parking", role="PARKING", site_ids=[4, 5]),
            ],
            description="Four data atoms; the tail sites are parking.",
        ),
    ],
    default_configuration="dense_chain",
    noise={"p_loss": 0.1, "loss_runtime": {"per_gate": 0.05, "idle_rate": 5.0}},
)

JOB_WIRE = JobWire(
    job_id="ghz-3",
    device_id="stabilizer",
    profile="lossy_chain",
    shots=2000,
    seed=20260501,
    isa_version="1.1",
    metadata={"author": "alice", "purpose": "GHZ state on a chain"},
    program=[
        {"op": "AllocArray", "n_qubits": 3},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2]},
        {"op": "Measure", "targets": [0, 1, 2]},
    ],
    noise={"p_loss": 0.02},
)

STREAM_SPEC = StreamSpec(measurements=True, pulses=True, snapshots=(1500.0, 4000.0))

NEUTRAL_ATOM_OPTIONS = NeutralAtomOptions(
    preset="ideal_square_grid",
    backend="state-vector",
    strict_timing=True,
    stream={"measurements": True},
    routing="move",
    configuration="data_plus_parking",
)


#: Every example of this room.
EXAMPLES = (
    BLOCKADE_WIRE,
    DRIVE_LIMITS,
    TIMING_LIMITS,
    NATIVE_GATE_WIRE,
    LATTICE,
    REGION_WIRE,
    CONFIGURATION_WIRE,
    ZONE_RADIUS,
    LATTICE_ZONE,
    TRANSPORT,
    MOVE_LIMITS,
    PULSE_LIMITS,
    SITE_WIRE,
    SITE_PAIR,
    INTERACTION_GRAPH_WIRE,
    TRANSPORT_EDGE,
    HARDWARE_WIRE,
    PROFILE_FILE,
    JOB_WIRE,
    STREAM_SPEC,
    NEUTRAL_ATOM_OPTIONS,
)
