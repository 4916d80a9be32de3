"""Conformance checks that every engine and every target passes, for their authors and
their tests.

:func:`assert_target_conformance` runs a target (:mod:`qmk.execution.target`) over the
exact-distribution corpus (:func:`target_corpus`), with seeded determinism and footprint
sanity; the rest of this page is the engines'.

:func:`assert_engine_conformance` runs one engine implementation through the contract of
:class:`qmk.engines.Engine`. It checks agreement with a dense numpy reference on random
small circuits; the reference is built here from the matrices of
:data:`~qmk.engines.gates.GATES`, independent of every engine. It checks measurement in
the X, Y and Z bases, seeded determinism, snapshots, resets, qubit reuse, sampling,
Pauli channels, and clear refusal of what the engine does not support.

All randomness is seeded, so a failure repeats; its message names the engine, the check, the
circuit (qubits by position, ``h 0; cx 0 1``) and what was expected.

>>> from qmk.engines.stabilizer import StabilizerEngine
>>> assert_engine_conformance(lambda seed: StabilizerEngine(seed=seed), seed=3, circuits=4)
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qmk.engines.base import Engine, EngineError
from qmk.engines.gates import BASES, GATES, Gate
from qmk.errors import REGISTRY

__all__ = [
    "CorpusProgram",
    "assert_engine_conformance",
    "assert_target_conformance",
    "target_corpus",
]

#: One gate of a test circuit: name, qubit positions (not engine handles), parameters.
_Op = tuple[str, tuple[int, ...], tuple[float, ...]]

#: Angles tried for each parameterised gate: quarter turns (also negative and past 2 pi),
#: which every engine should take, and generic angles, which only universal engines take.
_ANGLES = (
    0.0,
    math.pi / 2,
    math.pi,
    3 * math.pi / 2,
    -math.pi / 2,
    5 * math.pi / 2,
    math.pi / 4,
    0.3,
    -1.1,
    2.5,
)

#: Gates that prepare each eigenstate from |0>: (basis, outcome) -> gates.
_EIGENSTATES: dict[tuple[str, int], tuple[str, ...]] = {
    ("Z", 0): (),
    ("Z", 1): ("x",),
    ("X", 0): ("h",),
    ("X", 1): ("x", "h"),
    ("Y", 0): ("h", "s"),
    ("Y", 1): ("h", "sdg"),
}

#: Gates taking a basis' eigenstates to Z's (outcome kept): Y -> sdg then h.
_TO_Z: dict[str, tuple[str, ...]] = {"Z": (), "X": ("h",), "Y": ("sdg", "h")}

#: Below this, a probability counts as zero (float engines round; stabilizers are exact).
_ZERO = 1e-9

#: Each statistical check fails a correct engine with probability at most this.
_DELTA = 1e-9


def assert_engine_conformance(
    factory: Callable[[int], Engine],
    *,
    seed: int = 2024,
    qubits: int = 5,
    circuits: int = 20,
    shots: int = 2000,
    atol: float = 1e-7,
) -> None:
    """Check that the engines ``factory`` makes keep the :class:`~qmk.engines.Engine` contract.

    Checks, in order:

    - the protocol's shape (``name``, ``num_qubits``, ``allocate``; ``x h s sdg cx`` supported);
    - snapshot and restore bring back the state, the live qubits and the RNG, twice over;
    - reset, and free then allocate, give ``|0>``;
    - measuring X, Y and Z eigenstates gives their outcome and keeps them; collapsing onto
      the impossible outcome raises ``QE104`` and changes nothing; measuring half of a Bell
      pair collapses the other half;
    - every gate (and angle) the engine :meth:`~qmk.engines.Engine.supports` agrees with a
      dense numpy reference built from the matrices of :data:`~qmk.engines.gates.GATES`.
      Each is tried alone on every product of X, Y and Z eigenstates (prepared by
      collapses, so no gate is trusted), and in ``circuits`` random circuits of those
      gates on 1 to ``qubits`` qubits. The X, Y and Z marginals of every qubit and the
      exact joint distributions in the Z, X and Y bases (the chain rule through
      ``collapse``/``snapshot``/``restore``) agree to ``atol``;
    - freeing or resetting a qubit of a random state leaves the others as a Z measurement
      of it would;
    - :meth:`~qmk.engines.Engine.sample` keeps the state, has the right shape, dtype,
      marginals and total-variation distance from the reference's joint distribution;
    - a Pauli channel applies exactly the Pauli it reports, at the rates asked;
    - equal seeds repeat every outcome (measurements, channels, samples), different seeds
      do not;
    - every gate or angle the engine does not support, and an unknown gate, raise ``QE103``
      naming the gate, and leave the state unchanged;
    - a freed or never-allocated qubit and an unknown basis raise ``QE105``.

    Statistical bounds are set so that a correct engine fails each with probability below
    1e-9: Hoeffding for means; for total variation over ``K`` possible outcomes and ``N``
    shots, ``E[TVD] <= sqrt(K / N) / 2`` plus McDiarmid's ``sqrt(ln(1e9) / 2N)``. All
    randomness is seeded, so a pass or a failure repeats.

    Args:
        factory: ``factory(seed)`` returns a fresh, empty engine seeded with ``seed``.
        seed: seeds the random circuits and the engines (checks use ``seed``, ``seed + 1``...).
        qubits: the widest random circuit, 1 to 8 (the reference is dense).
        circuits: how many random circuits to compare with the reference.
        shots: shots per sampling check.
        atol: tolerance on exact probabilities.

    Raises:
        AssertionError: at the first broken promise, naming the engine, the check, the seed,
            the circuit (qubits by position) and the expected and actual values.
        ValueError: ``qubits`` out of range.

    >>> from qmk.engines.stabilizer import StabilizerEngine
    >>> assert_engine_conformance(lambda seed: StabilizerEngine(seed=seed), circuits=5)

    An engine whose ``h`` applies ``s`` fails:

    >>> class Broken(StabilizerEngine):
    ...     def apply(self, gate, qubits, params=()):
    ...         super().apply("s" if gate == "h" else gate, qubits, params)
    >>> assert_engine_conformance(lambda seed: Broken(seed=seed))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: stabilizer engine fails measurement of eigenstates (seed 2024): h on |0> ...
    """
    if not 1 <= qubits <= 8:
        raise ValueError(f"qubits must lie in 1..8 (the reference is dense), got {qubits}")
    ctx = _Context(factory=factory, seed=seed, qubits=qubits, shots=shots, atol=atol)
    _check_protocol(ctx)
    _check_snapshot_restore(ctx)
    _check_reset_and_reuse(ctx)
    _check_eigenstate_measurement(ctx)
    _check_measurement_collapses_partner(ctx)
    _check_each_gate(ctx)
    _check_reference_agreement(ctx, circuits)
    _check_free_and_reset_act_as_measurement(ctx)
    _check_sample(ctx)
    _check_pauli_channel(ctx)
    _check_seeded_determinism(ctx)
    _check_reseed(ctx)
    _check_refusals(ctx)
    _check_misuse(ctx)


# --------------------------------------------------------------------------- plumbing


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    factory: Callable[[int], Engine]
    seed: int
    qubits: int
    shots: int
    atol: float

    def engine(self, offset: int = 0) -> Engine:
        return self.factory(self.seed + offset)

    def fail(self, engine: Engine, check: str, detail: str) -> AssertionError:
        return AssertionError(
            f"{getattr(engine, 'name', type(engine).__name__)} engine fails {check} "
            f"(seed {self.seed}): {detail}"
        )


class _Dense:
    """The reference: a dense state vector, axis k = qubit position k, gates by tensordot."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.state: np.ndarray = np.zeros((2,) * n, dtype=np.complex128)
        self.state[(0,) * n] = 1

    def apply(self, gate: str, qubits: Sequence[int], params: Sequence[float] = ()) -> None:
        k = len(qubits)
        # qubit 0 of a gate is the most significant bit of its matrix index: axis 0 below.
        matrix = GATES[gate].matrix(tuple(params)).reshape((2,) * (2 * k))
        moved = np.tensordot(matrix, self.state, axes=(list(range(k, 2 * k)), list(qubits)))
        self.state = np.moveaxis(moved, list(range(k)), list(qubits))

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """P(outcome 1) = (1 - <P>) / 2 for the basis' Pauli P."""
        flipped = _Dense(self.n)
        flipped.state = self.state
        flipped.apply(basis.lower(), [qubit])
        expectation = float(np.vdot(self.state, flipped.state).real)
        return (1 - expectation) / 2

    def measured(self, qubit: int, outcome: int) -> tuple[float, _Dense]:
        """The probability of Z ``outcome`` on ``qubit``, and the other qubits after it
        (then ``|0>`` in place of ``qubit``, moved last)."""
        branch = np.take(self.state, outcome, axis=qubit)
        probability = float(np.vdot(branch, branch).real)
        after = _Dense(self.n)
        zero = np.zeros_like(branch)
        fresh = np.stack([branch, zero], axis=-1)
        after.state = fresh / math.sqrt(probability) if probability > _ZERO else fresh
        return probability, after

    def joint(self, basis: str = "Z") -> np.ndarray:
        """Outcome probabilities of every qubit measured in ``basis``; index bits are qubit
        positions, position 0 highest."""
        rotated = _Dense(self.n)
        rotated.state = self.state
        for q in range(self.n):
            for gate in _TO_Z[basis]:
                rotated.apply(gate, [q])
        return np.abs(rotated.state.reshape(-1)) ** 2


