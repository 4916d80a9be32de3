"""Big runs in parts: a run's shot groups dealt out, run anywhere, merged exactly.

A ``trajectories`` run (:mod:`qmk.execution.trajectories`) samples every shot's logical
error pattern first (cheap, from the run's seed), groups the shots by pattern, and
simulates each group once. Each group draws from streams of its own, derived from the
run's seed and the group's *index* (:meth:`~qmk.execution.trajectories.Runner._stream`),
never from what ran before it. So the groups may run anywhere, in any order: part ``k``
of ``n`` (:class:`Part`) samples the patterns again, runs its share of the groups
(:func:`deal`: even costs, a group's cost its simulation and its shots' sampling; every
part deals alike, from the groups' sizes) under their own indices, and returns the rows
of their shots; :func:`merge` puts
the parts' rows back in shot order. The merged result *is* the whole run's, bit for
bit, for any ``n``: the counts, every shot's outcome, the injected errors.

The unit of work is a group, not a range of shots: a group's shots split among its
branches (binomially, by the group's size) and take their rows in an order drawn for the
whole group, so part of a group cannot be run alone without changing the answer. The
error-free group (most shots) is one simulation plus its sampling; the groups hit by
logical errors are the many simulations a noisy run costs, and those spread evenly. A
run with one group (noiseless) does not split: part 0 runs it, the others have nothing
to do. A ``stim-batch`` or ``final-state`` run is one pass: part 0 does every shot.

>>> from qmk.qvm.asm import assemble
>>> from qmk.execution import run
>>> program = assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0, vq:q1
... h: APPLY_H vq:q0
... t: APPLY_T vq:q0
... c: APPLY_CNOT vq:q0, vq:q1
... m0: MEASURE_Z vq:q0, out:m0
... m1: MEASURE_Z vq:q1, out:m1
... ''')
>>> whole = run(program, shots=400, seed=5, profile="logical:surface_code(d=3)")
>>> pieces = [run(program, shots=400, seed=5, profile="logical:surface_code(d=3)", part=p)
...           for p in split(3)]
>>> merged = merge(pieces)
>>> merged.counts == whole.counts, merged.memory == whole.memory
(True, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qmk.engines import EngineError
from qmk.execution.result import RunResult, keyed_counts
from qmk.execution.trajectories import Control, Runner

if TYPE_CHECKING:
    from qmk.execution.microcode import Spliced
    from qmk.execution.plan import Plan

#: How the telemetry of parts adds up (field names of ``Telemetry`` and its JSON):
#: summed over the parts ...
SUMMED = (
    "shots",
    "injected_logical_errors",
    "simulations",
    "checkpoints",
    "rollbacks",
    "rollback_gates",
)
#: ... the longest part's (the parts run side by side) ...
LONGEST = ("wall_time_s",)
#: ... every part's, one after the other; every other field is the program's and the
#: same in every part (the first part's is kept).
JOINED = ("preempted_at_epochs",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """Part ``index`` of ``of`` of a run (see the module docstring).

    >>> Part(index=1, of=3).to_json()
    [1, 3]
    >>> Part.from_json([1, 3]) == Part(index=1, of=3)
    True
    """

    index: int
    of: int

    def __post_init__(self) -> None:
        for name in ("index", "of"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise EngineError.of("engine-misuse", f"part {name} must be an integer")
        if self.of < 1 or not 0 <= self.index < self.of:
            raise EngineError.of(
                "engine-misuse",
                f"part must be (k, n) with 0 <= k < n, got ({self.index}, {self.of})",
            )

    def groups(self, count: int) -> range:
        """The indices of the groups this part runs, of ``count`` groups of one cost."""
        return range(self.index, count, self.of)

    def share(self, sizes: Sequence[int]) -> list[int]:
        """The indices of the groups this part runs (ascending), of groups of ``sizes``
        shots: dealt so that the parts' costs are even (:func:`deal`).

        >>> [Part(index=k, of=2).share([9_000_000, 1, 1, 1, 1]) for k in range(2)]
        [[0], [1, 2, 3, 4]]
        """
        return deal(sizes, self.of)[self.index]

    def to_json(self) -> list[int]:
        return [self.index, self.of]

    @classmethod
    def from_json(cls, value: Any) -> Part:
        """A part from ``[k, n]`` (or a :class:`Part`).

        Raises:
            EngineError: not two integers with 0 <= k < n.
        """
        if isinstance(value, Part):
            return value
        if hasattr(value, "index") and hasattr(value, "of"):  # a Part of another import
            return cls(index=value.index, of=value.of)
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise EngineError.of("engine-misuse", f"part must be [k, n], got {value!r}")
        return cls(index=value[0], of=value[1])


#: Sampling this many shots of a group's final state costs about one simulation: a
#: group's cost is ``1 + shots / SHOTS_PER_SIMULATION`` (measured at 20 qubits:
#: ``docs/engines.md``).
SHOTS_PER_SIMULATION = 50_000


def deal(sizes: Sequence[int], parts: int) -> list[list[int]]:
    """Deal groups of ``sizes`` shots out to ``parts`` parts: each group in turn, the
    dearest first, to the part with the least cost so far (the lowest index on a tie).

    Every group costs a simulation, and the error-free group (most of the shots) a
    long sampling too: dealt in turn (group ``k`` to part ``k mod n``), it made part 0
    the last to finish. The deal depends on the sizes only, so every part computes it
    alike. Returns each part's group indices, ascending.

    >>> deal([150_000, 1, 1, 1, 1, 1], 2)  # the first costs 4 simulations
    [[0, 5], [1, 2, 3, 4]]
    """
    costs = [1.0 + size / SHOTS_PER_SIMULATION for size in sizes]
    load = [0.0] * parts
    shares: list[list[int]] = [[] for _ in range(parts)]
    for group in sorted(range(len(sizes)), key=lambda g: (-costs[g], g)):
        target = min(range(parts), key=lambda k: (load[k], k))
        load[target] += costs[group]
        shares[target].append(group)
    return [sorted(share) for share in shares]


def split(count: int) -> list[Part]:
    """The ``count`` parts of a run, in order.

    >>> [p.to_json() for p in split(2)]
    [[0, 2], [1, 2]]
    """
    if count < 1:
        raise EngineError.of("engine-misuse", f"a run splits into >= 1 parts, not {count}")
    return [Part(index=k, of=count) for k in range(count)]


class PartRunner(Runner):
    """A :class:`~qmk.execution.trajectories.Runner` of some groups of a run, each drawing
    from its streams under its index in the whole run (``ids``), so its rows are the
    whole run's. Its checkpoints resume it as any runner's do."""

    def __init__(self, *args: Any, ids: Sequence[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ids = tuple(ids)

    def _stream(self, group: int, which: int) -> np.random.Generator:
        return super()._stream(self.ids[group], which)


def run_groups(
    plan: Plan,
    groups: Mapping[tuple[tuple[int, str], ...], np.ndarray],
    part: Part,
    *,
    engine: Callable[[], Any],
    ops: Callable[[tuple[tuple[int, str], ...]], Spliced],
    shots: int,
    seed: np.random.SeedSequence,
    control: Control | None,
    key: str,
    engine_name: str,
    resume: Any = None,
) -> tuple[np.ndarray, np.ndarray, int, Any]:
    """Run ``part``'s share of a trajectories run's ``groups`` (pattern -> shots).

    Returns ``(rows, shots of the rows, injected errors, progress)``: the rows of the
    part's shots in ascending shot order, the errors injected into them.
    """
    every = list(groups.items())
    ids = part.share([len(members) for _, members in every])
    mine = [every[g] for g in ids]
    work = [(ops(pattern), members) for pattern, members in mine]
    runner = PartRunner(
        plan, engine, work, shots, seed, control, key=key, engine_name=engine_name, ids=ids
    )
    if resume is not None:
        from qmk.execution.checkpoint import resume as resume_runner

        resume_runner(runner, resume)
    bits = runner.run()
    taken, injected = shares_taken(mine)
    return bits[taken], taken, injected, runner.progress


def shares_taken(mine: Sequence[tuple[Sequence[Any], np.ndarray]]) -> tuple[np.ndarray, int]:
    """The shots of a part's groups ``mine`` (``(errors, shots)`` pairs) in ascending
    order, and how many errors are injected into them."""
    if not mine:
        return np.zeros(0, dtype=np.int64), 0
    taken = np.sort(np.concatenate([members for _, members in mine]))
    return taken, sum(len(pattern) * len(members) for pattern, members in mine)


_NOT_ONCE = "the parts do not hold every shot of one run once (a part missing, or twice)"


def merge(results: Sequence[RunResult]) -> RunResult:
    """The run whose parts are ``results`` (each from ``run(..., part=p)``, one per part,
    any order): rows back in shot order, counts and telemetry added up.

    Raises:
        EngineError: not the parts of one run (another seed or program, a part missing
            or twice).
    """
    if not results:
        raise EngineError.of("engine-misuse", "nothing to merge")
    first = results[0]
    if any(r.seed != first.seed or r.events != first.events for r in results):
        raise EngineError.of("engine-misuse", "the parts are of different runs")
    shots = sum(r.shots for r in results)
    bits = np.zeros((shots, len(first.events)), dtype=np.uint8)
    seen = np.zeros(shots, dtype=bool)
    for result in results:
        taken = result.rows if result.rows is not None else np.arange(result.shots)
        if len(taken) and (taken.max() >= shots or seen[taken].any()):
            raise EngineError.of("engine-misuse", _NOT_ONCE)
        seen[taken] = True
        bits[taken] = result.bits
    if not seen.all():
        raise EngineError.of("engine-misuse", _NOT_ONCE)
    telemetry = merge_telemetry([r.telemetry for r in results])
    return dataclasses.replace(
        first,
        counts=keyed_counts(bits, first.layout),
        shots=shots,
        telemetry=telemetry,
        shot_bits=bits,
        rows=None,
    )


def merge_telemetry(parts: Sequence[Any]) -> Any:
    """One ``Telemetry`` of the parts' (see :data:`SUMMED`, :data:`LONGEST`, :data:`JOINED`)."""
    changes: dict[str, Any] = {}
    for name in SUMMED:
        changes[name] = sum(getattr(t, name) for t in parts)
    for name in LONGEST:
        changes[name] = max(getattr(t, name) for t in parts)
    for name in JOINED:
        changes[name] = tuple(x for t in parts for x in getattr(t, name))
    resumed = [t.resumed_from_epoch for t in parts if t.resumed_from_epoch is not None]
    changes["resumed_from_epoch"] = resumed[0] if resumed else None
    return dataclasses.replace(parts[0], **changes)


