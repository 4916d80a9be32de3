"""Classical conditions as guards: exclusive conjunctions of event tests, shared by front-ends.

A QVM guard is one conjunction ``e1 == v1 and e2 == v2 ...``. A source condition
(``if (c == 5)``, ``else``, ``!``, ``||``, a Qiskit ``if_test`` or a Cirq key
condition) becomes a list of *mutually exclusive* conjunctions, a :data:`Cond`:
``[]`` is false, ``[{}]`` is true. A node under a condition is written once per
conjunction, each copy with that conjunction as its guard; at most one copy runs.

>>> c = equals(["m0", "m1"], 1)   # bits (m0, m1), bit 0 first, spell 1
>>> c
[{'m0': 1, 'm1': 0}]
>>> negate(c)
[{'m0': 0}, {'m0': 1, 'm1': 1}]
>>> apply_guards = [list(t.items()) for t in negate(c)]
>>> apply_guards[1]
[('m0', 1), ('m1', 1)]
"""

from __future__ import annotations

from collections.abc import Sequence

#: Mutually exclusive conjunctions of ``event == value``.
Cond = list[dict[str, int]]

TRUE: Cond = [{}]
#: How many exclusive terms one condition may expand to.
MAX_TERMS = 256


def equals(events: Sequence[str | None], value: int) -> Cond:
    """Bits reading ``events`` (bit 0 first; None reads 0) spell ``value``."""
    if value < 0 or value >= 2 ** len(events):
        return []
    terms: dict[str, int] = {}
    for k, event in enumerate(events):
        want = (value >> k) & 1
        if event is None:
            if want:
                return []
            continue
        if terms.get(event, want) != want:
            return []
        terms[event] = want
    return [terms]


def _product(a: Cond, b: Cond) -> Cond:
    out: Cond = []
    for x in a:
        for y in b:
            if all(x.get(e, v) == v for e, v in y.items()):
                out.append({**x, **y})
    return out


def conjoin(a: Cond, b: Cond) -> Cond:
    """``a and b``.

    Raises:
        ValueError: more than :data:`MAX_TERMS` terms.
    """
    return _bounded(_product(a, b))


def negate(cond: Cond) -> Cond:
    """``not cond``, again as exclusive terms.

    Raises:
        ValueError: more than :data:`MAX_TERMS` terms.
    """
    result: Cond = [{}]
    for terms in cond:
        # not(t1 and ... and tn) = (not t1) or (t1 and not t2) or ...: exclusive parts
        parts: Cond = []
        prefix: dict[str, int] = {}
        for event, value in terms.items():
            parts.append({**prefix, event: 1 - value})
            prefix[event] = value
        result = conjoin(result, parts)
    return result


def disjoin(a: Cond, b: Cond) -> Cond:
    """``a or b`` (written ``a or (not a and b)`` so the terms stay exclusive)."""
    return _bounded(a + conjoin(negate(a), b))


def term_key(term: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """One conjunction's canonical form: its literals sorted by event."""
    return tuple(sorted(term.items()))


def simplify(cond: Cond) -> Cond:
    """``cond`` in canonical form: terms that differ in one literal's value merged, terms
    another absorbs dropped, terms in :func:`term_key` order (equal conditions compare equal).

    >>> simplify([{"a": 1, "b": 0}, {"a": 1, "b": 1}, {"a": 0, "c": 1}])
    [{'a': 0, 'c': 1}, {'a': 1}]
    """
    current = {frozenset(term.items()) for term in cond}
    changed = True
    while changed:
        changed = False
        for term in sorted(current, key=sorted):
            for event, value in sorted(term):
                twin = (term - {(event, value)}) | {(event, 1 - value)}
                if twin in current:
                    current -= {term, twin}
                    current.add(term - {(event, value)})
                    changed = True
                    break
            if changed:
                break
    absorbed = {t for t in current for u in current if u != t and u <= t}
    return [dict(sorted(term)) for term in sorted(current - absorbed, key=sorted)]


def meet(a: Cond, b: Cond) -> Cond:
    """``a and b``, simplified; unbounded (the caller checks the size it allows)."""
    return simplify(_product(a, b))


def join_disjoint(a: Cond, b: Cond) -> Cond:
    """``a or b`` for conditions that never hold together, simplified."""
    return simplify(a + b)


def _bounded(cond: Cond) -> Cond:
    if len(cond) > MAX_TERMS:
        raise ValueError(f"a condition that expands to more than {MAX_TERMS} exclusive cases")
    return cond