def _reference_fingerprint(reference: _Dense) -> np.ndarray:
    """:func:`_fingerprint` of the reference state."""
    marginals = [reference.probability(q, b) for q in range(reference.n) for b in BASES]
    return np.concatenate([np.array(marginals), *(reference.joint(b) for b in BASES)])


def _describe_difference(n: int, got: np.ndarray, want: np.ndarray) -> str:
    """Which entry of two fingerprints differs most, in words."""
    worst = int(np.argmax(np.abs(got - want)))
    if worst < 3 * n:
        q, basis = divmod(worst, 3)
        what = f"P(qubit {q} = 1 in {BASES[basis]})"
    else:
        basis, outcome = divmod(worst - 3 * n, 2**n)
        what = f"P(outcomes {outcome:0{n}b} in {BASES[basis]})"
    return f"{what} is {got[worst]:.6g}, expected {want[worst]:.6g}"


def _first_difference(first: Sequence[object], second: Sequence[object]) -> str:
    """Where two records of results part, in words."""
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return f"result #{index} is {b!r}, not {a!r}"
    return f"{len(second)} results, not {len(first)}"


def _render(circuit: Sequence[_Op]) -> str:
    def one(op: _Op) -> str:
        gate, qs, params = op
        head = f"{gate}({', '.join(f'{p:.4g}' for p in params)})" if params else gate
        return f"{head} {' '.join(map(str, qs))}"

    return "; ".join(one(op) for op in circuit) or "(no gates)"


def _param_options(gate: Gate) -> list[tuple[float, ...]]:
    """The parameter tuples the checks try on ``gate``: none, or each of the test angles."""
    return [(angle,) for angle in _ANGLES] if gate.params else [()]


def _menu(engine: Engine, width: int) -> dict[str, list[tuple[float, ...]]]:
    """Gates of at most ``width`` qubits the engine supports, with their supported params."""
    menu: dict[str, list[tuple[float, ...]]] = {}
    for name, gate in GATES.items():
        if gate.qubits > width:
            continue
        options = _param_options(gate)
        options = [params for params in options if engine.supports(name, params)]
        if options:
            menu[name] = options
    return menu