def merge_json(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """:func:`merge` of the parts' ``RunResult.to_json()`` (no rows travel: counts and
    telemetry only). The merged counts are the whole run's.

    >>> a = {"counts": {"0": 3}, "shots": 3, "seed": 1, "engine": "statevector",
    ...      "events": ["m"], "telemetry": {"shots": 3, "simulations": 1}}
    >>> b = {**a, "counts": {"0": 1, "1": 2}, "telemetry": {"shots": 3, "simulations": 2}}
    >>> merged = merge_json([a, b])
    >>> merged["counts"], merged["shots"], merged["telemetry"]["simulations"]
    ({'0': 4, '1': 2}, 6, 3)
    """
    if not results:
        raise EngineError.of("engine-misuse", "nothing to merge")
    first = results[0]
    if any(r.get("seed") != first.get("seed") for r in results):
        raise EngineError.of("engine-misuse", "the parts are of different runs")
    counts: dict[str, int] = {}
    for result in results:
        for key, value in result["counts"].items():
            counts[key] = counts.get(key, 0) + int(value)
    telemetry = dict(first.get("telemetry") or {})
    metrics = [r.get("telemetry") or {} for r in results]
    for name in SUMMED:
        if name in telemetry:
            telemetry[name] = sum(m.get(name, 0) for m in metrics)
    for name in LONGEST:
        if name in telemetry:
            telemetry[name] = max(m.get(name, 0) for m in metrics)
    for name in JOINED:
        if name in telemetry:
            telemetry[name] = [x for m in metrics for x in m.get(name, ())]
    if "resumed_from_epoch" in telemetry:
        resumed = [
            m["resumed_from_epoch"] for m in metrics if m.get("resumed_from_epoch") is not None
        ]
        telemetry["resumed_from_epoch"] = resumed[0] if resumed else None
    return {
        **first,
        "counts": dict(sorted(counts.items())),
        "shots": sum(int(r["shots"]) for r in results),
        "telemetry": telemetry,
    }


__all__ = [
    "JOINED",
    "LONGEST",
    "SHOTS_PER_SIMULATION",
    "SUMMED",
    "Part",
    "PartRunner",
    "deal",
    "merge",
    "merge_json",
    "merge_telemetry",
    "run_groups",
    "shares_taken",
    "split",
]
