"""Logical noise as flip masks: QMK draws the errors, the engine XORs their measurement flips
into noiseless samples (qmk.execution.batch, qmk.engines.stim_batch).

Three kinds of check:

- the flips of single errors: by hand (GHZ chain, teleportation through its
  corrections), and on random Clifford circuits with mid-circuit measurement, resets,
  product measurements and Paulis controlled by record bits against stim's reference
  sample of the circuit with the error written in (they may differ only by a gauge of
  the noiseless circuit: a vector its outcome distribution is invariant under);
- the error draw: per-site counts, Paulis, distinct shots;
- whole runs: the flip-mask path against exact theory (derived by hand from the
  plan's noise locations) and against the two earlier paths, heralded channels
  sampled by stim and trajectories on the statevector engine (chi-square at stated
  seeds, p > ``P_MIN``: a correct sampler fails one check with probability 1e-4).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

import msgspec
import numpy as np
import pytest
from scipy import stats

import qmk
from qmk.engines import EngineError
from qmk.engines.batch import BatchCircuit, Errors, Instruction, Kind
from qmk.engines.stim_batch import compile_batch
from qmk.execution import batch
from qmk.execution.locations import Locations
from qmk.execution.plan import Plan, build_plan
from qmk.qec.noise import Depolarizing
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify

SEED = 20_261_123
P_MIN = 1e-4
#: Logical error rates high enough to see: surface code d=1 on microsecond qubits, every
#: physical operation failing with 0.5% (each location: 1.5% per logical cycle).
PROFILE = "logical:surface_code(d=1)"
QUBIT = "qubit_gate_us_e3"
NOISE = Depolarizing(p=0.005)


# -- helpers ------------------------------------------------------------------------


def _gate(gate: str, *qubits: int, **fields: object) -> Instruction:
    return Instruction(kind=Kind.GATE, qubits=qubits, gate=gate, **fields)


def _measure(qubit: int, basis: str = "Z", invert: bool = False) -> Instruction:
    return Instruction(kind=Kind.MEASURE, qubits=(qubit,), basis=basis, invert=invert)


def _site(qubit: int) -> Instruction:
    return Instruction(kind=Kind.ERROR_SITE, qubits=(qubit,), probs=(0.01, 0.01, 0.01))


def _flips(circuit: BatchCircuit) -> np.ndarray:
    """Rows ``(site, pauli)`` of unpacked flips, pauli 0 X, 1 Y, 2 Z."""
    sampler = compile_batch(circuit)
    assert sampler is not None
    sites = np.arange(len(circuit.sites))
    packed = sampler.flips(sites)
    bits = np.unpackbits(packed, axis=1, count=circuit.num_records, bitorder="little")
    x, z = bits[0::2], bits[1::2]
    return np.stack([x, x ^ z, z], axis=1)


def _program(text: str) -> Plan:
    return build_plan(
        verify(assemble(text)),
        noise=True,
        qubit=QUBIT,
        default_profile=PROFILE,
        noise_model=NOISE,
    )


def _run(text: str, shots: int, seed: int, **options: object) -> qmk.RunResult:
    return qmk.run(
        assemble(text),
        shots=shots,
        seed=seed,
        qubit=QUBIT,
        profile=PROFILE,
        noise=NOISE,
        **options,
    )


def _batch_counts(plan: Plan, shots: int, seed: int, *, heralded: bool) -> dict[str, int]:
    """Counts of a plan sampled in bulk: with flip masks, or (``heralded``) by the path
    before them, every location a heralded channel stim samples."""
    lowered = batch.lower(plan, heralded=heralded)
    assert lowered is not None
    assert lowered.noise_sampling == ("heralded" if heralded else "flip-masks")
    sampler = compile_batch(lowered.circuit)
    assert sampler is not None
    bits, _ = batch.sample(lowered, sampler, shots, seed, np.random.default_rng(seed))
    return dict(Counter("".join(map(str, row)) for row in bits.tolist()))


def _heralded_counts(text: str, shots: int, seed: int) -> dict[str, int]:
    return _batch_counts(_program(text), shots, seed, heralded=True)


def _biased(plan: Plan) -> Plan:
    """The plan with its locations' rates replaced, alternately X-heavy and Z-heavy: the
    executor's logical noise is depolarizing, which would hide an X taken for a Z."""
    noise = tuple(
        msgspec.structs.replace(loc, px=0.02, py=0.004, pz=0.0)
        if i % 2
        else msgspec.structs.replace(loc, px=0.0, py=0.004, pz=0.03)
        for i, loc in enumerate(plan.noise)
    )
    return replace(plan, noise=Locations.of(noise, plan.noise.names))