def _random_circuit(
    rng: np.random.Generator, menu: dict[str, list[tuple[float, ...]]], n: int, length: int
) -> list[_Op]:
    names = sorted(menu)
    circuit: list[_Op] = []
    for _ in range(length):
        name = names[int(rng.integers(len(names)))]
        options = menu[name]
        params = options[int(rng.integers(len(options)))]
        qs = tuple(int(q) for q in rng.permutation(n)[: GATES[name].qubits])
        circuit.append((name, qs, params))
    return circuit


def _prepare(engine: Engine, n: int, circuit: Sequence[_Op]) -> tuple[list[int], _Dense]:
    """Allocate ``n`` qubits, run ``circuit`` on the engine and on a reference."""
    handles = [engine.allocate() for _ in range(n)]
    reference = _Dense(n)
    for gate, qs, params in circuit:
        engine.apply(gate, [handles[q] for q in qs], params)
        reference.apply(gate, qs, params)
    return handles, reference


def _random_state(
    engine: Engine, rng: np.random.Generator, n: int
) -> tuple[list[int], _Dense, list[_Op]]:
    circuit = _random_circuit(rng, _menu(engine, n), n, 3 * n + 2)
    handles, reference = _prepare(engine, n, circuit)
    return handles, reference, circuit


def _marginals(engine: Engine, handles: Sequence[int]) -> np.ndarray:
    """P(1) of every qubit in Z, X and Y: shape ``(len(handles), 3)``."""
    return np.array([[engine.probability(q, basis) for basis in BASES] for q in handles])


def _joint(engine: Engine, handles: Sequence[int], basis: str = "Z") -> np.ndarray:
    """The exact joint distribution in ``basis`` by the chain rule: collapse, recurse, restore."""
    n = len(handles)
    out = np.zeros(2**n)

    def visit(k: int, index: int, weight: float) -> None:
        if k == n:
            out[index] = weight
            return
        p1 = engine.probability(handles[k], basis)
        branches = [(bit, p) for bit, p in ((0, 1 - p1), (1, p1)) if p > _ZERO]
        if len(branches) == 1:  # deterministic: collapsing would change nothing
            bit, p = branches[0]
            visit(k + 1, 2 * index + bit, weight * p)
            return
        saved = engine.snapshot()
        for bit, p in branches:
            engine.collapse(handles[k], bit, basis)
            visit(k + 1, 2 * index + bit, weight * p)
            engine.restore(saved)

    visit(0, 0, 1.0)
    return out


def _fingerprint(engine: Engine, handles: Sequence[int]) -> np.ndarray:
    """What the checks observe of a state: X/Y/Z marginals, then the joint Z, X and Y
    distributions, laid out as :func:`_reference_fingerprint` lays out the reference's."""
    parts = [_marginals(engine, handles).ravel()]
    parts.extend(_joint(engine, handles, basis) for basis in BASES)
    return np.concatenate(parts)


def _hoeffding(samples: int) -> float:
    """How far a mean of ``samples`` bits may stray from its expectation (two-sided)."""
    return math.sqrt(math.log(2 / _DELTA) / (2 * samples))


def _tvd_bound(support: int, samples: int) -> float:
    """A total-variation distance a correct empirical distribution stays below.

    E[TVD] <= 1/2 sum_x sqrt(p_x (1 - p_x) / N) <= 1/2 sqrt(K / N) over the K outcomes of
    non-zero probability (Cauchy-Schwarz); one shot moves the TVD by at most 1/N, so by
    McDiarmid P(TVD > E[TVD] + eps) <= exp(-2 N eps^2).
    """
    return 0.5 * math.sqrt(support / samples) + math.sqrt(math.log(1 / _DELTA) / (2 * samples))


def _expect_error(
    ctx: _Context, engine: Engine, check: str, name: str, what: str, call: Callable[[], object]
) -> EngineError:
    """Run ``call``; it must raise the EngineError whose code is named ``name``."""
    entry = REGISTRY.named(EngineError, name)
    expected = f"{entry.code} {entry.name}"
    try:
        call()
    except EngineError as error:
        if error.code != entry.code:
            raise ctx.fail(engine, check, f"{what} raised {error}, expected {expected}") from error
        return error
    except Exception as error:
        raise ctx.fail(
            engine, check, f"{what} raised {type(error).__name__}: {error}, expected {expected}"
        ) from error
    raise ctx.fail(engine, check, f"{what} returned normally, expected EngineError {expected}")


# --------------------------------------------------------------------------- checks


def _check_protocol(ctx: _Context) -> None:
    check = "the protocol"
    engine = ctx.engine()
    if not isinstance(engine, Engine):
        raise ctx.fail(engine, check, f"{type(engine).__name__} lacks Engine's methods")
    if not isinstance(engine.name, str) or not engine.name:
        raise ctx.fail(engine, check, f"name must be a non-empty str, got {engine.name!r}")
    if engine.num_qubits != 0:
        raise ctx.fail(engine, check, f"a fresh engine has {engine.num_qubits} live qubits")
    if engine.max_qubits < ctx.qubits:
        raise ctx.fail(engine, check, f"max_qubits {engine.max_qubits} < {ctx.qubits}")
    handles = [engine.allocate() for _ in range(ctx.qubits)]
    if len(set(handles)) != len(handles) or engine.num_qubits != len(handles):
        raise ctx.fail(engine, check, f"allocate gave {handles}; num_qubits is {engine.num_qubits}")
    for gate in ("x", "h", "s", "sdg", "cx"):
        if not engine.supports(gate):
            raise ctx.fail(engine, check, f"every engine applies {gate}; supports says no")


