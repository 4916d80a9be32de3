"""The factory search's reference: QRE's count of distillation units, as the crate makes
it (doubling, then bisection), asking the quantile of every count it meets."""

from __future__ import annotations

from qmk.estimate.tfactory import _inverse


def crate_units(needed: int, failure: float, requirement: float, out: int) -> tuple[int, bool]:
    """The fewest units of ``out`` states each that deliver ``needed`` states (QRE's
    doubling then bisection, every count asked of the quantile), and whether a quantile
    on the way needed the exact fallback."""
    fell_back = False

    def outputs(units: int) -> int:
        nonlocal fell_back
        if failure == 0.0 and requirement == 0.0:  # a unit that never fails
            return units * out
        value, fell = _inverse.__wrapped__(units, failure, requirement)
        fell_back = fell_back or fell
        return int(value) * out

    units = -(-needed // out)
    while outputs(units) < needed:
        units *= 2
    upper, lower = units, units // 2
    while lower < upper:
        units = (lower + upper) // 2
        if outputs(units) >= needed:
            upper = units
        else:
            lower = units + 1
    return upper, fell_back