def _pool(expected: list[float], *observed: list[int]) -> tuple[list[float], list[list[int]]]:
    """Pool cells, rarest first, until each pooled cell expects >= 5 (the chi-square
    approximation holds); the pooled expectations and, per sample, the pooled counts."""
    exp_bins: list[float] = []
    obs_bins: list[list[int]] = []
    e, o = 0.0, [0] * len(observed)
    for i in sorted(range(len(expected)), key=expected.__getitem__):
        e += expected[i]
        o = [acc + sample[i] for acc, sample in zip(o, observed, strict=True)]
        if e >= 5:
            exp_bins.append(e)
            obs_bins.append(o)
            e, o = 0.0, [0] * len(observed)
    if exp_bins:
        exp_bins[-1] += e
        obs_bins[-1] = [a + b for a, b in zip(obs_bins[-1], o, strict=True)]
    return exp_bins, obs_bins


def assert_fits(counts: Mapping[str, int], expected: Mapping[str, float]) -> None:
    """No impossible outcome, and a chi-square goodness of fit with p > P_MIN."""
    shots = sum(counts.values())
    impossible = {k: n for k, n in counts.items() if expected.get(k, 0.0) <= 1e-15}
    assert not impossible, f"outcomes of probability 0 appeared: {impossible}"
    keys = [k for k, p in expected.items() if p > 1e-15]
    total = sum(expected[k] for k in keys)
    exp_bins, obs_bins = _pool(
        [expected[k] * shots / total for k in keys], [counts.get(k, 0) for k in keys]
    )
    pvalue = stats.chisquare([o[0] for o in obs_bins], exp_bins).pvalue
    assert pvalue > P_MIN, f"chi-square p = {pvalue:.3g}: {dict(counts)} vs {dict(expected)}"


def assert_same(a: Mapping[str, int], b: Mapping[str, int]) -> None:
    """Two samples of one distribution: a chi-square test of homogeneity with p > P_MIN."""
    keys = sorted(set(a) | set(b))
    na, nb = sum(a.values()), sum(b.values())
    rates = [(a.get(k, 0) + b.get(k, 0)) / (na + nb) for k in keys]
    _, obs_bins = _pool(
        [r * min(na, nb) for r in rates], [a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]
    )
    if len(obs_bins) < 2:
        return
    pvalue = stats.chi2_contingency(np.array(obs_bins)).pvalue
    tvd = 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in keys)
    assert pvalue > P_MIN, f"chi-square p = {pvalue:.3g}, TVD {tvd:.4f}"


def _positions(plan: Plan) -> dict[str, int]:
    return {node.id: k for k, node in enumerate(plan.steps.nodes)}


def _exact(width: int, start: Mapping[int, float], flips: list[tuple[float, int]]) -> dict:
    """The distribution of ``width`` bits: ``start`` (bit vectors as ints, bit i the i-th
    event) XOR, for each ``(p, mask)``, ``mask`` with probability ``p`` independently."""
    dist = np.zeros(1 << width)
    for v, p in start.items():
        dist[v] = p
    index = np.arange(1 << width)
    for p, mask in flips:
        dist = (1 - p) * dist + p * dist[index ^ mask]
    return {format(v, f"0{width}b")[::-1]: float(dist[v]) for v in index if dist[v] > 0}


def _gf2_rank(rows: list[int]) -> int:
    basis: list[int] = []
    for row in rows:
        for b in basis:
            row = min(row, row ^ b)
        if row:
            basis.append(row)
    return len(basis)


# -- the flips of single errors -------------------------------------------------------


def test_an_x_error_in_a_ghz_chain_flips_its_qubit_and_every_later_one_and_z_flips_none():
    n = 5
    instructions = [_gate("h", 0)]
    for i in range(1, n):
        instructions += [_site(i - 1), _gate("cx", i - 1, i)]
    instructions += [_measure(i) for i in range(n)]
    flips = _flips(BatchCircuit(num_qubits=n, instructions=tuple(instructions)))
    for site in range(n - 1):  # before CX(site, site + 1), on qubit ``site``
        later = [int(i >= site) for i in range(n)]
        assert flips[site, 0].tolist() == later  # X
        assert flips[site, 1].tolist() == later  # Y: its X part
        assert flips[site, 2].tolist() == [0] * n  # Z commutes with every Z measurement


def test_an_error_before_teleportation_flips_the_bell_outcome_and_through_feed_forward_the_output():
    # msg=0, alice=1, bob=2: Bell pair (alice, bob), Bell measurement of (msg, alice) as
    # ZZ-after-CX/H (records 0: x, 1: z), corrections X^z Z^x on bob, bob measured (2).
    circuit = BatchCircuit(
        num_qubits=3,
        instructions=(
            _gate("x", 0),
            _gate("h", 1),
            _gate("cx", 1, 2),
            _site(0),
            _gate("cx", 0, 1),
            _gate("h", 0),
            _measure(0),
            _measure(1),
            _gate("x", 2, controls=(1,)),
            _gate("z", 2, controls=(0,)),
            _measure(2),
        ),
    )
    flips = _flips(circuit)
    # X on msg: reaches alice through the CX (flips z), becomes Z on msg after H (no x
    # flip); the flipped z toggles bob's X correction, so the output flips: X|1> = |0>.
    assert flips[0, 0].tolist() == [0, 1, 1]
    # Z on msg: becomes X after H and flips x, which toggles bob's Z correction: a Z on
    # bob, invisible to his Z measurement.
    assert flips[0, 2].tolist() == [1, 0, 0]
    assert flips[0, 1].tolist() == [1, 1, 1]