def _check_snapshot_restore(ctx: _Context) -> None:
    check = "snapshot/restore"
    rng = np.random.default_rng([ctx.seed, 1])
    engine = ctx.engine(1)
    n = min(3, ctx.qubits)
    handles, _, circuit = _random_state(engine, rng, n)
    before = _fingerprint(engine, handles)
    saved = engine.snapshot()

    def disturb() -> list[object]:
        record: list[object] = [engine.measure(q, basis) for q in handles for basis in BASES]
        record.append(engine.apply_pauli_channel(handles[0], 0.3, 0.3, 0.3))
        record.append(engine.sample(handles, 16).tolist())
        engine.apply("h", [handles[-1]])
        extra = engine.allocate()
        engine.apply("x", [extra])
        engine.free(handles[0])
        return record

    first = disturb()
    for attempt in (1, 2):
        engine.restore(saved)
        if engine.num_qubits != n:
            raise ctx.fail(
                engine, check, f"after restore {engine.num_qubits} qubits are live, not {n}"
            )
        after = _fingerprint(engine, handles)
        if not np.allclose(after, before, atol=ctx.atol):
            raise ctx.fail(
                engine,
                check,
                f"restore #{attempt} did not bring back the state of {_render(circuit)}",
            )
        again = disturb()
        if again != first:
            raise ctx.fail(
                engine,
                check,
                f"after restore #{attempt} the same calls gave different results "
                f"({_first_difference(first, again)}): the snapshot must include the RNG",
            )


def _check_reseed(ctx: _Context) -> None:
    check = "reseed"
    engine = ctx.engine(2)
    handles = [engine.allocate() for _ in range(3)]
    for q in handles:
        engine.apply("h", [q])
    saved = engine.snapshot()
    draws: dict[int, list[object]] = {}
    for seed in (11, 12, 11):
        engine.restore(saved)
        engine.reseed(seed)
        record = engine.sample(handles, 64).tolist()
        if seed in draws and draws[seed] != record:
            raise ctx.fail(engine, check, f"reseed({seed}) twice gave different samples")
        draws[seed] = record
    if draws[11] == draws[12]:
        raise ctx.fail(
            engine, check, "reseed(11) and reseed(12) after one restore gave the same samples"
        )
    engine.restore(saved)
    before = _fingerprint(engine, handles)
    engine.reseed(13)
    if not np.allclose(_fingerprint(engine, handles), before, atol=ctx.atol):
        raise ctx.fail(engine, check, "reseed changed the quantum state")


def _check_reset_and_reuse(ctx: _Context) -> None:
    check = "reset and qubit reuse"
    rng = np.random.default_rng([ctx.seed, 2])
    fresh = np.array([0.0, 0.5, 0.5])
    for trial in range(3):
        engine = ctx.engine(2 + trial)
        n = min(3, ctx.qubits)
        handles, _, circuit = _random_state(engine, rng, n)
        engine.apply("h", [handles[0]])
        if n > 1:
            engine.apply("cx", [handles[0], handles[1]])
        engine.reset(handles[-1])
        got = _marginals(engine, handles[-1:])[0]
        if not np.allclose(got, fresh, atol=ctx.atol):
            raise ctx.fail(
                engine,
                check,
                f"after {_render(circuit)} and reset of qubit {n - 1}, P(1) in Z/X/Y is "
                f"{got.tolist()}, expected {fresh.tolist()} (|0>)",
            )
        engine.free(handles[0])
        if engine.num_qubits != n - 1:
            raise ctx.fail(engine, check, f"after free num_qubits is {engine.num_qubits}")
        reused = engine.allocate()
        got = _marginals(engine, [reused])[0]
        if not np.allclose(got, fresh, atol=ctx.atol) or engine.measure(reused) != 0:
            raise ctx.fail(
                engine,
                check,
                f"free then allocate gave qubit {reused} with P(1) in Z/X/Y {got.tolist()}, "
                "expected |0>",
            )


def _check_free_and_reset_act_as_measurement(ctx: _Context) -> None:
    check = "free and reset of an entangled qubit"
    if ctx.qubits < 2:
        return
    rng = np.random.default_rng([ctx.seed, 9])
    for trial in range(8):
        action = ("free", "reset")[trial % 2]
        engine = ctx.engine(90 + trial)
        n = min(4, ctx.qubits)
        handles, reference, circuit = _random_state(engine, rng, n)
        victim = int(rng.integers(n))
        getattr(engine, action)(handles[victim])
        others = [h for k, h in enumerate(handles) if k != victim]
        # free: the others, then a fresh qubit; reset: the others, then the victim at |0>.
        after = [*others, engine.allocate() if action == "free" else handles[victim]]
        got = _fingerprint(engine, after)
        branches = [reference.measured(victim, outcome) for outcome in (0, 1)]
        wants = [_reference_fingerprint(state) for p, state in branches if p > _ZERO]
        if not any(np.allclose(got, want, atol=ctx.atol) for want in wants):
            raise ctx.fail(
                engine,
                check,
                f"after {_render(circuit)}, {action} of qubit {victim} (then "
                f"{'allocate' if action == 'free' else 'nothing'}) left a state that no "
                f"Z measurement of it gives: {_describe_difference(n, got, wants[0])} "
                "(qubits: the others in order, then the new |0>)",
            )


