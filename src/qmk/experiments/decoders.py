"""The decoders of detection events, by name: one table for memory experiments and ``--decode``.

A decoder reads a circuit's detector error model and predicts, from each shot's
detection events, which observables flipped. :data:`DECODERS` names the choices:

- ``pymatching``: minimum-weight perfect matching on the model sinter builds for its
  ``decoders=['pymatching']`` (:func:`sinter_model`: decomposed into graphlike errors
  where stim can, else undecomposed).
- ``bposd``: belief propagation with ordered-statistics post-processing (BP+OSD, the
  ``ldpc`` package's ``BpOsdDecoder``) on the undecomposed model as a hypergraph: one
  column of the check matrix per error mechanism, its prior the model's probability.
  It needs no graphlike decomposition, so it is the choice for colour codes and
  quantum LDPC codes (SHYPS), where matching decodes an approximation.
- ``bposd-long``: the same with up to 200 BP iterations before OSD. On a large block
  (the [[225, 16, 8]] SHYPS block) BP then converges on most shots and the costly OSD
  runs on few: several times faster. At the [[49, 9, 4]] block its logical error rate
  equals ``bposd``'s within the shot noise on the same shots (docs/qec_experiments.md's
  check, ``tests/experiments/test_decoders.py``).

Every decoder answers ``decode_batch(shots, bit_packed_shots=True,
bit_packed_predictions=True)`` as pymatching's does, so the experiments and the stim
target read them alike (:func:`mispredicted`).

>>> import stim
>>> circuit = stim.Circuit.generated("repetition_code:memory", distance=3, rounds=2,
...                                  after_clifford_depolarization=0.01)
>>> built = build_decoder(circuit, "bposd")
>>> built.name, built.model
('bposd', 'undecomposed')
>>> build_decoder(circuit, "uf")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qec.errors.QECError: QC112 unknown-decoder: no decoder 'uf'; ...
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from qmk.qec.errors import QECError

if TYPE_CHECKING:
    import stim

#: The decoders, by name, and what each is.
DECODERS: Mapping[str, str] = MappingProxyType(
    {
        "pymatching": "minimum-weight perfect matching (pymatching) on the model sinter builds",
        "bposd": "BP+OSD (the ldpc package) on the undecomposed model as a hypergraph",
        "bposd-long": "BP+OSD as bposd with up to 200 BP iterations, faster on large blocks",
    }
)
#: The decoder a run or an experiment takes when none is named.
DEFAULT_DECODER = "pymatching"
#: The package each decoder needs, and the extra that installs it.
_NEEDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "pymatching": ("pymatching", ""),
        "bposd": ("ldpc", "bposd"),
        "bposd-long": ("ldpc", "bposd"),
    }
)

#: BP+OSD's settings by decoder name: min-sum belief propagation (an order of magnitude
#: faster than product-sum here, at the same logical error rate within the shot noise of
#: docs/qec.md's comparison), at most 30 iterations, then on the shots where it does not
#: converge combination-sweep OSD of order 10. ``bposd`` stops BP at 30 iterations,
#: ``bposd-long`` at 200: on a large block most shots then skip OSD.
BPOSD_SETTINGS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "bposd": MappingProxyType(
            {"max_iter": 30, "bp_method": "minimum_sum", "osd_method": "osd_cs", "osd_order": 10}
        ),
        "bposd-long": MappingProxyType(
            {"max_iter": 200, "bp_method": "minimum_sum", "osd_method": "osd_cs", "osd_order": 10}
        ),
    }
)


#: The most syndromes a BP+OSD decoder remembers the prediction of (:attr:`BpOsd.known`):
#: the syndromes of a noisy code repeat across chunks (about a fifth of a d = 5 colour
#: code's at p = 0.005 over 20,000 shots), each one costs BP+OSD milliseconds and its memory
#: a row of bytes.
MEMO_SYNDROMES = 1 << 16


def check_decoder(name: str) -> str:
    """``name`` if it is a decoder of :data:`DECODERS` whose package is installed.

    Raises:
        QECError: ``QC112 unknown-decoder`` for another name; ``QC114
            decoder-unavailable`` when its package is not installed.
    """
    if name not in DECODERS:
        raise QECError.of(
            "unknown-decoder",
            f"no decoder {name!r}; QMK decodes with {', '.join(DECODERS)}",
            decoder=str(name),
        )
    package, extra = _NEEDS[name]
    if importlib.util.find_spec(package) is None:
        raise QECError.of(
            "decoder-unavailable",
            f"the {name} decoder needs the {package} package, which is not installed: "
            f"pip install 'quantum-microkernel[{extra}]'",
            decoder=name,
        )
    return name


def sinter_model(circuit: stim.Circuit) -> tuple[stim.DetectorErrorModel, str]:
    """The detector error model sinter decodes ``circuit`` by, and which it is.

    As sinter's task builds it: each error decomposed into graphlike pieces
    (``"decomposed"``); where stim cannot decompose one (colour codes), the whole model
    undecomposed (``"undecomposed"``), which pymatching reads as sinter's decoder does;
    where even that fails, the undecomposed model with its loops flattened
    (``"undecomposed-flattened"``). A channel whose Paulis are not independent
    (``PAULI_CHANNEL_2``, a heralded one) is taken as independent errors of its
    probabilities.

    Raises:
        ValueError: stim cannot build the model (a detector or an observable that is not
            deterministic without noise: the message says which).
    """
    try:
        dem = circuit.detector_error_model(decompose_errors=True, approximate_disjoint_errors=True)
        return dem, "decomposed"
    except ValueError:
        pass
    return _undecomposed(circuit)


def _undecomposed(circuit: stim.Circuit) -> tuple[stim.DetectorErrorModel, str]:
    try:
        return circuit.detector_error_model(approximate_disjoint_errors=True), "undecomposed"
    except ValueError:
        dem = circuit.detector_error_model(approximate_disjoint_errors=True, flatten_loops=True)
        return dem, "undecomposed-flattened"


class BpOsd:
    """BP+OSD over a detector error model's check matrix (hypergraph, undecomposed).

    Each error mechanism is a column: its detectors are the check matrix's rows that it
    flips, its observables the observable matrix's, its prior its probability.
    Mechanisms that flip the same detectors are one column (their probabilities
    combined as independent flips), whose observables are those of its most likely
    mechanism: the decoder cannot tell them apart. Each distinct syndrome is decoded
    once: within a batch, and across batches through :attr:`known` (BP+OSD is
    deterministic, so this is exact). ``name`` picks the settings of
    :data:`BPOSD_SETTINGS`.

    Attributes:
        known: the syndromes decoded so far (bit-packed rows as bytes) and the
            observables each predicts, at most :data:`MEMO_SYNDROMES` of them.
    """

    def __init__(self, dem: stim.DetectorErrorModel, name: str = "bposd") -> None:
        from ldpc import BpOsdDecoder
        from scipy.sparse import csc_matrix

        columns: dict[frozenset[int], int] = {}
        priors: list[float] = []
        best: list[float] = []
        flips: list[frozenset[int]] = []
        for instruction in dem.flattened():
            if instruction.type != "error":
                continue
            p = instruction.args_copy()[0]
            dets: set[int] = set()
            obs: set[int] = set()
            for target in instruction.targets_copy():
                if target.is_relative_detector_id():
                    dets ^= {target.val}
                elif target.is_logical_observable_id():
                    obs ^= {target.val}
            if not dets and not obs:
                continue
            key = frozenset(dets)
            at = columns.setdefault(key, len(priors))
            if at == len(priors):
                priors.append(p)
                best.append(p)
                flips.append(frozenset(obs))
                continue
            priors[at] = priors[at] * (1 - p) + p * (1 - priors[at])
            if p > best[at]:
                best[at], flips[at] = p, frozenset(obs)
        self.num_detectors = dem.num_detectors
        self.num_observables = dem.num_observables
        self.known: dict[bytes, np.ndarray] = {}
        order = list(columns)
        self.check_matrix = _sparse(order, dem.num_detectors, csc_matrix)
        self.observables_matrix = _sparse(flips, dem.num_observables, csc_matrix)
        self.priors = np.array(priors)
        settings = dict(BPOSD_SETTINGS[name])
        settings["osd_order"] = max(0, min(settings["osd_order"], len(priors) - self.num_detectors))
        self._decoder = BpOsdDecoder(
            self.check_matrix,
            error_channel=list(priors),
            input_vector_type="syndrome",
            **settings,
        )

    def decode(self, syndrome: np.ndarray) -> np.ndarray:
        """The observables one shot's detection events (0/1, unpacked) predict flipped."""
        correction = self._decoder.decode(np.asarray(syndrome, dtype=np.uint8))
        return np.asarray((self.observables_matrix @ correction) % 2, dtype=np.uint8)

    def decode_batch(
        self,
        shots: np.ndarray,
        *,
        bit_packed_shots: bool = False,
        bit_packed_predictions: bool = False,
    ) -> np.ndarray:
        """Each shot's predicted observable flips, as pymatching's ``decode_batch``."""
        rows = np.asarray(shots, dtype=np.uint8)
        packed = rows if bit_packed_shots else np.packbits(rows, axis=1, bitorder="little")
        distinct, where = np.unique(packed, axis=0, return_inverse=True)
        predicted = np.zeros((len(distinct), self.num_observables), dtype=np.uint8)
        known = self.known
        for i, row in enumerate(distinct):
            if not row.any():
                continue
            key = row.tobytes()
            found = known.get(key)
            if found is None:
                found = self.decode(np.unpackbits(row, bitorder="little", count=self.num_detectors))
                if len(known) < MEMO_SYNDROMES:
                    known[key] = found
            predicted[i] = found
        out = predicted[np.asarray(where).reshape(-1)]
        if bit_packed_predictions:
            return np.packbits(out, axis=1, bitorder="little")
        return out