def _random_circuit(rng: np.random.Generator, qubits: int, length: int) -> BatchCircuit:
    """A random Clifford circuit with sites everywhere, mid-circuit measurements in every
    basis (some inverted), product measurements, resets and Paulis controlled by the XOR
    of earlier record bits (some inverted: they fire on 0).

    Every measurement is made twice, with a site and sometimes a Pauli controlled by the
    first outcome in between, so that half the outcomes are fixed by the others: errors
    then show (a circuit whose every outcome is a fair coin hides every error's flips
    in its gauge)."""
    out: list[Instruction] = []
    records = 0

    def controlled(q: int, controls: tuple[int, ...]) -> Instruction:
        pauli = str(rng.choice(["x", "y", "z"]))
        return _gate(pauli, q, controls=controls, invert=bool(rng.random() < 0.3))

    for _ in range(length):
        q = int(rng.integers(qubits))
        pick = rng.random()
        if pick < 0.35:
            out.append(_gate(str(rng.choice(["h", "s", "sdg", "x", "y", "z"])), q))
        elif pick < 0.6:
            a, b = (int(v) for v in rng.choice(qubits, size=2, replace=False))
            out.append(_gate(str(rng.choice(["cx", "cz", "swap"])), a, b))
        elif pick < 0.8:
            if rng.random() < 0.6:
                measure = _measure(q, str(rng.choice(["X", "Y", "Z"])), bool(rng.random() < 0.3))
            else:
                a, b = (int(v) for v in rng.choice(qubits, size=2, replace=False))
                paulis = "".join(rng.choice(list("XYZ"), size=2))
                measure = Instruction(kind=Kind.MEASURE_PRODUCT, qubits=(a, b), paulis=paulis)
            between = [_site(int(rng.choice(measure.qubits)))]
            if rng.random() < 0.5:
                between.append(controlled(int(rng.choice(measure.qubits)), (records,)))
            out += [measure, *between, measure]
            records += 2
        elif pick < 0.85:
            out.append(Instruction(kind=Kind.RESET, qubits=(q,)))
        elif records:
            size = int(rng.integers(1, min(records, 2) + 1))
            out.append(controlled(q, tuple(int(c) for c in rng.choice(records, size, False))))
        out.append(_site(int(rng.integers(qubits))))
    out += [_measure(q) for q in range(qubits)] * 2
    return BatchCircuit(num_qubits=qubits, instructions=tuple(out))


@pytest.mark.parametrize("case", range(6))
def test_flips_match_stims_reference_sample_with_the_error_written_in_up_to_a_gauge(case: int):
    rng = np.random.default_rng(SEED + case)
    circuit = _random_circuit(rng, qubits=4, length=30)
    records = circuit.num_records
    assert records <= 120
    clean = compile_batch(circuit)
    assert clean is not None
    # The noiseless outcomes are uniform on reference + V; V is spanned by sample
    # differences (4000 shots miss a direction of V with probability < 2^-3000).
    bits, _ = clean.sample(4000, SEED, tuple(range(records)), ())
    weights = 1 << np.arange(records, dtype=object)
    as_int = [int(np.dot(row.astype(object), weights)) for row in bits]
    gauge = [v ^ as_int[0] for v in as_int]
    rank = _gf2_rank(gauge)
    reference = int(np.dot(clean.circuit.reference_sample().astype(object), weights))
    flips = _flips(circuit)
    for k, site in enumerate(circuit.sites):
        position = next(i for i, ins in enumerate(circuit.instructions) if ins is site)
        for p, pauli in enumerate("xyz"):
            written = list(circuit.instructions)
            written[position] = _gate(pauli, *site.qubits)
            noisy = compile_batch(replace(circuit, instructions=tuple(written)))
            assert noisy is not None
            with_error = int(np.dot(noisy.circuit.reference_sample().astype(object), weights))
            mask = int(np.dot(flips[k, p].astype(object), weights))
            # mask is right iff with_error ^ reference ^ mask lies in V
            assert _gf2_rank([*gauge, with_error ^ reference ^ mask]) == rank, (case, k, pauli)