def _check_eigenstate_measurement(ctx: _Context) -> None:
    check = "measurement of eigenstates"
    for (basis, outcome), gates in _EIGENSTATES.items():
        engine = ctx.engine(10)
        q = engine.allocate()
        for gate in gates:
            engine.apply(gate, [q])
        prepared = f"{' then '.join(gates) or 'nothing'} on |0>"
        expected = np.array([0.5 if b != basis else float(outcome) for b in BASES])
        for step in ("before measuring", "after measuring"):
            got = _marginals(engine, [q])[0]
            if not np.allclose(got, expected, atol=ctx.atol):
                raise ctx.fail(
                    engine,
                    check,
                    f"{prepared} {step}: P(1) in Z/X/Y is {got.tolist()}, "
                    f"expected {expected.tolist()}",
                )
            for _ in range(2):
                got_outcome = engine.measure(q, basis)
                if got_outcome != outcome:
                    raise ctx.fail(
                        engine,
                        check,
                        f"{prepared} measured in {basis} gave {got_outcome}, expected {outcome}",
                    )
        _expect_error(
            ctx,
            engine,
            check,
            "outcome-impossible",
            f"{prepared}: collapse onto {1 - outcome} in {basis}",
            functools.partial(engine.collapse, q, 1 - outcome, basis),
        )
        engine.collapse(q, outcome, basis)
        got = _marginals(engine, [q])[0]
        if not np.allclose(got, expected, atol=ctx.atol):
            raise ctx.fail(
                engine,
                check,
                f"{prepared}: collapses onto {outcome} and {1 - outcome} (refused) in {basis} "
                f"left P(1) in Z/X/Y {got.tolist()}, expected {expected.tolist()}",
            )


def _check_measurement_collapses_partner(ctx: _Context) -> None:
    check = "measurement collapse"
    if ctx.qubits < 2:
        return
    # |Phi+> = (|00> + |11>)/sqrt 2 has ZZ = XX = +1 and YY = -1.
    agree = {"Z": True, "X": True, "Y": False}
    for basis, same in agree.items():
        for trial in range(4):
            engine = ctx.engine(20 + trial)
            a, b = engine.allocate(), engine.allocate()
            engine.apply("h", [a])
            engine.apply("cx", [a, b])
            outcome = engine.measure(a, basis)
            partner = engine.probability(b, basis)
            expected = float(outcome if same else 1 - outcome)
            if abs(partner - expected) > ctx.atol:
                raise ctx.fail(
                    engine,
                    check,
                    f"measuring half of a Bell pair (h 0; cx 0 1) in {basis} gave {outcome}, "
                    f"then P(partner = 1 in {basis}) is {partner}, expected {expected}",
                )


def _prepare_eigenstate(engine: Engine, qubit: int, basis: str, outcome: int) -> None:
    """Take a ``|0>`` qubit to the eigenstate by collapses alone, so no gate is trusted."""
    if basis == "Z":
        if outcome:
            engine.collapse(qubit, 0, "X")
            engine.collapse(qubit, 1, "Z")
    else:
        engine.collapse(qubit, outcome, basis)


def _check_each_gate(ctx: _Context) -> None:
    check = "each gate on eigenstate inputs"
    rng = np.random.default_rng([ctx.seed, 8])
    probe = ctx.engine(80)
    eigenstates = list(_EIGENSTATES)
    for name, options in _menu(probe, 3).items():
        width = GATES[name].qubits
        products = list(itertools.product(eigenstates, repeat=width))
        if width > 2:  # 216 products is slow on dense engines: Z inputs and a random 24
            z_inputs = [p for p in products if all(basis == "Z" for basis, _ in p)]
            picked = rng.choice(len(products), size=24, replace=False)
            products = z_inputs + [products[int(i)] for i in picked]
        for params in options:
            for inputs in products:
                engine = ctx.engine(80)
                handles = [engine.allocate() for _ in range(width)]
                reference = _Dense(width)
                for q, (basis, outcome) in enumerate(inputs):
                    _prepare_eigenstate(engine, handles[q], basis, outcome)
                    for gate in _EIGENSTATES[basis, outcome]:
                        reference.apply(gate, [q])
                engine.apply(name, handles, params)
                reference.apply(name, range(width), params)
                got, want = _fingerprint(engine, handles), _reference_fingerprint(reference)
                if not np.allclose(got, want, atol=ctx.atol):
                    state = " ".join(f"{'+-'[o]}{b}" for b, o in inputs)
                    shown = _render([(name, tuple(range(width)), params)])
                    raise ctx.fail(
                        engine,
                        check,
                        f"{shown} on eigenstates {state}: {_describe_difference(width, got, want)}",
                    )


def _check_reference_agreement(ctx: _Context, circuits: int) -> None:
    check = "agreement with the dense reference"
    rng = np.random.default_rng([ctx.seed, 3])
    for index in range(circuits):
        n = 1 + index % ctx.qubits
        engine = ctx.engine(100 + index)
        length = int(rng.integers(1, 4 * n + 3))
        circuit = _random_circuit(rng, _menu(engine, n), n, length)
        handles, reference = _prepare(engine, n, circuit)
        where = f"circuit {index} on {n} qubit(s): {_render(circuit)}"

        got = _fingerprint(engine, handles)
        want = _reference_fingerprint(reference)
        if not np.allclose(got, want, atol=ctx.atol):
            raise ctx.fail(engine, check, f"{where}: {_describe_difference(n, got, want)}")

        want_joint = reference.joint()
        order = [int(q) for q in rng.permutation(n)]
        shots = engine.sample([handles[q] for q in order], ctx.shots)
        # column j of the shots is qubit order[j]; reorder to positions 0..n-1 (0 highest).
        positions = np.empty_like(shots)
        positions[:, order] = shots
        counts = np.bincount(positions.astype(np.int64) @ (1 << np.arange(n)[::-1]), minlength=2**n)
        tvd = 0.5 * float(np.abs(counts / ctx.shots - want_joint).sum())
        bound = _tvd_bound(int((want_joint > _ZERO).sum()), ctx.shots)
        if tvd > bound:
            raise ctx.fail(
                engine,
                check,
                f"{where}: {ctx.shots} shots of sample() are {tvd:.3f} in total variation "
                f"from the reference, above the bound {bound:.3f}",
            )
        if not np.allclose(_fingerprint(engine, handles), got, atol=ctx.atol):
            raise ctx.fail(engine, check, f"{where}: sample() changed the state")


