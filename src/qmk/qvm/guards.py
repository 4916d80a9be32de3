"""The verifier's lifetimes under guards: a guarded node (one that runs only where its
guard's events have given values) that starts or ends a handle's lifetime leaves the
handle in one state where the guard holds and another where it does not
(:class:`Guarded`), and each later use is checked on the side(s) it runs on.

:class:`qmk.qvm.walk._Lifetimes` imports this at the first guarded node that touches a
handle: a kernel that verifies programs without guards holds none of it. Its findings
are the lifetimes' own (``reopen``, ``after_end``, ...) and ``guarded-lifetime``
(QV208); ``qmk validate --prove`` follows every valuation (:mod:`qmk.qvm.prove`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmk.qvm.graph import node_at

if TYPE_CHECKING:
    from qmk.qvm.graph import Guard
    from qmk.qvm.walk import _Lifetimes

#: A handle's state in its lifetime: never started, live, or ended.
_NEW, _LIVE, _ENDED = 0, 1, 2
#: The finding a use in each state that does not allow it makes (of ``words``).
_FAULT = {
    (_LIVE, "opens"): "reopen",
    (_ENDED, "closes"): "reclose",
    (_NEW, "closes"): "before_start",
    (_ENDED, "uses"): "after_end",
    (_NEW, "uses"): "before_start",
}


def _after(state: int, use: str) -> int:
    """The state after a faultless ``use`` (opens, closes or uses) of a handle in ``state``."""
    return _LIVE if use == "opens" else _ENDED if use == "closes" else state


@dataclass(slots=True)
class Guarded:
    """A handle a guarded node opened or closed: in state ``when`` where the guard's
    ``terms`` all hold, ``otherwise`` where they do not (the two differ)."""

    terms: frozenset[tuple[str, int]]
    when: int
    otherwise: int
    at: int  # the guarded node

    @property
    def may_be_live(self) -> bool:
        """Whether the handle is live on some side of the guard."""
        return _LIVE in (self.when, self.otherwise)

    def exact_complement(self, terms: frozenset[tuple[str, int]]) -> bool:
        """Whether ``terms`` hold exactly where this guard's do not: one term each, the
        same event, the other value."""
        if len(terms) != 1 or len(self.terms) != 1:
            return False
        ((event, value),) = terms
        return (event, 1 - value) in self.terms


def _contradicts(terms: frozenset[tuple[str, int]], other: frozenset[tuple[str, int]]) -> bool:
    """Whether the two conjunctions cannot both hold (one event, two values)."""
    return any((event, 1 - value) in other for event, value in terms)


def _state(lifetimes: _Lifetimes, name: str) -> int:
    """The certain state of ``name`` (one no guarded node left in two)."""
    return _LIVE if name in lifetimes.live else _ENDED if name in lifetimes.ended else _NEW


def _set(lifetimes: _Lifetimes, name: str, state: int, index: int) -> None:
    """A certain state again (``index``: the node that made it)."""
    lifetimes.guarded.pop(name, None)
    lifetimes.live.pop(name, None)
    lifetimes.ended.pop(name, None)
    if state == _LIVE:
        lifetimes.live[name] = index
    elif state == _ENDED:
        lifetimes.ended[name] = index


def guarded_touch(
    lifetimes: _Lifetimes, name: str, index: int, use: str, guard: Guard | None
) -> int:
    """:meth:`~qmk.qvm.walk._Lifetimes.touch` of a guarded node, or of a handle a
    guarded node left in two states (:class:`Guarded`): +1 when it may start a
    lifetime, -1 when it ends one."""
    terms: frozenset[tuple[str, int]] = (
        frozenset() if guard is None else frozenset((t.event, t.equals) for t in guard.terms)
    )
    held = lifetimes.guarded.get(name)
    if held is None:  # a certain state, met by a guarded node
        before = _state(lifetimes, name)
        after = _after(before, use)
        if (before, use) in _FAULT or after == before:  # as unguarded: wrong, or no change
            return _plain(lifetimes, name, index, use)
        _set(lifetimes, name, _NEW, index)
        lifetimes.guarded[name] = Guarded(terms=terms, when=after, otherwise=before, at=index)
        return 1 if after == _LIVE else 0  # a handle that may be live counts as live
    was_live = _LIVE in (held.when, held.otherwise)
    seen: tuple[int, ...]
    if terms and terms >= held.terms:  # it runs only where the guard held
        side, seen, exact = "when", (held.when,), terms == held.terms
    elif terms and _contradicts(terms, held.terms):  # only where it did not
        side, seen, exact = "otherwise", (held.otherwise,), held.exact_complement(terms)
    else:  # on either side: unguarded, it acts on both alike
        side, seen, exact = "both", (held.when, held.otherwise), guard is None
    faults = [state for state in seen if (state, use) in _FAULT]
    if faults and side != "both":  # wrong wherever it runs: the finding of its kind
        _fault(lifetimes, name, index, use, seen[0], held)
        return 0
    if faults or (use != "uses" and not exact):
        _undecided(lifetimes, name, index, use, held, faults)
        return 0
    after = _after(seen[0], use)
    if side == "both":  # unguarded and faultless on both sides: a certain state again
        _set(lifetimes, name, after, index)
        return int(after == _LIVE) - int(was_live)
    if side == "when":
        held.when = after
    else:
        held.otherwise = after
    if held.when == held.otherwise:
        _set(lifetimes, name, after, index)
    return int(_LIVE in (held.when, held.otherwise)) - int(was_live)


def _plain(lifetimes: _Lifetimes, name: str, index: int, use: str) -> int:
    """:meth:`~qmk.qvm.walk._Lifetimes.touch` of a handle in a certain state, as if
    unguarded."""
    return lifetimes.touch(name, index, use == "opens", use == "closes")


def _fault(
    lifetimes: _Lifetimes, name: str, index: int, use: str, state: int, held: Guarded
) -> None:
    words = lifetimes.words
    changed = words["started"] if held.when == _LIVE else words["ended"]
    side = "there" if state == held.when else "where that guard does not hold"
    lifetimes.findings.add(
        words[_FAULT[(state, use)]],
        f"{words['what']} {name!r} is {changed} by {node_at(lifetimes.nodes, held.at)} only "
        f"where its guard holds, and this node runs only {side}",
        index,
    )


def _undecided(
    lifetimes: _Lifetimes, name: str, index: int, use: str, held: Guarded, faults: list[int]
) -> None:
    words = lifetimes.words
    where = node_at(lifetimes.nodes, held.at)
    if faults:
        fault = _FAULT[(faults[0], use)]
        what = {
            "reopen": f"{words['reopen']} (it may be {words['live']})",
            "reclose": f"{words['reclose']} (it may be {words['ended']})",
            "after_end": f"{words['after_end']} (it may be {words['ended']})",
            "before_start": f"{words['before_start']} (it may not be {words['started']})",
        }[fault]
    else:
        what = "a change of its lifetime under another guard"
    changed = words["started"] if held.when == _LIVE else words["ended"]
    lifetimes.findings.add(
        "guarded-lifetime",
        f"{words['what']} {name!r} is {changed} by {where} only where its guard holds, "
        f"and this node may run on either side of that guard: {what}",
        index,
    )


__all__ = ["Guarded", "guarded_touch"]