def test_engine_drawn_noise_stays_out_of_the_flips_and_heralds_keep_their_record_bits():
    def circuit(noisy: bool) -> BatchCircuit:
        channel = Kind.PAULI_CHANNEL if noisy else Kind.GATE
        herald = Instruction(kind=Kind.HERALDED_PAULI_CHANNEL, qubits=(0,), probs=(0.5, 0, 0))
        return BatchCircuit(
            num_qubits=2,
            instructions=(
                _site(0),
                Instruction(kind=channel, qubits=(0,), gate="i", probs=(0.5, 0.0, 0.0)),
                *([herald] if noisy else [Instruction(kind=Kind.MEASURE, qubits=(1,))]),
                _gate("cx", 0, 1),
                _measure(0),
                _measure(1),
            ),
        )

    assert _flips(circuit(True)).tolist() == _flips(circuit(False)).tolist()
    # X on qubit 0 flips both final measurements (records 1 and 2), never the herald's bit.
    assert _flips(circuit(True))[0, 0].tolist() == [0, 1, 1]


def test_errors_outside_the_circuit_are_refused_with_a_coded_error():
    sampler = compile_batch(BatchCircuit(num_qubits=1, instructions=(_site(0), _measure(0))))
    assert sampler is not None
    bad = Errors(shots=np.array([0]), sites=np.array([1]), paulis=np.array([1]))
    with pytest.raises(EngineError, match="engine-misuse"):
        sampler.sample(10, SEED, (0,), (), bad)
    with pytest.raises(EngineError, match="engine-misuse"):
        sampler.sample(
            10,
            SEED,
            (0,),
            (),
            Errors(shots=np.array([10]), sites=np.array([0]), paulis=np.array([1])),
        )


def test_errors_xor_their_flips_into_exactly_the_shots_they_strike():
    circuit = BatchCircuit(
        num_qubits=2,
        instructions=(_site(0), _gate("cx", 0, 1), _site(1), _measure(0), _measure(1)),
    )
    sampler = compile_batch(circuit)
    assert sampler is not None
    errors = Errors(
        shots=np.array([1, 2, 2, 3, 4, 4]),
        sites=np.array([0, 0, 1, 1, 0, 1]),
        paulis=np.array([1, 2, 1, 3, 1, 1]),
    )
    bits, _ = sampler.sample(6, SEED, (0, 1), (), errors)
    # X at site 0 flips both; X or Y at site 1 flips the second; Z flips nothing.
    assert bits.tolist() == [[0, 0], [1, 1], [1, 0], [0, 0], [1, 0], [0, 0]]


# -- the error draw -------------------------------------------------------------------


def test_drawn_errors_strike_each_shot_at_most_once_per_site_at_the_sites_rates():
    shots = 50_000
    probs = np.array(
        [
            [0.0, 0.0, 0.0],
            [1e-4, 0.0, 0.0],
            [0.01, 0.02, 0.03],
            [0.002, 0.002, 0.002],
            [0.3, 0, 0.1],
        ]
    )
    errors = batch.draw_errors(probs, shots, np.random.default_rng(SEED))
    keys = errors.sites * shots + errors.shots
    assert len(np.unique(keys)) == len(errors)  # distinct shots per site
    assert errors.shots.min() >= 0 and errors.shots.max() < shots
    per_site = np.bincount(errors.sites, minlength=len(probs))
    assert per_site[0] == 0
    for site in range(1, len(probs)):
        p = probs[site].sum()
        assert stats.binomtest(int(per_site[site]), shots, p).pvalue > P_MIN
        paulis = np.bincount(errors.paulis[errors.sites == site], minlength=4)[1:]
        live = probs[site] > 0
        assert not paulis[~live].any()
        if live.sum() > 1:
            expected = probs[site][live] / p * per_site[site]
            assert stats.chisquare(paulis[live], expected).pvalue > P_MIN


