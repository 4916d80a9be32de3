"""The engine conformance checker: real engines pass it, and broken ones fail it."""

from __future__ import annotations

import importlib.util

import pytest

from qmk.engines import EngineError
from qmk.engines.stabilizer import StabilizerEngine
from qmk.testing import assert_engine_conformance


def test_the_stabilizer_engine_conforms():
    assert_engine_conformance(lambda seed: StabilizerEngine(seed=seed), seed=101)


def test_the_stabilizer_engine_conforms_on_other_seeds_and_wider_circuits():
    for seed in (7, 8):
        assert_engine_conformance(
            lambda s: StabilizerEngine(seed=s), seed=seed, qubits=6, circuits=12
        )


@pytest.mark.skipif(
    importlib.util.find_spec("qmk.engines.statevector") is None,
    reason="qmk.engines.statevector is not written yet",
)
def test_the_statevector_engine_conforms():
    from qmk.engines.statevector import StatevectorEngine

    assert_engine_conformance(lambda seed: StatevectorEngine(seed=seed), seed=102)


# Engines broken on purpose, one promise each: the checker must notice every one.


class HadamardAppliesS(StabilizerEngine):
    def apply(self, gate, qubits, params=()):
        super().apply("s" if gate == "h" else gate, qubits, params)


class RzTurnsTheWrongWay(StabilizerEngine):
    def apply(self, gate, qubits, params=()):
        super().apply(gate, qubits, [-p for p in params] if gate == "rz" else params)


class SwapIsCx(StabilizerEngine):
    def apply(self, gate, qubits, params=()):
        super().apply("cx" if gate == "swap" else gate, qubits, params)


class SampleMeasuresTheQubits(StabilizerEngine):
    def sample(self, qubits, shots):
        out = super().sample(qubits, shots)
        for q in qubits:
            self.measure(q)
        return out


class SampleCopiesTheFirstColumn(StabilizerEngine):
    def sample(self, qubits, shots):
        out = super().sample(qubits, shots)
        out[:, 1:] = out[:, :1]
        return out


class RefusesTWithValueError(StabilizerEngine):
    def apply(self, gate, qubits, params=()):
        if gate == "t":
            raise ValueError("no T here")
        super().apply(gate, qubits, params)


class RestoreForgetsTheRng(StabilizerEngine):
    def restore(self, snapshot):
        state = self._rng.bit_generator.state
        super().restore(snapshot)
        self._rng.bit_generator.state = state


class IgnoresItsSeed(StabilizerEngine):
    def __init__(self, *, seed=None):
        super().__init__(seed=0)


class ChannelReportsYButAppliesX(StabilizerEngine):
    def apply_pauli_channel(self, qubit, px, py, pz):
        applied = super().apply_pauli_channel(qubit, px + py, 0.0, pz)
        return "Y" if py and applied == "X" else applied


class FreeForgetsToReset(StabilizerEngine):
    def free(self, qubit):
        self._live.remove(qubit)
        self._pool.append(qubit)


class FreeAlsoResetsTheNextQubit(StabilizerEngine):
    def free(self, qubit):
        super().free(qubit)
        if qubit + 1 in self._live:
            self.reset(qubit + 1)


class MeasureInXIsMeasureInZ(StabilizerEngine):
    def measure(self, qubit, basis="Z"):
        return super().measure(qubit, "Z" if basis == "X" else basis)


class ImpossibleCollapseIsSilent(StabilizerEngine):
    def collapse(self, qubit, outcome, basis="Z"):
        try:
            super().collapse(qubit, outcome, basis)
        except EngineError as error:
            if error.code != "QE104":
                raise


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        (HadamardAppliesS, r"measurement of eigenstates .*h on \|0>"),
        (RzTurnsTheWrongWay, r"each gate on eigenstate inputs .*rz\(1\.571\)"),
        (SwapIsCx, r"each gate on eigenstate inputs .*swap 0 1"),
        (SampleMeasuresTheQubits, r"sample\(\) changed the state"),
        (SampleCopiesTheFirstColumn, r"shots of sample\(\) are .* in total variation"),
        (RefusesTWithValueError, r"apply\(t\) .* raised ValueError: no T here, expected QE103"),
        (RestoreForgetsTheRng, r"snapshot/restore .*the snapshot must include the RNG"),
        (IgnoresItsSeed, r"seeded determinism .*seeds differing by one"),
        (ChannelReportsYButAppliesX, r"apply_pauli_channel .*returned 'Y'"),
        (FreeForgetsToReset, r"reset and qubit reuse .*free then allocate"),
        (FreeAlsoResetsTheNextQubit, r"free of qubit \d .* no Z measurement of it gives"),
        (MeasureInXIsMeasureInZ, r"measurement of eigenstates .*h on \|0> after measuring"),
        (ImpossibleCollapseIsSilent, r"collapse onto 1 in Z returned normally, expected .*QE104"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_the_checker_fails_an_engine_that_breaks_a_promise(broken, complaint):
    with pytest.raises(AssertionError, match=complaint) as caught:
        assert_engine_conformance(lambda seed: broken(seed=seed), seed=103)
    assert str(caught.value).startswith("stabilizer engine fails ")


def test_the_checker_refuses_circuits_too_wide_for_its_dense_reference():
    with pytest.raises(ValueError, match=r"1\.\.8"):
        assert_engine_conformance(lambda seed: StabilizerEngine(seed=seed), qubits=9)