def _sparse(columns: list[frozenset[int]], rows: int, csc_matrix: Any) -> Any:
    indices = [r for column in columns for r in sorted(column)]
    pointers = np.cumsum([0, *(len(column) for column in columns)])
    data = np.ones(len(indices), dtype=np.uint8)
    return csc_matrix((data, indices, pointers), shape=(rows, len(columns)))


@dataclass(frozen=True, slots=True)
class Decoder:
    """A decoder built for one circuit: its name, the model it read, and itself.

    Attributes:
        name: a key of :data:`DECODERS`.
        model: ``decomposed``, ``undecomposed`` or ``undecomposed-flattened``.
        decoder: the object whose ``decode_batch`` predicts the observables' flips.
    """

    name: str
    model: str
    decoder: Any


def build_decoder(circuit: stim.Circuit, name: str = DEFAULT_DECODER) -> Decoder:
    """The decoder ``name`` of ``circuit``'s detector error model.

    Raises:
        QECError: ``QC112``/``QC114`` as :func:`check_decoder`.
        ValueError: stim cannot build the model (:func:`sinter_model`).
    """
    check_decoder(name)
    if name in BPOSD_SETTINGS:
        dem, model = _undecomposed(circuit)
        return Decoder(name, model, BpOsd(dem, name))
    import pymatching

    dem, model = sinter_model(circuit)
    return Decoder(name, model, pymatching.Matching.from_detector_error_model(dem))


def mispredicted(decoder: Any, detectors: np.ndarray, observables: np.ndarray) -> np.ndarray:
    """The observables ``decoder`` predicts wrong in each shot: its predictions XOR the
    flips, rows bit-packed as stim's detector sampler packs ``detectors`` and
    ``observables``.

    Raises:
        QECError: ``QC115 no-matching`` where matching cannot pair a shot's detection
            events (pymatching's own error, on a hypergraph model).
    """
    try:
        predicted = decoder.decode_batch(
            detectors, bit_packed_shots=True, bit_packed_predictions=True
        )
    except ValueError as exc:
        if "perfect matching" not in str(exc):
            raise
        raise QECError.of("no-matching", str(exc).split(". ")[0]) from exc
    return np.bitwise_xor(predicted, observables)


__all__ = [
    "BPOSD_SETTINGS",
    "DECODERS",
    "DEFAULT_DECODER",
    "MEMO_SYNDROMES",
    "BpOsd",
    "Decoder",
    "build_decoder",
    "check_decoder",
    "mispredicted",
    "sinter_model",
]