def _check_sample(ctx: _Context) -> None:
    check = "sample"
    rng = np.random.default_rng([ctx.seed, 4])
    engine = ctx.engine(30)
    n = min(4, ctx.qubits)
    handles, _, circuit = _random_state(engine, rng, n)
    before = _fingerprint(engine, handles)
    chosen = handles[::-1]
    shots = engine.sample(chosen, ctx.shots)
    if not isinstance(shots, np.ndarray) or shots.dtype != np.uint8:
        raise ctx.fail(engine, check, f"sample gave {type(shots).__name__}, not a uint8 array")
    if shots.shape != (ctx.shots, n) or not np.isin(shots, (0, 1)).all():
        raise ctx.fail(engine, check, f"sample gave shape {shots.shape} or values beyond 0/1")
    if not np.allclose(_fingerprint(engine, handles), before, atol=ctx.atol):
        raise ctx.fail(engine, check, f"sample changed the state of {_render(circuit)}")
    bound = _hoeffding(ctx.shots)
    for column, q in enumerate(chosen):
        mean, want = float(shots[:, column].mean()), engine.probability(q)
        if abs(mean - want) > bound:
            raise ctx.fail(
                engine,
                check,
                f"after {_render(circuit)}, column {column} (qubit {handles.index(q)}) has mean "
                f"{mean:.3f} but P(1) is {want:.3f} (bound {bound:.3f})",
            )
    for qs, count in (([], 5), (handles, 0)):
        got = engine.sample(qs, count)
        if got.shape != (count, len(qs)):
            raise ctx.fail(
                engine, check, f"sample of {len(qs)} qubits x {count} shots: shape {got.shape}"
            )


def _check_pauli_channel(ctx: _Context) -> None:
    check = "apply_pauli_channel"
    preparations: tuple[tuple[str, ...], ...] = ((), ("h",), ("h", "s"))
    for index, pauli in enumerate("XYZ"):
        probs = tuple(1.0 if p == pauli else 0.0 for p in "XYZ")
        for gates in preparations:
            engine = ctx.engine(40 + index)
            q = engine.allocate()
            reference = _Dense(1)
            for gate in gates:
                engine.apply(gate, [q])
                reference.apply(gate, [0])
            applied = engine.apply_pauli_channel(q, *probs)
            reference.apply(pauli.lower(), [0])
            want = np.array([reference.probability(0, b) for b in BASES])
            got = _marginals(engine, [q])[0]
            if applied != pauli or not np.allclose(got, want, atol=ctx.atol):
                raise ctx.fail(
                    engine,
                    check,
                    f"channel {probs} after {' '.join(gates) or 'nothing'} "
                    f"returned {applied!r} and left P(1) in Z/X/Y {got.tolist()}; expected "
                    f"{pauli!r} and {want.tolist()}",
                )
    engine = ctx.engine(43)
    q = engine.allocate()
    rates = {"I": 0.4, "X": 0.2, "Y": 0.3, "Z": 0.1}
    counts = dict.fromkeys(rates, 0)
    draws = 2000
    flipped = 0
    for _ in range(draws):
        applied = engine.apply_pauli_channel(q, rates["X"], rates["Y"], rates["Z"])
        if applied not in counts:
            raise ctx.fail(engine, check, f"returned {applied!r}, not one of I, X, Y, Z")
        counts[applied] += 1
        flipped ^= applied in ("X", "Y")
        if abs(engine.probability(q) - flipped) > ctx.atol:
            raise ctx.fail(engine, check, f"returned {applied!r} but did not apply it")
    bound = _hoeffding(draws)
    for pauli, rate in rates.items():
        if abs(counts[pauli] / draws - rate) > bound:
            raise ctx.fail(
                engine,
                check,
                f"{pauli} came {counts[pauli]} times in {draws} at rate {rate} (bound {bound:.3f})",
            )


def _check_seeded_determinism(ctx: _Context) -> None:
    check = "seeded determinism"

    def run(offset: int) -> tuple[list[object], Engine]:
        rng = np.random.default_rng([ctx.seed, 5])
        engine = ctx.engine(offset)
        n = min(3, ctx.qubits)
        handles, _, _ = _random_state(engine, rng, n)
        record: list[object] = []
        for _ in range(6):
            q = handles[int(rng.integers(n))]
            record.append(engine.measure(q, BASES[int(rng.integers(3))]))
            record.append(engine.apply_pauli_channel(q, 0.2, 0.2, 0.2))
            engine.apply("h", [q])
            record.append(engine.sample(handles, 8).tolist())
        plus = engine.allocate()
        for _ in range(64):
            engine.reset(plus)
            engine.apply("h", [plus])
            record.append(engine.measure(plus))
        return record, engine

    first, engine = run(50)
    second, _ = run(50)
    if first != second:
        raise ctx.fail(
            engine,
            check,
            f"two engines seeded alike differ ({_first_difference(first, second)})",
        )
    other, _ = run(51)
    if other[-64:] == first[-64:]:
        raise ctx.fail(engine, check, "seeds differing by one gave the same 64 measurements of |+>")


