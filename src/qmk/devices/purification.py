"""Entanglement purification of a link's Bell pairs: the BBPSSW recurrence on Werner pairs.

A link delivers Werner pairs of fidelity F (``|Phi+>`` with probability F, each other
Bell state with probability (1-F)/3). One round of the recurrence protocol of Bennett,
Brassard, Popescu, Schumacher, Smolin and Wootters (PRL 76, 722 (1996), with the twirl
that keeps the output a Werner pair) takes two pairs, applies bilateral CNOTs, measures
the target pair in Z on both sides and keeps the source pair when the outcomes agree:

    p_succ = F^2 + 2 F (1-F)/3 + 5 ((1-F)/3)^2
    F'     = (F^2 + ((1-F)/3)^2) / p_succ

F' > F exactly when F > 1/2, so a pair at or below 1/2 cannot be purified. Each round
consumes two pairs per attempt, so one pair after k rounds costs on average
``prod(2 / p_succ_i)`` raw pairs.

>>> one = purify(0.9, target=0.92, max_rounds=3)
>>> one.rounds, round(one.fidelity, 6), round(one.raw_pairs_per_pair, 6), one.reached
(1, 0.926396, 2.284264, True)
>>> purify(0.5, target=0.9, max_rounds=5).reached
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def bbpssw_round(fidelity: float) -> tuple[float, float]:
    """``(output fidelity, success probability)`` of one BBPSSW round on two Werner pairs."""
    f = fidelity
    e = (1 - f) / 3
    success = f * f + 2 * f * e + 5 * e * e
    return (f * f + e * e) / success, success


@dataclass(frozen=True, slots=True, kw_only=True)
class Purification:
    """What purifying a link's pairs towards ``target`` gives.

    Attributes:
        raw_fidelity: the link's fidelity before purification.
        target: the fidelity asked for.
        rounds: recurrence rounds run (0 when the raw pairs already reach the target).
        fidelity: the output pairs' Werner fidelity.
        success_probabilities: each round's success probability, in order.
        raw_pairs_per_pair: expected raw pairs consumed per output pair.
        reached: whether ``fidelity >= target``.
    """

    raw_fidelity: float
    target: float
    rounds: int
    fidelity: float
    success_probabilities: tuple[float, ...]
    raw_pairs_per_pair: float
    reached: bool

    def to_json(self) -> dict[str, object]:
        return {
            "protocol": "BBPSSW",
            "raw_fidelity": self.raw_fidelity,
            "target": self.target,
            "rounds": self.rounds,
            "fidelity": self.fidelity,
            "success_probabilities": list(self.success_probabilities),
            "raw_pairs_per_pair": self.raw_pairs_per_pair,
            "reached": self.reached,
        }


def purify(fidelity: float, *, target: float, max_rounds: int) -> Purification:
    """Run BBPSSW rounds on pairs of ``fidelity`` until ``target`` or ``max_rounds``.

    Stops early when a round cannot raise the fidelity (``fidelity <= 1/2``).
    """
    f, cost = fidelity, 1.0
    successes: list[float] = []
    while f < target and len(successes) < max_rounds and f > 0.5:
        f, success = bbpssw_round(f)
        successes.append(success)
        cost *= 2 / success
    return Purification(
        raw_fidelity=fidelity,
        target=target,
        rounds=len(successes),
        fidelity=f,
        success_probabilities=tuple(successes),
        raw_pairs_per_pair=cost,
        reached=f >= target or math.isclose(f, target),
    )


__all__ = ["Purification", "bbpssw_round", "purify"]