def test_drawn_errors_strike_shots_uniformly_in_sparse_and_dense_sites():
    shots = 4000
    rng = np.random.default_rng(SEED)
    for rate in (0.01, 0.5):  # below and above the dense threshold (1/8 of the shots)
        struck = np.concatenate(
            [batch.draw_errors(np.array([[rate, 0, 0]]), shots, rng).shots for _ in range(50)]
        )
        buckets = np.bincount(struck * 20 // shots, minlength=20)
        assert stats.chisquare(buckets).pvalue > P_MIN


def test_the_same_seed_draws_the_same_errors():
    probs = np.array([[0.01, 0.01, 0.01]] * 10)
    a = batch.draw_errors(probs, 1000, np.random.default_rng(7))
    b = batch.draw_errors(probs, 1000, np.random.default_rng(7))
    assert (a.shots == b.shots).all() and (a.sites == b.sites).all()
    assert (a.paulis == b.paulis).all()


def test_a_draw_where_no_site_strikes_is_empty_and_draws_only_the_counts():
    probs = np.full((8, 3), 1e-15)  # logical error rates: nearly every run
    drawn = np.random.default_rng(SEED)
    errors = batch.draw_errors(probs, 100, drawn)
    counted = np.random.default_rng(SEED)
    assert not counted.binomial(100, probs.sum(axis=1)).any()
    assert len(errors) == 0
    assert errors.shots.dtype == errors.sites.dtype == errors.paulis.dtype == np.int64
    assert drawn.bit_generator.state == counted.bit_generator.state


@pytest.mark.parametrize("shots", [1, 100, 5000, 60_000])
def test_a_draw_site_by_site_draws_what_one_draw_on_the_array_draws(shots, monkeypatch):
    """numpy's binomial on an array of rates loops over them with the generator's one
    state: few sites are drawn one by one (cheaper), with the same errors and the
    generator left where the array draw leaves it."""
    rows = [
        [1e-9, 0.0, 0.0],
        [1e-3, 2e-3, 0.0],
        [0.1, 0.1, 0.0],
        [0.4, 0.4, 0.4],  # capped at certainty
        [0.0, 0.0, 0.0],
        [0.02, 0.0, 0.03],
    ]
    rates = batch.SiteRates.of(rows)
    for seed in range(20):
        by_site = np.random.default_rng(seed)
        drawn = batch._draw_errors(rates, shots, by_site)
        monkeypatch.setattr(batch, "_SCALAR_SITES", 0)  # the array draw
        at_once = np.random.default_rng(seed)
        expected = batch._draw_errors(rates, shots, at_once)
        monkeypatch.undo()
        for field in ("shots", "sites", "paulis"):
            assert np.array_equal(getattr(drawn, field), getattr(expected, field))
        assert by_site.bit_generator.state == at_once.bit_generator.state


def test_many_sites_at_low_rates_drawn_over_every_cell_strike_each_at_its_rate():
    # 3,000 sites in three rate classes, 200 shots: about 0.1 candidate cells a site,
    # so the draw takes every (site, shot) cell at once (_thinned), not a draw a site
    shots, per_class = 200, 1000
    classes = np.array([[1e-4, 0.0, 2e-4], [4e-5, 4e-5, 4e-5], [0.0, 5e-4, 0.0]])
    rates = batch.SiteRates.of(np.repeat(classes, per_class, axis=0))
    assert batch._thinned(rates, shots, np.random.default_rng(SEED)) is not None
    rng = np.random.default_rng(SEED)
    drawn = [batch._draw_errors(rates, shots, rng) for _ in range(40)]
    sites = np.concatenate([e.sites for e in drawn])
    struck = np.concatenate([e.shots for e in drawn])
    paulis = np.concatenate([e.paulis for e in drawn])
    for errors in drawn:  # each (site, shot) at most once, in site order
        keys = errors.sites * shots + errors.shots
        assert len(np.unique(keys)) == len(errors) and (np.diff(errors.sites) >= 0).all()
    cells = 40 * per_class * shots
    by_class = sites // per_class
    for k, row in enumerate(classes):
        mine = by_class == k
        assert stats.binomtest(int(mine.sum()), cells, row.sum()).pvalue > P_MIN
        counts = np.bincount(paulis[mine], minlength=4)[1:]
        live = row > 0
        assert not counts[~live].any()
        if live.sum() > 1:
            expected = row[live] / row.sum() * mine.sum()
            assert stats.chisquare(counts[live], expected).pvalue > P_MIN
    # uniform over the shots, and over the sites of a class
    assert stats.chisquare(np.bincount(struck * 10 // shots, minlength=10)).pvalue > P_MIN
    within = np.bincount((sites % per_class)[by_class == 2] * 10 // per_class, minlength=10)
    assert stats.chisquare(within).pvalue > P_MIN


def test_a_draw_over_every_cell_is_taken_only_where_its_candidates_are_few():
    # candidates expected past half the sites, or a rate past the dense threshold: a
    # draw a site
    many = batch.SiteRates.of(np.full((100, 3), 1e-3))
    assert batch._thinned(many, 100, np.random.default_rng(SEED)) is not None
    assert batch._thinned(many, 1000, np.random.default_rng(SEED)) is None
    dense = batch.SiteRates.of(np.r_[np.full((99, 3), 1e-9), [[0.2, 0.0, 0.0]]])
    assert batch._thinned(dense, 1, np.random.default_rng(SEED)) is None


def test_a_rate_no_site_has_bounds_no_draw_over_every_cell():
    # the table's dense row is no site's: the bound is the sites' largest rate
    table = np.array([[0.2, 0.0, 0.0], [1e-6, 1e-6, 0.0], [3e-6, 0.0, 0.0]])
    rates = batch.SiteRates.of_table(table, np.r_[np.ones(50, np.int64), np.full(50, 2)])
    assert rates.bound == 3e-6
    assert batch._thinned(rates, 100, np.random.default_rng(SEED)) is not None
    assert batch.SiteRates.of_table(table, np.zeros(0, np.int64)).bound == 0.0


def test_a_draw_over_every_cell_makes_no_column_of_every_sites_rate_and_draws_the_same():
    # a million sites' capped rates are made only where a draw a site reads them all:
    # the candidates' rates read alone are the same numbers, so the same errors
    table = np.array([[1e-4, 0.0, 2e-4], [4e-5, 4e-5, 0.0]])
    channels = np.tile(np.arange(2), 5000)
    lazy = batch.SiteRates.of_table(table, channels)
    made = batch.SiteRates.of_table(table, channels)
    assert np.array_equal(made.capped, np.minimum(table.sum(axis=1), 1.0)[channels])
    a = batch._draw_errors(lazy, 200, np.random.default_rng(SEED))
    b = batch._draw_errors(made, 200, np.random.default_rng(SEED))
    assert not lazy.made and len(a) > 0
    for field in ("shots", "sites", "paulis"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    some = np.array([0, 7, 9999])
    assert np.array_equal(lazy.capped_at(some), made.capped[some])


# -- whole runs -----------------------------------------------------------------------


def ghz(n: int, *, fence: bool = False) -> str:
    """GHZ-n measured; ``fence``: a ``FENCE_EPOCH`` (a pause point) before the
    measurements."""
    qs = " ".join(f"q{i}" for i in range(n))
    lines = [".caps CAP_ALLOC", f".vqs {qs}", ".events " + " ".join(f"m{i}" for i in range(n))]
    lines.append("alloc: ALLOC_LQ " + ", ".join(f"vq:q{i}" for i in range(n)))
    lines.append("h: APPLY_H vq:q0")
    lines += [f"c{i}: APPLY_CNOT vq:q{i - 1}, vq:q{i}" for i in range(1, n)]
    lines += ["pause: FENCE_EPOCH"] if fence else []
    lines += [f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(n)]
    lines.append("free: FREE_LQ " + ", ".join(f"vq:q{i}" for i in range(n)))
    return "\n".join(lines) + "\n"


def ghz_exact(n: int, plan: Plan) -> dict[str, float]:
    """By hand: an X or Y on q_j flips m_j if it comes before m_j, and every later m_k
    too if it comes before CNOT(q_j, q_j+1) (the chain copies it on); a Z commutes with
    every Z measurement and with the chain's controls. On q0 before H, nothing matters:
    H turns X into Z, and Z|0> = |0>."""
    at = _positions(plan)
    flips: list[tuple[float, int]] = []
    for loc in plan.noise:
        j = int(loc.qubit[1:])
        when = loc.step - 0.5 if loc.before else loc.step + 0.5
        mask = 0
        if j == 0 and when < at["h"]:
            continue
        if when < at[f"m{j}"]:
            mask |= 1 << j
            if j + 1 < n and when < at[f"c{j + 1}"]:
                mask |= sum(1 << k for k in range(j + 1, n))
        if mask:
            flips.append((loc.px + loc.py, mask))
    return _exact(n, {0: 0.5, (1 << n) - 1: 0.5}, flips)


def parity_rounds(rounds: int, *, guards: bool) -> str:
    """A random data bit (q in |+>) read out ``rounds`` times through an ancilla a (CNOT,
    mid-circuit measurement s_i), the ancilla returned to |0> by feed-forward on s_i
    (COND_PAULI, or an X guarded by s_i), then q measured (m)."""
    events = " ".join(f"s{i}" for i in range(rounds)) + " m"
    lines = [".caps CAP_ALLOC", ".vqs q a", f".events {events}", "alloc: ALLOC_LQ vq:q, vq:a"]
    lines.append("h: APPLY_H vq:q")
    for i in range(rounds):
        lines.append(f"c{i}: APPLY_CNOT vq:q, vq:a")
        lines.append(f"s{i}: MEASURE_Z vq:a, out:s{i}")
        if guards:
            lines.append(f"r{i}: APPLY_X vq:a when ev:s{i} == 1")
        else:
            lines.append(f'r{i}: COND_PAULI vq:a, in:s{i}, mask="X"')
    lines += ["m: MEASURE_Z vq:q, out:m", "free: FREE_LQ vq:q, vq:a"]
    return "\n".join(lines) + "\n"


def parity_exact(rounds: int, plan: Plan) -> dict[str, float]:
    """By hand: an X or Y on q flips every s_i whose CNOT comes later, and m if before
    it; an X or Y on a flips the first s_i after it only (the feed-forward on s_i then
    returns a to |0>); Z errors commute with every Z measurement and CNOT control, and a
    Z on a reaches q as a Z. On q before H nothing matters (H turns X into Z, and
    Z|0> = |0>). Bits: s_0 .. s_{rounds-1}, m."""
    at = _positions(plan)
    flips: list[tuple[float, int]] = []
    for loc in plan.noise:
        when = loc.step - 0.5 if loc.before else loc.step + 0.5
        mask = 0
        if loc.qubit == "q" and when < at["h"]:
            continue
        if loc.qubit == "q":
            mask = sum(1 << i for i in range(rounds) if when < at[f"c{i}"])
            if when < at["m"]:
                mask |= 1 << rounds
        else:
            later = [i for i in range(rounds) if when < at[f"s{i}"]]
            if later:
                mask = 1 << later[0]
        if mask:
            flips.append((loc.px + loc.py, mask))
    width = rounds + 1
    return _exact(width, {0: 0.5, (1 << width) - 1: 0.5}, flips)


def teleport() -> str:
    return """
.caps CAP_ALLOC
.vqs msg alice bob
.events x z m
alloc: ALLOC_LQ vq:msg, vq:alice, vq:bob
prep: APPLY_H vq:msg
prep2: APPLY_S vq:msg
bell: APPLY_H vq:alice
bell2: APPLY_CNOT vq:alice, vq:bob
mb: MEASURE_BELL vq:msg, vq:alice, out:x, out:z
fx: COND_PAULI vq:bob, in:z, mask="X"
fz: COND_PAULI vq:bob, in:x, mask="Z"
m: MEASURE_Y vq:bob, out:m
free: FREE_LQ vq:msg, vq:alice, vq:bob
"""


SHOTS = 40_000


def test_ghz_with_logical_noise_gives_its_exact_distribution_by_every_path():
    n = 5
    text = ghz(n)
    exact = ghz_exact(n, _program(text))
    assert sum(p for k, p in exact.items() if k not in ("00000", "11111")) > 0.1  # visible
    flipped = _run(text, SHOTS, SEED)
    assert (flipped.telemetry.mode, flipped.telemetry.noise_sampling) == (
        "stim-batch",
        "flip-masks",
    )
    assert_fits(flipped.counts, exact)
    heralded = _heralded_counts(text, SHOTS, SEED + 1)
    assert_fits(heralded, exact)
    assert_same(flipped.counts, heralded)
    # on the statevector: its density matrix, and (a pause point before the
    # measurements) its trajectories, one per error pattern
    dense = _run(text, SHOTS // 4, SEED + 2, engine="statevector")
    assert dense.telemetry.noise_sampling == "exact"
    assert_same(flipped.counts, dense.counts)
    paused = ghz(n, fence=True)
    trajectories = _run(paused, SHOTS // 4, SEED + 6, engine="statevector")
    assert trajectories.telemetry.noise_sampling == "per-pattern"
    assert_fits(trajectories.counts, ghz_exact(n, _program(paused)))


def test_ghz_with_its_errors_drawn_over_every_cell_gives_its_exact_distribution(monkeypatch):
    # every draw over the cells (its candidates bounded by the largest rate): the same
    # exact distribution as a draw a site
    n = 5
    plan = _biased(_program(ghz(n)))
    assert len(plan.noise) > batch._SCALAR_SITES
    assert max(loc.total for loc in plan.noise) <= batch._DENSE
    monkeypatch.setattr(batch, "_THINNED", float("inf"))
    assert_fits(_batch_counts(plan, SHOTS, SEED + 13, heralded=False), ghz_exact(n, plan))


@pytest.mark.parametrize("guards", [False, True], ids=["cond_pauli", "guarded_x"])
def test_mid_circuit_parity_rounds_with_feed_forward_give_their_exact_distribution(guards: bool):
    rounds = 3
    text = parity_rounds(rounds, guards=guards)
    plan = _program(text)
    exact = parity_exact(rounds, plan)
    assert 1 - exact["0000"] - exact["1111"] > 0.1
    flipped = _run(text, SHOTS, SEED + 3)
    assert flipped.telemetry.noise_sampling == "flip-masks"
    assert_fits(flipped.counts, exact)
    heralded = _heralded_counts(text, SHOTS, SEED + 4)
    assert_same(flipped.counts, heralded)
    trajectories = _run(text, SHOTS // 4, SEED + 5, engine="statevector")
    assert_same(flipped.counts, trajectories.counts)


@pytest.mark.parametrize("program", ["ghz", "parity"])
def test_biased_noise_gives_its_exact_distribution_with_flip_masks_and_heralds(program: str):
    if program == "ghz":
        plan = _biased(_program(ghz(5)))
        exact = ghz_exact(5, plan)
    else:
        plan = _biased(_program(parity_rounds(3, guards=False)))
        exact = parity_exact(3, plan)
    flipped = _batch_counts(plan, SHOTS, SEED + 11, heralded=False)
    assert_fits(flipped, exact)
    heralded = _batch_counts(plan, SHOTS, SEED + 12, heralded=True)
    assert_fits(heralded, exact)
    assert_same(flipped, heralded)


def test_a_teleported_cnot_with_its_biased_gadget_noise_agrees_with_the_earlier_paths():
    # The gadget's errors reach the data as X on the target and Z on the control only;
    # MEASURE_BELL reads XX (Z errors) and ZZ (X errors) of the Bell pair it makes.
    text = """
.caps CAP_ALLOC CAP_TELEPORT
.vqs c t
.events xx zz
alloc: ALLOC_LQ vq:c, vq:t
h: APPLY_H vq:c
tc: TELEPORT_CNOT vq:c, vq:t
mb: MEASURE_BELL vq:c, vq:t, out:xx, out:zz
free: FREE_LQ vq:c, vq:t
"""
    assert {loc.cause for loc in _program(text).noise} >= {"teleport"}
    flipped = _run(text, SHOTS, SEED + 13)
    assert flipped.telemetry.noise_sampling == "flip-masks"
    assert flipped.counts["00"] < SHOTS * 0.95
    assert_same(flipped.counts, _heralded_counts(text, SHOTS, SEED + 14))
    assert_same(flipped.counts, _run(text, SHOTS // 4, SEED + 15, engine="statevector").counts)


def test_teleportation_with_logical_noise_agrees_with_the_earlier_paths():
    flipped = _run(teleport(), SHOTS, SEED + 6)
    assert flipped.telemetry.noise_sampling == "flip-masks"
    assert_same(flipped.counts, _heralded_counts(teleport(), SHOTS, SEED + 7))
    assert_same(flipped.counts, _run(teleport(), SHOTS // 4, SEED + 8, engine="statevector").counts)
    # the noiseless answer: bob ends in S H |0> = |+i>, Y outcome 0; noise makes it 1 sometimes
    ones = sum(n for k, n in flipped.counts.items() if k[2] == "1")
    assert 0 < ones < SHOTS * 0.2


def test_a_measurement_dependent_non_pauli_falls_back_to_trajectories_and_says_so():
    text = """
.caps CAP_ALLOC
.vqs q a
.events s m
alloc: ALLOC_LQ vq:q, vq:a
h: APPLY_H vq:a
s: MEASURE_Z vq:a, out:s
g: APPLY_H vq:q when ev:s == 1
m: MEASURE_Z vq:q, out:m
free: FREE_LQ vq:q, vq:a
"""
    assert batch.lower(_program(text)) is None
    result = _run(text, 2000, SEED + 9)
    assert (result.engine, result.telemetry.mode) == ("stabilizer", "trajectories")
    assert result.telemetry.noise_sampling == "per-pattern"


def test_noise_off_samples_no_error_and_says_so():
    result = qmk.run(assemble(ghz(3)), shots=1000, seed=SEED, noise=False)
    assert result.telemetry.noise_sampling == "off"
    assert result.telemetry.injected_logical_errors == 0
    assert set(result.counts) == {"000", "111"}


def test_flip_mask_runs_are_reproducible_and_count_every_injected_error():
    text = ghz(4)
    a, b = _run(text, 5000, SEED + 10), _run(text, 5000, SEED + 10)
    assert a.counts == b.counts
    assert a.telemetry.injected_logical_errors == b.telemetry.injected_logical_errors > 0
    rates = np.array([loc.total for loc in _program(text).noise])
    mean, sd = 5000 * rates.sum(), np.sqrt(5000 * (rates * (1 - rates)).sum())
    assert abs(a.telemetry.injected_logical_errors - mean) < 5 * sd


def test_a_run_in_many_chunks_gives_the_exact_distribution_of_its_per_location_rates():
    # GHZ-5 with every location's own X-heavy or Z-heavy rates (_biased), sampled in ten
    # chunks: the flips are found once for the run, each chunk takes the errors of its
    # own shots, and the rows stay packed until the end.
    n = 5
    plan = _biased(_program(ghz(n)))
    lowered = batch.lower(plan)
    assert lowered is not None and lowered.noise_sampling == "flip-masks"
    sampler = compile_batch(lowered.circuit)
    assert sampler is not None
    bits, injected, _ = batch.sample_chunked(
        lowered, sampler, SHOTS, SEED + 11, np.random.default_rng(SEED + 12), chunk=SHOTS // 10
    )
    rates = np.array([loc.total for loc in plan.noise])
    assert abs(injected - SHOTS * rates.sum()) < 5 * np.sqrt(SHOTS * (rates * (1 - rates)).sum())
    counts = Counter("".join(map(str, row)) for row in bits.tolist())
    exact = ghz_exact(n, plan)
    assert 1 - exact["0" * n] - exact["1" * n] > 0.2  # the errors are visible
    assert_fits(counts, exact)