def _check_refusals(ctx: _Context) -> None:
    check = "refusal of unsupported gates"
    rng = np.random.default_rng([ctx.seed, 6])
    probe = ctx.engine(60)
    n = max(3, *(gate.qubits for gate in GATES.values()))  # wide enough for every gate
    for name, gate in GATES.items():
        options = _param_options(gate)
        for params in options:
            if probe.supports(name, params):
                continue
            engine = ctx.engine(60)
            handles, _, circuit = _random_state(engine, rng, n)
            before = _fingerprint(engine, handles)
            shown = _render([(name, (), params)]).strip()
            error = _expect_error(
                ctx,
                engine,
                check,
                "gate-unsupported",
                f"apply({shown}) which supports() refuses",
                functools.partial(engine.apply, name, handles[: gate.qubits], params),
            )
            if name not in str(error):
                raise ctx.fail(engine, check, f"the refusal {error} does not name {name}")
            if not np.allclose(_fingerprint(engine, handles), before, atol=ctx.atol):
                raise ctx.fail(
                    engine, check, f"refused {shown} changed the state of {_render(circuit)}"
                )
    engine = ctx.engine(61)
    q = engine.allocate()
    if engine.supports("no-such-gate"):
        raise ctx.fail(engine, check, "supports() accepts a gate that does not exist")
    _expect_error(
        ctx,
        engine,
        check,
        "gate-unsupported",
        "apply('no-such-gate')",
        lambda: engine.apply("no-such-gate", [q]),
    )


def _check_misuse(ctx: _Context) -> None:
    check = "misuse"
    engine = ctx.engine(70)
    q = engine.allocate()
    engine.free(q)
    stranger = 10**6 + 7
    _expect_error(
        ctx,
        engine,
        check,
        "engine-misuse",
        "apply to a freed qubit",
        lambda: engine.apply("x", [q]),
    )
    _expect_error(
        ctx,
        engine,
        check,
        "engine-misuse",
        f"probability of qubit {stranger}, never allocated",
        lambda: engine.probability(stranger),
    )
    live = engine.allocate()
    _expect_error(
        ctx,
        engine,
        check,
        "engine-misuse",
        "measure in basis 'W'",
        lambda: engine.measure(live, "W"),
    )


# =========================================================================== targets

#: The QVM op of each engine gate the target corpus draws from (the op table's, one op a
#: gate: TELEPORT_CNOT, a CNOT too, is left to its own tests).
_GATE_OPS = {
    "h": "APPLY_H",
    "s": "APPLY_S",
    "sdg": "APPLY_SDG",
    "x": "APPLY_X",
    "y": "APPLY_Y",
    "z": "APPLY_Z",
    "t": "APPLY_T",
    "tdg": "APPLY_TDG",
    "rx": "APPLY_RX",
    "ry": "APPLY_RY",
    "rz": "APPLY_RZ",
    "cx": "APPLY_CNOT",
    "cz": "APPLY_CZ",
    "swap": "APPLY_SWAP",
    "ccx": "APPLY_CCX",
    "ccz": "APPLY_CCZ",
}
#: Clifford+T rotations only (quarter and eighth turns): every target's corpus.
_TARGET_ANGLES = (math.pi / 2, -math.pi / 2, math.pi / 4, math.pi, 0.3)


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusProgram:
    """A program of the target corpus and its exact distribution (outcome -> probability,
    events in order, the first leftmost)."""

    name: str
    graph: dict[str, object]
    exact: dict[str, float]


def target_corpus(seed: int = 2024, *, circuits: int = 6, qubits: int = 3) -> list[CorpusProgram]:
    """The exact-distribution corpus every target runs (:func:`assert_target_conformance`).

    First ``circuits`` random circuits of the op table's gates on 1 to ``qubits`` qubits,
    each measured in Z at the end. Their exact distribution comes from the dense reference
    that the engines' conformance uses (:class:`_Dense`, the matrices of
    :data:`~qmk.engines.gates.GATES`). Then programs with a mid-circuit measurement whose
    outcome a guarded X feeds forward, and a reset, worked out by hand.

    >>> [p.name for p in target_corpus(circuits=2)][-2:]
    ['feed-forward', 'reset']
    >>> sum(target_corpus(circuits=1)[0].exact.values())  # doctest: +ELLIPSIS
    1.0...
    """
    rng = np.random.default_rng(seed)
    out: list[CorpusProgram] = []
    for k in range(circuits):
        n = 1 + k % qubits
        menu: dict[str, list[tuple[float, ...]]] = {
            name: [(a,) for a in _TARGET_ANGLES] if GATES[name].params else [()]
            for name in _GATE_OPS
            if GATES[name].qubits <= n
        }
        circuit = _random_circuit(rng, menu, n, 2 * n + 2)
        reference = _Dense(n)
        for gate, qs, params in circuit:
            reference.apply(gate, qs, params)
        probs = reference.joint()
        exact = {f"{i:0{n}b}": float(p) for i, p in enumerate(probs) if p > _ZERO}
        out.append(
            CorpusProgram(
                name=f"random-{k} ({_render(circuit)})", graph=_graph(n, circuit), exact=exact
            )
        )
    out.append(
        CorpusProgram(
            name="feed-forward",
            graph=_program(
                2,
                [
                    {"id": "h", "op": "APPLY_H", "vqs": ["q0"]},
                    {"id": "m0", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["m0"]},
                    {
                        "id": "fix",
                        "op": "APPLY_X",
                        "vqs": ["q1"],
                        "guard": {"event": "m0", "equals": 1},
                    },
                    {"id": "m1", "op": "MEASURE_Z", "vqs": ["q1"], "produces": ["m1"]},
                ],
                ["m0", "m1"],
            ),
            exact={"00": 0.5, "11": 0.5},
        )
    )
    out.append(
        CorpusProgram(
            name="reset",
            graph=_program(
                1,
                [
                    {"id": "x", "op": "APPLY_X", "vqs": ["q0"]},
                    {"id": "r", "op": "RESET", "vqs": ["q0"]},
                    {"id": "h", "op": "APPLY_H", "vqs": ["q0"]},
                    {"id": "t", "op": "APPLY_T", "vqs": ["q0"]},
                    {"id": "h2", "op": "APPLY_H", "vqs": ["q0"]},
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["m"]},
                ],
                ["m"],
            ),
            exact={"0": math.cos(math.pi / 8) ** 2, "1": math.sin(math.pi / 8) ** 2},
        )
    )
    return out


