"""The factory search's shortcuts change nothing: the pruned search finds what computing
every candidate in full finds (QRE's way), on seeded random qubits, codes, units, targets,
distances and round limits: the same factories, in the same order, with the same floats,
and the same flag for a quantile where QRE's Newton iteration cycles."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from qmk.estimate import tfactory
from qmk.estimate.tfactory import UnitTemplate, default_units, unit_from_json
from qmk.qec.codes import QecScheme, scheme_for
from qmk.qec.errors import QECError
from qmk.qec.params import _RATES, QUBIT_PARAMS, QubitParams
from support.estimate import crate_units

Case = tuple[QecScheme, QubitParams, tuple[UnitTemplate, ...], float, int, int]


def _random_unit(rng: random.Random, name: str) -> UnitTemplate:
    spec: dict[str, Any] = {
        "displayName": name,
        "numInputTs": rng.choice((3, 5, 7, 15, 20, 49)),
        "numOutputTs": rng.choice((1, 1, 2, 3)),
        "failureProbabilityFormula": (
            f"{rng.uniform(1, 20):.3f} * z + {rng.uniform(10, 600):.2f} * c"
        ),
        "outputErrorRateFormula": rng.choice(
            (
                f"{rng.uniform(1, 80):.2f} * z ^ 3 + {rng.uniform(1, 10):.2f} * c",
                f"{rng.uniform(1, 30):.2f} * z ^ 2 + {rng.uniform(1, 10):.2f} * c",
            )
        ),
    }
    kind = rng.choice(("both", "both", "logical", "physical"))
    if kind != "logical":
        spec["physicalQubitSpecification"] = {
            "numUnitQubits": rng.randint(5, 60),
            "durationInQubitCycleTime": rng.randint(5, 60),
        }
    if kind != "physical":
        spec["logicalQubitSpecification"] = {
            "numUnitQubits": rng.randint(5, 40),
            "durationInQubitCycleTime": rng.randint(5, 30),
        }
    return unit_from_json(spec)


def _random_case(rng: random.Random) -> Case:
    """A predefined qubit with every error rate scaled (and, half the time, its T gate's
    apart), a code for it, QRE's units or some of them or custom ones, a target from
    1e-18 to 1e-3, a largest distance from 3 to 51 and 1 to 4 rounds."""
    base = rng.choice(list(QUBIT_PARAMS.values()))
    scale = 10 ** rng.uniform(-1.5, 0.6)
    rates = {name: getattr(base, name) * scale for name in _RATES if getattr(base, name)}
    qubit = msgspec.structs.replace(base, **rates)
    if rng.random() < 0.5:
        t_rate = min(0.02, base.t_gate_error_rate * 10 ** rng.uniform(-2, 1))
        qubit = msgspec.structs.replace(qubit, t_gate_error_rate=t_rate)
    family = "surface_code"
    if base.instruction_set == "majorana" and rng.random() < 0.5:
        family = "floquet_code"
    pick = rng.random()
    units: tuple[UnitTemplate, ...]
    if pick < 0.5:
        units = default_units()
    elif pick < 0.7:
        units = (rng.choice(default_units()),)
    else:
        units = tuple(_random_unit(rng, f"u{i}") for i in range(rng.randint(1, 3)))
        if rng.random() < 0.5 or all(u.unit_type == tfactory.PHYSICAL for u in units):
            units += (default_units()[0],)  # (physical units alone make no later round)
    target = 10 ** rng.uniform(-18, -3)
    return (
        scheme_for(family, qubit),
        qubit,
        units,
        target,
        rng.randrange(3, 52, 2),
        rng.choice((1, 2, 3, 3, 3, 4)),
    )


def _search(case: Case, *, prune: bool) -> Any:
    try:
        return tfactory._find(*case, prune=prune)
    except (QECError, IndexError) as exc:  # (QRE indexes out of range where no distance fits)
        return type(exc).__name__


@pytest.mark.parametrize("seed", range(0, 600, 150))
def test_pruned_factory_search_equals_the_exhaustive_one_on_random_parameters(seed: int) -> None:
    seen: Counter[str] = Counter()
    for case_seed in range(seed, seed + 150):
        case = _random_case(random.Random(case_seed))
        full = _search(case, prune=False)
        assert _search(case, prune=True) == full, f"case seed {case_seed}"
        if isinstance(full, str):
            seen[full] += 1
        else:
            seen["factories" if full[0] else "none"] += 1
            seen["fallback"] += full[1]
    # the cases reach what the shortcuts must keep: factories, none, the fallback flag
    assert seen["factories"] > 50 and seen["none"] > 5 and seen["fallback"] > 5


def test_pruning_skips_most_first_round_counts_of_a_default_search() -> None:
    calls: Counter[bool | None] = Counter()
    settle = tfactory._Search._settle

    def counted(self: tfactory._Search, *args: Any) -> bool | None:
        answer = settle(self, *args)
        calls[answer] += 1
        return answer

    case = (
        scheme_for("surface_code", QUBIT_PARAMS["qubit_gate_ns_e3"]),
        QUBIT_PARAMS["qubit_gate_ns_e3"],
        default_units(),
        2.0964360587002096e-10,
        21,
        3,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tfactory._Search, "_settle", counted)
        pruned = tfactory._find(*case, prune=True)
    assert pruned == tfactory._find(*case, prune=False)
    assert calls[True] + calls[False] > 200 and calls[None] < 20


@pytest.mark.parametrize("seed", range(3))
def test_small_counts_holds_only_where_every_quantile_asked_is_of_fewer_than_1000_units(
    seed: int,
) -> None:
    rng = random.Random(seed)
    asked: list[int] = []
    inverse = tfactory._inverse.__wrapped__

    def recorded(n: int, q: float, u: float) -> tuple[int, bool]:
        asked.append(n)
        return inverse(n, q, u)

    held = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tfactory, "_inverse", recorded)
        for _ in range(3_000):
            out = rng.choice((1, 1, 2, 3))
            needed = rng.choice((1, 15, 30, rng.randint(1, 600), rng.randint(1, 3000)))
            failure = rng.choice((10 ** rng.uniform(-9, -0.3), rng.random() * 0.5))
            rounds = rng.randint(1, 6)
            requirement = tfactory.FACTORY_FAILURE_PROBABILITY / rounds
            log_term = math.log(2.0 / requirement)
            if not tfactory._small_counts(-(-needed // out), failure, log_term):
                continue
            held += 1
            asked.clear()
            units, fell_back = tfactory._units_needed.__wrapped__(needed, failure, requirement, out)
            assert not fell_back and units * out >= needed
            assert asked and max(asked) < 1000
    assert held > 1000


@pytest.mark.parametrize("seed", range(3))
def test_one_unit_suffices_exactly_where_the_search_says_so_without_asking(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(5_000):
        out = rng.choice((1, 2, 3))
        needed = rng.randint(1, out)
        requirement = tfactory.FACTORY_FAILURE_PROBABILITY / rng.randint(1, 4)
        failure = rng.choice(
            (requirement * rng.uniform(0.5, 1.5), 10 ** rng.uniform(-12, 0), requirement)
        )
        failure = min(max(failure, 1e-300), 0.999)
        if rng.random() < 0.1:  # within a rounding of the requirement
            failure = requirement * (1 + rng.choice((-1, 1)) * 1e-16 * rng.randint(0, 3))
        says = failure < requirement and (1.0 - requirement) < (1.0 - failure)
        units = tfactory._units_needed.__wrapped__(needed, failure, requirement, out)
        assert (units == (1, False)) == says
        if says:
            assert tfactory._inverse.__wrapped__(1, failure, requirement) == (1, False)


@pytest.mark.parametrize("seed", range(3))
def test_units_needed_skips_the_fewest_count_only_where_units_fail_too_often(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2_000):
        out = rng.choice((1, 1, 2, 3))
        needed = rng.choice((1, 2, 15, 30, rng.randint(1, 600)))
        requirement = tfactory.FACTORY_FAILURE_PROBABILITY / rng.randint(1, 4)
        failure = rng.choice(
            (
                requirement + rng.choice((-1, 1)) * 10 ** rng.uniform(-12, -8),
                requirement * rng.uniform(0.9, 1.1),
                requirement * 10 ** rng.uniform(-3, 2),
            )
        )
        failure = min(max(failure, 1e-15), 0.45)
        expected = crate_units(needed, failure, requirement, out)
        assert tfactory._units_needed.__wrapped__(needed, failure, requirement, out) == expected


def test_physical_units_alone_that_do_not_fit_make_no_factory_and_the_search_ends() -> None:
    rng = random.Random(5)
    physical = []
    while len(physical) < 2:
        unit = _random_unit(rng, f"p{len(physical)}")
        if unit.unit_type == tfactory.PHYSICAL:
            physical.append(unit)
    qubit = QUBIT_PARAMS["qubit_gate_ns_e3"]
    case = (scheme_for("surface_code", qubit), qubit, tuple(physical), 1e-9, 15, 3)
    # QRE's walk of the unit sequences counts on without end here (no valid physical
    # unit for the first round at these rates, no logical one for later rounds): none
    assert _search(case, prune=True) == _search(case, prune=False) == ((), False)
