"""Programs whose distribution is known exactly: the executor's corpus (:data:`CASES`).

Each program is written in QVM assembly with the distribution of its events worked
out by hand (the derivation is in the comment or the expression next to it), and says
whether it is Clifford (so the stabilizer engine runs it too). The executor's exact
tests (``tests/execution/test_executor_exact.py``) run each on its engines; the
checkpoint tests (``tests/execution/test_checkpoint.py``) stop and resume them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product as cartesian
from textwrap import dedent

from qmk.qvm.asm import assemble
from qmk.qvm.graph import Graph

PI = math.pi


# -- distributions ------------------------------------------------------------------


def bern(p1: float) -> dict[str, float]:
    """One event that is 1 with probability ``p1``."""
    return {"0": 1.0 - p1, "1": p1}


def det(bits: str) -> dict[str, float]:
    """A deterministic outcome."""
    return {bits: 1.0}


def uniform(width: int) -> dict[str, float]:
    """``width`` independent fair events."""
    return {"".join(b): 2.0**-width for b in cartesian("01", repeat=width)}


def joint(*parts: Mapping[str, float]) -> dict[str, float]:
    """Independent events side by side (first part leftmost)."""
    out: dict[str, float] = {"": 1.0}
    for part in parts:
        out = {a + b: pa * pb for a, pa in out.items() for b, pb in part.items()}
    return out


def sin2(x: float) -> float:
    return math.sin(x) ** 2


def cos2(x: float) -> float:
    return math.cos(x) ** 2


# -- programs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    graph: Graph
    expected: Mapping[str, float]
    clifford: bool


CASES: list[Case] = []


def case(
    id: str,
    qubits: str,
    body: str,
    expected: Mapping[str, float],
    *,
    events: str,
    clifford: bool,
    caps: str = "",
    free: bool = True,
) -> None:
    """Add a program: ``qubits`` are allocated first (and freed last), ``events`` declared
    in order (the outcome strings list them first leftmost)."""
    names = qubits.split()
    operands = ", ".join(f"vq:{q}" for q in names)
    lines = [
        f".caps CAP_ALLOC {caps}".rstrip(),
        f".vqs {qubits}",
        f".events {events}",
        f"alloc: ALLOC_LQ {operands}",
        dedent(body).strip(),
    ]
    if free:
        lines.append(f"free: FREE_LQ {operands}")
    CASES.append(Case(id, assemble("\n".join(lines) + "\n"), dict(expected), clifford))


def ghz(n: int) -> str:
    lines = ["h: APPLY_H vq:q0"]
    lines += [f"c{i}: APPLY_CNOT vq:q{i - 1}, vq:q{i}" for i in range(1, n)]
    lines += [f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(n)]
    return "\n".join(lines)


# Entanglement.
case(
    "bell",
    "a b",
    """
    APPLY_H vq:a
    APPLY_CNOT vq:a, vq:b
    MEASURE_Z vq:a, out:ma
    MEASURE_Z vq:b, out:mb
    """,
    {"00": 0.5, "11": 0.5},
    events="ma mb",
    clifford=True,
)
for n in (3, 5):
    case(
        f"ghz_{n}",
        " ".join(f"q{i}" for i in range(n)),
        ghz(n),
        {"0" * n: 0.5, "1" * n: 0.5},
        events=" ".join(f"m{i}" for i in range(n)),
        clifford=True,
    )

# Single-qubit identities.
case(
    "h_s_s_h_is_x",
    "q",
    "APPLY_H vq:q\nAPPLY_S vq:q\nAPPLY_S vq:q\nAPPLY_H vq:q\nMEASURE_Z vq:q, out:m",
    det("1"),
    events="m",
    clifford=True,
)
case(
    "h_t_t_t_t_h_is_x",
    "q",
    "APPLY_H vq:q\n" + "APPLY_T vq:q\n" * 4 + "APPLY_H vq:q\nMEASURE_Z vq:q, out:m",
    det("1"),
    events="m",
    clifford=False,
)
# S|+> = |+i>; H|+i> = ((1+i)|0> + (1-i)|1>)/2: a fair coin.
case(
    "h_s_h_is_a_fair_coin",
    "q",
    "APPLY_H vq:q\nAPPLY_S vq:q\nAPPLY_H vq:q\nMEASURE_Z vq:q, out:m",
    bern(0.5),
    events="m",
    clifford=True,
)
# T|+> then H: amplitude of |1> is (1 - e^{i pi/4})/2, so P(1) = sin^2(pi/8).
case(
    "h_t_h_gives_one_with_sin2_pi_8",
    "q",
    "APPLY_H vq:q\nAPPLY_T vq:q\nAPPLY_H vq:q\nMEASURE_Z vq:q, out:m",
    bern(sin2(PI / 8)),
    events="m",
    clifford=False,
)
case(
    "h_s_sdg_h_is_identity",
    "q",
    "APPLY_H vq:q\nAPPLY_S vq:q\nAPPLY_SDG vq:q\nAPPLY_H vq:q\nMEASURE_Z vq:q, out:m",
    det("0"),
    events="m",
    clifford=True,
)
case(
    "h_t_tdg_h_is_identity",
    "q",
    "APPLY_H vq:q\nAPPLY_T vq:q\nAPPLY_TDG vq:q\nAPPLY_H vq:q\nMEASURE_Z vq:q, out:m",
    det("0"),
    events="m",
    clifford=False,
)
case(
    "y_flips_zero", "q", "APPLY_Y vq:q\nMEASURE_Z vq:q, out:m", det("1"), events="m", clifford=True
)
case(
    "z_on_plus_gives_minus",
    "q",
    "APPLY_H vq:q\nAPPLY_Z vq:q\nAPPLY_H vq:q\nMEASURE_Z vq:q, out:m",
    det("1"),
    events="m",
    clifford=True,
)

# Rotations: RY(t)|0> = cos(t/2)|0> + sin(t/2)|1>, RX(t)|0> = cos(t/2)|0> - i sin(t/2)|1>,
# H RZ(t) H |0>: RZ(t)|+> has <-| amplitude -i sin(t/2); all give P(1) = sin^2(t/2).
for theta, label in ((0.3, "0.3"), (1.1, "1.1"), (2.0, "2.0"), (-1.1, "-1.1"), (PI, "pi")):
    quarter = label == "pi"
    for axis in ("ry", "rx"):
        case(
            f"{axis}_{label}_gives_one_with_sin2_half_theta",
            "q",
            f"APPLY_{axis.upper()} vq:q, theta={theta!r}\nMEASURE_Z vq:q, out:m",
            bern(sin2(theta / 2)),
            events="m",
            clifford=quarter,
        )
for t, label in ((0.3, "0.3"), (1.1, "1.1"), (2.0, "2.0"), (PI / 2, "pi_2"), (PI, "pi")):
    case(
        f"h_rz_{label}_h_gives_one_with_sin2_half_t",
        "q",
        f"APPLY_H vq:q\nAPPLY_RZ vq:q, theta={t!r}\nAPPLY_H vq:q\nMEASURE_Z vq:q, out:m",
        bern(sin2(t / 2)),
        events="m",
        clifford=label.startswith("pi"),
    )
# Quarter turns are Clifford: RZ(pi/2)|+> = |+i> (up to phase), RZ(-pi/2)|+> = |-i>,
# RX(pi/2)|0> = |-i>, RY(pi/2)|0> = |+>, RY(-pi/2)|0> = |->, RX(5 pi/2) = -RX(pi/2).
for name, body, bits in (
    ("rz_pi_2_on_plus_is_plus_i", "APPLY_H vq:q\nAPPLY_RZ vq:q, theta=pi/2\nMEASURE_Y", "0"),
    (
        "rz_minus_pi_2_on_plus_is_minus_i",
        "APPLY_H vq:q\nAPPLY_RZ vq:q, theta=-pi/2\nMEASURE_Y",
        "1",
    ),
    ("rx_pi_2_on_zero_is_minus_i", "APPLY_RX vq:q, theta=pi/2\nMEASURE_Y", "1"),
    ("rx_5pi_2_on_zero_is_minus_i", "APPLY_RX vq:q, theta=5*pi/2\nMEASURE_Y", "1"),
    ("ry_pi_2_on_zero_is_plus", "APPLY_RY vq:q, theta=pi/2\nMEASURE_X", "0"),
    ("ry_minus_pi_2_on_zero_is_minus", "APPLY_RY vq:q, theta=-pi/2\nMEASURE_X", "1"),
):
    case(name, "q", body + " vq:q, out:m", det(bits), events="m", clifford=True)

# Measurement bases.
case(
    "measure_x_of_plus_is_0",
    "q",
    "APPLY_H vq:q\nMEASURE_X vq:q, out:m",
    det("0"),
    events="m",
    clifford=True,
)
case(
    "measure_x_of_minus_is_1",
    "q",
    "APPLY_X vq:q\nAPPLY_H vq:q\nMEASURE_X vq:q, out:m",
    det("1"),
    events="m",
    clifford=True,
)
case(
    "measure_y_of_plus_i_is_0",
    "q",
    "APPLY_H vq:q\nAPPLY_S vq:q\nMEASURE_Y vq:q, out:m",
    det("0"),
    events="m",
    clifford=True,
)
case(
    "measure_y_of_minus_i_is_1",
    "q",
    "APPLY_H vq:q\nAPPLY_SDG vq:q\nMEASURE_Y vq:q, out:m",
    det("1"),
    events="m",
    clifford=True,
)
case(
    "measure_y_of_zero_is_a_fair_coin",
    "q",
    "MEASURE_Y vq:q, out:m",
    bern(0.5),
    events="m",
    clifford=True,
)
# <+|RY(t)|0> = (cos(t/2) + sin(t/2))/sqrt2: P(1) = (1 - sin t)/2.
case(
    "measure_x_of_ry_1.1",
    "q",
    "APPLY_RY vq:q, theta=1.1\nMEASURE_X vq:q, out:m",
    bern((1 - math.sin(1.1)) / 2),
    events="m",
    clifford=False,
)
# <+i|RX(t)|0> = (cos(t/2) - sin(t/2))/sqrt2: P(1) = (1 + sin t)/2.
case(
    "measure_y_of_rx_0.7",
    "q",
    "APPLY_RX vq:q, theta=0.7\nMEASURE_Y vq:q, out:m",
    bern((1 + math.sin(0.7)) / 2),
    events="m",
    clifford=False,
)
# MEASURE_ANGLE(a) on RZ(phi)|+> ~ |0> + e^{i phi}|1>: P(1) = sin^2((phi - a)/2).
for phi, angle, label, clifford in (
    (0.7, 0.2, "0.7_at_0.2", False),
    (1.3, -0.4, "1.3_at_-0.4", False),
    (2.5, 0.3, "2.5_at_0.3", False),
    (0.0, 1.0, "0_at_1.0", False),
    (PI / 2, PI / 2, "pi_2_at_pi_2", True),
    (0.0, PI, "0_at_pi", True),
    (PI / 2, 0.0, "pi_2_at_0", True),
    (-PI / 2, PI / 2, "-pi_2_at_pi_2", True),
    (PI, -PI / 2, "pi_at_-pi_2", True),
):
    case(
        f"measure_angle_{label}_gives_one_with_sin2_half_difference",
        "q",
        f"APPLY_H vq:q\nAPPLY_RZ vq:q, theta={phi!r}\nMEASURE_ANGLE vq:q, out:m, angle={angle!r}",
        bern(sin2((phi - angle) / 2)),
        events="m",
        clifford=clifford,
    )

# Measurement keeps the qubit, in the post-measurement state.
case(
    "measuring_twice_gives_equal_outcomes",
    "q",
    "APPLY_H vq:q\nMEASURE_Z vq:q, out:m0\nMEASURE_Z vq:q, out:m1",
    {"00": 0.5, "11": 0.5},
    events="m0 m1",
    clifford=True,
)
case(
    "measuring_x_twice_gives_equal_outcomes",
    "q",
    "APPLY_RY vq:q, theta=1.1\nMEASURE_X vq:q, out:m0\nMEASURE_X vq:q, out:m1",
    {"00": (1 + math.sin(1.1)) / 2, "11": (1 - math.sin(1.1)) / 2},
    events="m0 m1",
    clifford=False,
)
case(
    "measuring_angle_twice_gives_equal_outcomes",
    "q",
    "APPLY_H vq:q\nAPPLY_RZ vq:q, theta=0.9\n"
    "MEASURE_ANGLE vq:q, out:m0, angle=0.2\nMEASURE_ANGLE vq:q, out:m1, angle=0.2",
    {"00": cos2(0.35), "11": sin2(0.35)},
    events="m0 m1",
    clifford=False,
)
# |+> measured in X stays |+> (0), whose Y measurement is a fair coin.
case(
    "x_then_y_measurement_is_0_then_a_fair_coin",
    "q",
    "APPLY_H vq:q\nMEASURE_X vq:q, out:m0\nMEASURE_Y vq:q, out:m1",
    {"00": 0.5, "01": 0.5},
    events="m0 m1",
    clifford=True,
)
# After a Z measurement the qubit is |0> or |1>; an X measurement then is a fair coin.
case(
    "z_then_x_measurement_of_ry_1.1",
    "q",
    "APPLY_RY vq:q, theta=1.1\nMEASURE_Z vq:q, out:m0\nMEASURE_X vq:q, out:m1",
    joint(bern(sin2(0.55)), bern(0.5)),
    events="m0 m1",
    clifford=False,
)

# RESET.
case(
    "reset_returns_one_to_zero",
    "q",
    "APPLY_X vq:q\nRESET vq:q\nMEASURE_Z vq:q, out:m",
    det("0"),
    events="m",
    clifford=True,
)
case(
    "reset_after_a_random_measurement_gives_zero",
    "q",
    "APPLY_H vq:q\nMEASURE_Z vq:q, out:m0\nRESET vq:q\nMEASURE_Z vq:q, out:m1",
    {"00": 0.5, "10": 0.5},
    events="m0 m1",
    clifford=True,
)
# Resetting half of a Bell pair leaves the other half maximally mixed.
case(
    "reset_of_half_a_bell_pair_leaves_the_other_half_mixed",
    "a b",
    "APPLY_H vq:a\nAPPLY_CNOT vq:a, vq:b\nRESET vq:a\n"
    "MEASURE_Z vq:a, out:ma\nMEASURE_Z vq:b, out:mb",
    {"00": 0.5, "01": 0.5},
    events="ma mb",
    clifford=True,
)
# The same, in trajectories mode on the stabilizer engine: the H guarded on an event that is
# always 0 never runs, but a guard on a non-Pauli gate keeps the program out of stim-batch.
case(
    "reset_of_half_a_bell_pair_leaves_the_other_half_mixed_in_trajectories",
    "a b c",
    """
    MEASURE_Z vq:c, out:mc
    APPLY_H vq:a
    APPLY_CNOT vq:a, vq:b
    APPLY_H vq:c when ev:mc == 1
    RESET vq:a
    MEASURE_Z vq:b, out:mb
    """,
    {"00": 0.5, "01": 0.5},
    events="mc mb",
    clifford=True,
)
# Freeing a qubit is measuring it and forgetting the outcome: its partner stays mixed (the
# guarded X copies the partner's outcome, so the FREE is not part of the final measurements).
case(
    "free_of_half_a_bell_pair_leaves_the_other_half_mixed",
    "a b c",
    """
    APPLY_H vq:a
    APPLY_CNOT vq:a, vq:b
    free_a: FREE_LQ vq:a
    MEASURE_Z vq:b, out:mb
    APPLY_X vq:c when ev:mb == 1
    MEASURE_Z vq:c, out:mc
    free_bc: FREE_LQ vq:b, vq:c
    """,
    {"00": 0.5, "11": 0.5},
    events="mb mc",
    clifford=True,
    free=False,
)
case(
    "free_of_half_a_non_clifford_pair_leaves_the_other_half_mixed",
    "a b c",
    """
    APPLY_RY vq:a, theta=1.1
    APPLY_CNOT vq:a, vq:b
    free_a: FREE_LQ vq:a
    MEASURE_Z vq:b, out:mb
    APPLY_X vq:c when ev:mb == 1
    MEASURE_Z vq:c, out:mc
    free_bc: FREE_LQ vq:b, vq:c
    """,
    {"00": cos2(0.55), "11": sin2(0.55)},
    events="mb mc",
    clifford=False,
    free=False,
)
# INJECT_T_STATE discards what the qubit held: its Bell partner is left mixed.
case(
    "inject_t_state_on_half_a_bell_pair_leaves_the_other_half_mixed",
    "a b",
    """
    APPLY_H vq:a
    APPLY_CNOT vq:a, vq:b
    INJECT_T_STATE vq:a
    MEASURE_ANGLE vq:a, out:ma, angle=pi/4
    MEASURE_Z vq:b, out:mb
    """,
    {"00": 0.5, "01": 0.5},
    events="ma mb",
    clifford=False,
    caps="CAP_MAGIC",
)
# OPEN_CHAN on a qubit entangled with c: the pair is |Phi+>, c is left mixed.
case(
    "open_chan_on_an_entangled_qubit_leaves_its_partner_mixed",
    "a b c",
    """
    APPLY_H vq:a
    APPLY_CNOT vq:a, vq:c
    OPEN_CHAN vq:a, vq:b, ch:link
    MEASURE_Z vq:c, out:mc
    MEASURE_Z vq:a, out:ma
    MEASURE_Z vq:b, out:mb
    CLOSE_CHAN ch:link
    """,
    {"000": 0.25, "011": 0.25, "100": 0.25, "111": 0.25},
    events="mc ma mb",
    clifford=True,
    caps="CAP_LINK",
)
case(
    "free_and_alloc_again_gives_a_fresh_zero",
    "q",
    "APPLY_X vq:q\nf0: FREE_LQ vq:q\na1: ALLOC_LQ vq:q\nMEASURE_Z vq:q, out:m",
    det("0"),
    events="m",
    clifford=True,
)
case(
    "rotation_after_reset_starts_from_zero",
    "q",
    "APPLY_RY vq:q, theta=2.3\nRESET vq:q\nAPPLY_RY vq:q, theta=0.8\nMEASURE_Z vq:q, out:m",
    bern(sin2(0.4)),
    events="m",
    clifford=False,
)


# Teleportation. With (alice, bob) in |Phi+>, MEASURE_BELL(msg, alice) gives (x, z) uniformly
# and leaves bob in X^z Z^x |psi>: COND_PAULI X on z, then Z on x, restores |psi>.
def teleport(prepare: str, finish: str, *, guards: bool = False) -> str:
    if guards:
        fix = "APPLY_X vq:bob when ev:z == 1\nAPPLY_Z vq:bob when ev:x == 1"
    else:
        fix = 'COND_PAULI vq:bob, in:z, mask="X"\nCOND_PAULI vq:bob, in:x, mask="Z"'
    return f"""
    {prepare}
    APPLY_H vq:alice
    APPLY_CNOT vq:alice, vq:bob
    MEASURE_BELL vq:msg, vq:alice, out:x, out:z
    {fix}
    {finish}
    """


case(
    "teleportation_of_one_always_gives_one",
    "msg alice bob",
    teleport("APPLY_X vq:msg", "MEASURE_Z vq:bob, out:m"),
    joint(uniform(2), det("1")),
    events="x z m",
    clifford=True,
)
case(
    "teleportation_of_one_with_guarded_corrections_always_gives_one",
    "msg alice bob",
    teleport("APPLY_X vq:msg", "MEASURE_Z vq:bob, out:m", guards=True),
    joint(uniform(2), det("1")),
    events="x z m",
    clifford=True,
)
case(
    "teleportation_of_minus_i_gives_one_in_y",
    "msg alice bob",
    teleport("APPLY_H vq:msg\nAPPLY_SDG vq:msg", "MEASURE_Y vq:bob, out:m"),
    joint(uniform(2), det("1")),
    events="x z m",
    clifford=True,
)
# |psi> = RZ(b) RY(a)|0> ~ cos(a/2)|0> + e^{ib} sin(a/2)|1>. MEASURE_ANGLE(c) gives 0 with
# probability |cos(a/2) + e^{i(b-c)} sin(a/2)|^2 / 2 = (1 + sin a cos(b - c)) / 2.
A, B, C = 1.1, 0.7, 0.3
case(
    "teleportation_of_a_random_state_keeps_its_angle_statistics",
    "msg alice bob",
    teleport(
        f"APPLY_RY vq:msg, theta={A}\nAPPLY_RZ vq:msg, theta={B}",
        f"MEASURE_ANGLE vq:bob, out:m, angle={C}",
    ),
    joint(uniform(2), bern(1 - (1 + math.sin(A) * math.cos(B - C)) / 2)),
    events="x z m",
    clifford=False,
)
case(
    "teleportation_of_a_random_state_keeps_its_z_statistics",
    "msg alice bob",
    teleport(
        f"APPLY_RY vq:msg, theta={A}\nAPPLY_RZ vq:msg, theta={B}",
        "MEASURE_Z vq:bob, out:m",
        guards=True,
    ),
    joint(uniform(2), bern(sin2(A / 2))),
    events="x z m",
    clifford=False,
)
case(
    "teleportation_then_unpreparing_gives_zero",
    "msg alice bob",
    teleport(
        f"APPLY_RY vq:msg, theta={A}\nAPPLY_RZ vq:msg, theta={B}",
        f"APPLY_RZ vq:bob, theta={-B}\nAPPLY_RY vq:bob, theta={-A}\nMEASURE_Z vq:bob, out:m",
    ),
    joint(uniform(2), det("0")),
    events="x z m",
    clifford=False,
)
# The textbook circuit: CNOT and H then two Z measurements are the same Bell measurement.
case(
    "teleportation_with_cnot_h_and_z_measurements",
    "msg alice bob",
    f"""
    APPLY_RY vq:msg, theta={A}
    APPLY_H vq:alice
    APPLY_CNOT vq:alice, vq:bob
    APPLY_CNOT vq:msg, vq:alice
    APPLY_H vq:msg
    MEASURE_Z vq:msg, out:x
    MEASURE_Z vq:alice, out:z
    APPLY_X vq:bob when ev:z == 1
    APPLY_Z vq:bob when ev:x == 1
    APPLY_RY vq:bob, theta={-A}
    MEASURE_Z vq:bob, out:m
    """,
    joint(uniform(2), det("0")),
    events="x z m",
    clifford=False,
)

# T by injection. INJECT_T_STATE makes T|+> whatever the qubit held.
case(
    "injected_t_state_then_h_gives_one_with_sin2_pi_8",
    "q",
    "INJECT_T_STATE vq:q\nAPPLY_H vq:q\nMEASURE_Z vq:q, out:m",
    bern(sin2(PI / 8)),
    events="m",
    clifford=False,
    caps="CAP_MAGIC",
)
case(
    "injected_t_state_is_the_plus_state_at_angle_pi_4",
    "q",
    "APPLY_X vq:q\nINJECT_T_STATE vq:q\nMEASURE_ANGLE vq:q, out:m, angle=pi/4",
    det("0"),
    events="m",
    clifford=False,
    caps="CAP_MAGIC",
)
# data a|0> + b|1>, anc T|+>; after CNOT(data, anc) and measuring anc (fair coin), data is
# T|psi> (0) or T^dagger|psi> (1, fixed by S). From |+>: P(m_data = 1) = sin^2(pi/8).
case(
    "t_gate_by_injection_on_plus",
    "data anc",
    """
    APPLY_H vq:data
    INJECT_T_STATE vq:anc
    APPLY_CNOT vq:data, vq:anc
    MEASURE_Z vq:anc, out:m_anc
    APPLY_S vq:data when ev:m_anc == 1
    APPLY_H vq:data
    MEASURE_Z vq:data, out:m_data
    """,
    joint(bern(0.5), bern(sin2(PI / 8))),
    events="m_anc m_data",
    clifford=False,
    caps="CAP_MAGIC",
)
# From RY(1.0)|0>: T|psi> ~ cos(.5)|0> + e^{i pi/4} sin(.5)|1>; at angle pi/4,
# P(1) = (1 - sin 1.0)/2.
case(
    "t_gate_by_injection_on_ry_1.0",
    "data anc",
    """
    APPLY_RY vq:data, theta=1.0
    INJECT_T_STATE vq:anc
    APPLY_CNOT vq:data, vq:anc
    MEASURE_Z vq:anc, out:m_anc
    APPLY_S vq:data when ev:m_anc == 1
    MEASURE_ANGLE vq:data, out:m_data, angle=pi/4
    """,
    joint(bern(0.5), bern((1 - math.sin(1.0)) / 2)),
    events="m_anc m_data",
    clifford=False,
    caps="CAP_MAGIC",
)

# Grover on 2 qubits, marked |11>: one iteration finds it with probability 1.
case(
    "grover_two_qubits_finds_the_marked_11",
    "a b",
    """
    APPLY_H vq:a
    APPLY_H vq:b
    oracle: APPLY_CZ vq:a, vq:b
    APPLY_H vq:a
    APPLY_H vq:b
    APPLY_X vq:a
    APPLY_X vq:b
    APPLY_CZ vq:a, vq:b
    APPLY_X vq:a
    APPLY_X vq:b
    APPLY_H vq:a
    APPLY_H vq:b
    MEASURE_Z vq:a, out:ma
    MEASURE_Z vq:b, out:mb
    """,
    det("11"),
    events="ma mb",
    clifford=True,
)
# Marked |01> (a = 0, b = 1): the oracle is CZ conjugated by X on a.
case(
    "grover_two_qubits_finds_the_marked_01",
    "a b",
    """
    APPLY_H vq:a
    APPLY_H vq:b
    APPLY_X vq:a
    APPLY_CZ vq:a, vq:b
    APPLY_X vq:a
    APPLY_H vq:a
    APPLY_H vq:b
    APPLY_X vq:a
    APPLY_X vq:b
    APPLY_CZ vq:a, vq:b
    APPLY_X vq:a
    APPLY_X vq:b
    APPLY_H vq:a
    APPLY_H vq:b
    MEASURE_Z vq:a, out:ma
    MEASURE_Z vq:b, out:mb
    """,
    det("01"),
    events="ma mb",
    clifford=True,
)

# Bell measurement: (XX parity, ZZ parity) of Phi+ 00, Phi- 10, Psi+ 01, Psi- 11.
for name, extra, bits in (
    ("phi_plus", "", "00"),
    ("phi_minus", "APPLY_Z vq:a", "10"),
    ("psi_plus", "APPLY_X vq:b", "01"),
    ("psi_minus", "APPLY_X vq:b\nAPPLY_Z vq:a", "11"),
):
    case(
        f"bell_measurement_of_{name}_gives_{bits}",
        "a b",
        f"APPLY_H vq:a\nAPPLY_CNOT vq:a, vq:b\n{extra}\nMEASURE_BELL vq:a, vq:b, out:xx, out:zz",
        det(bits),
        events="xx zz",
        clifford=True,
    )
# |00> = (Phi+ + Phi-)/sqrt2: XX is a fair coin, ZZ even, and the qubits are left in the
# Bell state measured, whose Z outcomes agree.
case(
    "bell_measurement_leaves_the_bell_state_it_measured",
    "a b",
    "MEASURE_BELL vq:a, vq:b, out:xx, out:zz\nMEASURE_Z vq:a, out:ma\nMEASURE_Z vq:b, out:mb",
    {"0000": 0.25, "0011": 0.25, "1000": 0.25, "1011": 0.25},
    events="xx zz ma mb",
    clifford=True,
)
# |+0> = (Phi+ + Phi- + Psi+ - Psi-)/2: all four outcomes equally likely.
case(
    "bell_measurement_of_plus_zero_is_uniform",
    "a b",
    "APPLY_H vq:a\nMEASURE_BELL vq:a, vq:b, out:xx, out:zz",
    uniform(2),
    events="xx zz",
    clifford=True,
)


# Channels: a Werner pair of fidelity F is Phi+ with X, Y or Z on b, each w.p. (1-F)/3.
# ZZ is odd after X or Y, XX after Z or Y: each with probability q = 2(1-F)/3, marginals fair.
# Phi+ has YY = -1, flipped by X and Z: YY odd with probability F + (1-F)/3.
def parity(p_odd: float) -> dict[str, float]:
    return {"00": (1 - p_odd) / 2, "11": (1 - p_odd) / 2, "01": p_odd / 2, "10": p_odd / 2}


for fidelity in (1.0, 0.9, 0.5, 0.25):
    p = (1 - fidelity) / 3
    opts = f'opts={{"fidelity": {fidelity}}}'
    for basis, p_odd in (("Z", 2 * p), ("X", 2 * p), ("Y", fidelity + p)):
        case(
            f"channel_fidelity_{fidelity}_{basis.lower()}{basis.lower()}_correlation",
            "a b",
            f"""
            OPEN_CHAN vq:a, vq:b, ch:link, {opts}
            USE_CHAN ch:link, semantic="measure"
            MEASURE_{basis} vq:a, out:ma
            MEASURE_{basis} vq:b, out:mb
            CLOSE_CHAN ch:link
            """,
            parity(p_odd),
            events="ma mb",
            clifford=True,
            caps="CAP_LINK",
        )
    case(
        f"channel_fidelity_{fidelity}_bell_measurement",
        "a b",
        f"""
        OPEN_CHAN vq:a, vq:b, ch:link, {opts}
        MEASURE_BELL vq:a, vq:b, out:xx, out:zz
        CLOSE_CHAN ch:link
        """,
        {"00": fidelity, "01": p, "10": p, "11": p},
        events="xx zz",
        clifford=True,
        caps="CAP_LINK",
    )

# Guards and feed-forward.
case(
    "guard_equal_1_copies_a_random_outcome",
    "a b",
    "APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\nAPPLY_X vq:b when ev:ma == 1\nMEASURE_Z vq:b, out:mb",
    {"00": 0.5, "11": 0.5},
    events="ma mb",
    clifford=True,
)
case(
    "guard_equal_0_negates_a_random_outcome",
    "a b",
    "APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\nAPPLY_X vq:b when ev:ma == 0\nMEASURE_Z vq:b, out:mb",
    {"01": 0.5, "10": 0.5},
    events="ma mb",
    clifford=True,
)
case(
    "guarded_hadamard_runs_only_when_its_guard_holds",
    "a b",
    "APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\nAPPLY_H vq:b when ev:ma == 1\nMEASURE_Z vq:b, out:mb",
    {"00": 0.5, "10": 0.25, "11": 0.25},
    events="ma mb",
    clifford=True,
)
case(
    "guarded_rotation_runs_only_when_its_guard_holds",
    "a b",
    "APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\nAPPLY_RY vq:b, theta=1.1 when ev:ma == 1\n"
    "MEASURE_Z vq:b, out:mb",
    {"00": 0.5, "10": 0.5 * cos2(0.55), "11": 0.5 * sin2(0.55)},
    events="ma mb",
    clifford=False,
)
GUARD_PREFIX = """
APPLY_H vq:a
APPLY_H vq:b
MEASURE_Z vq:a, out:ma
MEASURE_Z vq:b, out:mb
"""
case(
    "conjunction_guard_computes_and",
    "a b c",
    GUARD_PREFIX + "APPLY_X vq:c when ev:ma == 1 and ev:mb == 1\nMEASURE_Z vq:c, out:mc",
    {"000": 0.25, "010": 0.25, "100": 0.25, "111": 0.25},
    events="ma mb mc",
    clifford=True,
)
case(
    "conjunction_guard_with_mixed_values",
    "a b c",
    GUARD_PREFIX + "APPLY_X vq:c when ev:ma == 1 and ev:mb == 0\nMEASURE_Z vq:c, out:mc",
    {"000": 0.25, "010": 0.25, "101": 0.25, "110": 0.25},
    events="ma mb mc",
    clifford=True,
)
case(
    "one_term_conjunction_guard_acts_like_a_single_guard",
    "a b",
    "APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\nAPPLY_X vq:b when all(ev:ma == 1)\n"
    "MEASURE_Z vq:b, out:mb",
    {"00": 0.5, "11": 0.5},
    events="ma mb",
    clifford=True,
)
case(
    "conjunction_guard_on_a_toffoli_like_rotation",
    "a b c",
    GUARD_PREFIX + "APPLY_RX vq:c, theta=2.0 when ev:ma == 0 and ev:mb == 1\n"
    "MEASURE_Z vq:c, out:mc",
    {"000": 0.25, "010": 0.25 * cos2(1.0), "011": 0.25 * sin2(1.0), "100": 0.25, "110": 0.25},
    events="ma mb mc",
    clifford=False,
)
# A skipped measurement produces no event, which reads 0.
case(
    "skipped_measurement_reads_zero",
    "a b",
    "APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\nAPPLY_X vq:b\nMEASURE_Z vq:b, out:mb when ev:ma == 0",
    {"01": 0.5, "10": 0.5},
    events="ma mb",
    clifford=True,
)
case(
    "guard_on_an_unproduced_event_reads_zero",
    "a b c",
    """
    APPLY_H vq:a
    MEASURE_Z vq:a, out:ma
    APPLY_X vq:b
    MEASURE_Z vq:b, out:mb when ev:ma == 1
    APPLY_X vq:c when ev:mb == 0
    MEASURE_Z vq:c, out:mc
    """,
    {"001": 0.5, "110": 0.5},
    events="ma mb mc",
    clifford=True,
)
case(
    "cond_pauli_applies_x_on_the_xor_of_two_events",
    "a b c",
    GUARD_PREFIX + 'COND_PAULI vq:c, in:ma, in:mb, mask="X"\nMEASURE_Z vq:c, out:mc',
    {"000": 0.25, "011": 0.25, "101": 0.25, "110": 0.25},
    events="ma mb mc",
    clifford=True,
)
case(
    "cond_pauli_y_flips_z",
    "a b",
    "APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\n"
    'COND_PAULI vq:b, in:ma, mask="Y"\nMEASURE_Z vq:b, out:mb',
    {"00": 0.5, "11": 0.5},
    events="ma mb",
    clifford=True,
)
case(
    "cond_pauli_z_flips_x",
    "a b",
    'APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\nAPPLY_H vq:b\nCOND_PAULI vq:b, in:ma, mask="Z"\n'
    "MEASURE_X vq:b, out:mb",
    {"00": 0.5, "11": 0.5},
    events="ma mb",
    clifford=True,
)
case(
    "cond_pauli_identity_changes_nothing",
    "a b",
    "APPLY_H vq:a\nMEASURE_Z vq:a, out:ma\n"
    'COND_PAULI vq:b, in:ma, mask="I"\nMEASURE_Z vq:b, out:mb',
    {"00": 0.5, "10": 0.5},
    events="ma mb",
    clifford=True,
)
case(
    "cond_pauli_on_three_inputs_with_a_non_clifford_state",
    "a b c d",
    """
    APPLY_H vq:a
    APPLY_H vq:b
    APPLY_H vq:c
    MEASURE_Z vq:a, out:ma
    MEASURE_Z vq:b, out:mb
    MEASURE_Z vq:c, out:mc
    APPLY_RY vq:d, theta=0.9
    COND_PAULI vq:d, in:ma, in:mb, in:mc, mask="X"
    MEASURE_Z vq:d, out:md
    """,
    {
        f"{a}{b}{c}{d}": 0.125 * (sin2(0.45) if d != (a + b + c) % 2 else cos2(0.45))
        for a, b, c, d in cartesian((0, 1), repeat=4)
    },
    events="ma mb mc md",
    clifford=False,
)
# Mid-circuit measurement, then a guarded gate on the measured qubit (a measured reset).
case(
    "mid_circuit_measurement_then_guarded_x_resets",
    "q",
    """
    APPLY_RY vq:q, theta=1.1
    MEASURE_Z vq:q, out:m0
    APPLY_X vq:q when ev:m0 == 1
    APPLY_RY vq:q, theta=2.0
    MEASURE_Z vq:q, out:m1
    """,
    joint(bern(sin2(0.55)), bern(sin2(1.0))),
    events="m0 m1",
    clifford=False,
)
case(
    "mid_circuit_measurement_then_guarded_x_resets_clifford",
    "q",
    """
    APPLY_H vq:q
    MEASURE_Z vq:q, out:m0
    APPLY_X vq:q when ev:m0 == 1
    APPLY_H vq:q
    MEASURE_X vq:q, out:m1
    """,
    joint(bern(0.5), det("0")),
    events="m0 m1",
    clifford=True,
)

# TELEPORT_CNOT acts as CNOT.
for name, prepare, finish, expected, clifford in (
    (
        "teleport_cnot_makes_a_bell_pair",
        "APPLY_H vq:c",
        "MEASURE_Z vq:c, out:mc\nMEASURE_Z vq:t, out:mt",
        {"00": 0.5, "11": 0.5},
        True,
    ),
    (
        "teleport_cnot_flips_the_target_of_a_one_control",
        "APPLY_X vq:c",
        "MEASURE_Z vq:c, out:mc\nMEASURE_Z vq:t, out:mt",
        det("11"),
        True,
    ),
    (
        "teleport_cnot_kicks_a_phase_back_from_a_minus_target",
        "APPLY_X vq:t\nAPPLY_H vq:t\nAPPLY_H vq:c",
        "MEASURE_X vq:c, out:mc\nMEASURE_X vq:t, out:mt",
        det("11"),
        True,
    ),
    (
        "teleport_cnot_copies_a_rotated_control",
        "APPLY_RY vq:c, theta=1.1",
        "MEASURE_Z vq:c, out:mc\nMEASURE_Z vq:t, out:mt",
        {"00": cos2(0.55), "11": sin2(0.55)},
        False,
    ),
):
    case(
        name,
        "c t",
        f"{prepare}\nTELEPORT_CNOT vq:c, vq:t\n{finish}",
        expected,
        events="mc mt",
        clifford=clifford,
        caps="CAP_TELEPORT",
    )

# Multi-qubit gates.
case(
    "ccx_computes_and",
    "a b c",
    "APPLY_H vq:a\nAPPLY_H vq:b\nAPPLY_CCX vq:a, vq:b, vq:c\n"
    "MEASURE_Z vq:a, out:ma\nMEASURE_Z vq:b, out:mb\nMEASURE_Z vq:c, out:mc",
    {"000": 0.25, "010": 0.25, "100": 0.25, "111": 0.25},
    events="ma mb mc",
    clifford=False,
)
# CCZ on |a b +> puts Z on c exactly when a = b = 1; H then reads it.
case(
    "ccz_kicks_a_phase_onto_plus_when_both_controls_are_one",
    "a b c",
    "APPLY_H vq:a\nAPPLY_H vq:b\nAPPLY_H vq:c\nAPPLY_CCZ vq:a, vq:b, vq:c\nAPPLY_H vq:c\n"
    "MEASURE_Z vq:a, out:ma\nMEASURE_Z vq:b, out:mb\nMEASURE_Z vq:c, out:mc",
    {"000": 0.25, "010": 0.25, "100": 0.25, "111": 0.25},
    events="ma mb mc",
    clifford=False,
)
case(
    "cz_kicks_a_phase_back_from_one",
    "a b",
    "APPLY_X vq:b\nAPPLY_H vq:a\nAPPLY_CZ vq:a, vq:b\nAPPLY_H vq:a\n"
    "MEASURE_Z vq:a, out:ma\nMEASURE_Z vq:b, out:mb",
    det("11"),
    events="ma mb",
    clifford=True,
)
case(
    "swap_moves_a_one",
    "a b",
    "APPLY_X vq:a\nAPPLY_SWAP vq:a, vq:b\nMEASURE_Z vq:a, out:ma\nMEASURE_Z vq:b, out:mb",
    det("01"),
    events="ma mb",
    clifford=True,
)
case(
    "swap_moves_a_rotated_state",
    "a b",
    "APPLY_RY vq:a, theta=2.0\nAPPLY_SWAP vq:a, vq:b\n"
    "MEASURE_Z vq:a, out:ma\nMEASURE_Z vq:b, out:mb",
    {"00": cos2(1.0), "01": sin2(1.0)},
    events="ma mb",
    clifford=False,
)
# Events listed in an order other than that of the measurements.
case(
    "events_are_listed_in_declaration_order",
    "a b",
    "APPLY_X vq:a\nMEASURE_Z vq:a, out:first\nMEASURE_Z vq:b, out:second",
    det("01"),
    events="second first",
    clifford=True,
)