def _program(n: int, body: list[dict[str, object]], events: list[str]) -> dict[str, object]:
    """A QVM graph of ``n`` qubits ``q0..``: allocated, ``body``, freed."""
    vqs = [f"q{i}" for i in range(n)]
    nodes = [{"id": "alloc", "op": "ALLOC_LQ", "args": {"n": n}, "vqs": vqs}, *body]
    nodes.append({"id": "free", "op": "FREE_LQ", "vqs": vqs})
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": vqs, "chs": [], "events": events},
        "caps": ["CAP_ALLOC"],
    }


def _graph(n: int, circuit: Sequence[_Op]) -> dict[str, object]:
    """``circuit`` as a QVM graph: its gates, then every qubit measured in Z (event
    ``m<k>`` of qubit ``k``, in order)."""
    body: list[dict[str, object]] = []
    for k, (gate, qs, params) in enumerate(circuit):
        node: dict[str, object] = {
            "id": f"g{k}",
            "op": _GATE_OPS[gate],
            "vqs": [f"q{q}" for q in qs],
        }
        if params:
            node["args"] = {"theta": params[0]}
        body.append(node)
    events = [f"m{q}" for q in range(n)]
    body += [
        {"id": f"meas{q}", "op": "MEASURE_Z", "vqs": [f"q{q}"], "produces": [f"m{q}"]}
        for q in range(n)
    ]
    return _program(n, body, events)


def assert_target_conformance(
    target: object,
    *,
    seed: int = 2024,
    circuits: int = 6,
    qubits: int = 3,
    shots: int = 2000,
    options: dict[str, object] | None = None,
) -> None:
    """Check that ``target`` keeps the target protocol (:mod:`qmk.execution.target`).

    Over :func:`target_corpus` (its exact-distribution programs), with noise off:

    - each program either runs, or is refused with a coded :class:`~qmk.errors.QMKError`
      (a code of the registry; never another exception) when compiled; at least one runs;
    - a run's counts add up to its shots, fall on outcomes of non-zero probability only,
      and lie within the total-variation bound of the engines' conformance of the exact
      distribution (a correct target fails it with probability below 1e-9);
    - the result is the target's (``result.target``), and its JSON is plain data;
    - the same seed gives the same shots (counts and every shot's outcome, run twice
      from one executable), another seed other shots;
    - the footprint is a :class:`~qmk.execution.footprint.Footprint` of this target that
      round-trips through JSON, holds at least the program's live qubits, and makes at
      least one logical measurement per event.

    Args:
        target: the target (an instance: ``qmk.execution.target.get(name)``).
        seed: seeds the corpus and the runs.
        circuits, qubits: the random programs of the corpus and their widest.
        shots: shots per run.
        options: the target's options (``RunRequest.target_options``) for every run.

    Raises:
        AssertionError: at the first broken promise, naming the target and the program.
    """
    import json as _json

    from qmk.errors import QMKError
    from qmk.execution.footprint import Footprint
    from qmk.execution.request import RunRequest, program_digest

    name = str(getattr(target, "name", type(target).__name__))
    ran = 0
    for program in target_corpus(seed, circuits=circuits, qubits=qubits):
        text = _json.dumps(program.graph, sort_keys=True)
        request = RunRequest(
            program_digest=program_digest(text),
            shots=shots,
            seed=seed,
            noise=False,
            target=name,
            target_options=dict(options or {}),
        )
        where = f"{name} target, program {program.name}"
        try:
            read = target.read(program.graph)  # type: ignore[attr-defined]
            executable = target.compile(read, request)  # type: ignore[attr-defined]
        except QMKError as exc:
            assert exc.code in REGISTRY, f"{where}: refused with an unregistered code {exc.code}"
            continue
        except Exception as exc:  # an uncoded refusal breaks the contract
            raise AssertionError(f"{where}: refused without a code: {exc!r}") from exc
        ran += 1
        result = executable.run(shots, seed)
        _check_counts(where, result, program, shots)
        assert result.target == name, f"{where}: the result says target {result.target!r}"
        _json.dumps(result.to_json())
        again = executable.run(shots, seed)
        assert again.counts == result.counts and again.memory == result.memory, (
            f"{where}: the same seed {seed} gave other shots"
        )
        if len(program.exact) > 1:
            other = executable.run(shots, seed + 1)
            assert other.memory != result.memory, f"{where}: seeds {seed} and {seed + 1} agree"
        footprint = executable.footprint
        assert isinstance(footprint, Footprint) and footprint.target == name, (
            f"{where}: footprint {footprint!r} is not this target's"
        )
        assert Footprint.from_json(_json.loads(_json.dumps(footprint.to_json()))) == footprint
        live = len(program.graph["resources"]["vqs"])  # type: ignore[index]
        assert footprint.logical_qubits >= live, (
            f"{where}: the footprint holds {footprint.logical_qubits} qubits, the program {live}"
        )
        events = len(program.graph["resources"]["events"])  # type: ignore[index]
        assert footprint.measurements >= events, (
            f"{where}: the footprint measures {footprint.measurements} times, the program {events}"
        )
    assert ran, f"{name} target refused every program of the corpus"


def _check_counts(where: str, result: object, program: CorpusProgram, shots: int) -> None:
    counts = dict(result.counts)  # type: ignore[attr-defined]
    assert sum(counts.values()) == shots, f"{where}: {sum(counts.values())} shots of {shots}"
    impossible = sorted(set(counts) - set(program.exact))
    assert not impossible, f"{where}: outcomes of probability 0 came: {impossible[:4]}"
    tvd = 0.5 * sum(abs(counts.get(k, 0) / shots - p) for k, p in program.exact.items())
    bound = _tvd_bound(len(program.exact), shots)
    assert tvd <= bound, (
        f"{where}: total variation {tvd:.4f} from the exact distribution, above {bound:.4f}: "
        f"{counts} against {program.exact}"
    )
