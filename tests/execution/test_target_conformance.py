"""Every target of the table passes the target conformance suite (qmk.testing): the
exact-distribution corpus or a coded refusal, seeded determinism, a sane footprint; and
the suite catches a target that breaks each promise."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest

from qmk.execution import target as targets
from qmk.execution.logical import LogicalTarget
from qmk.execution.target import TARGETS
from qmk.testing import assert_target_conformance, target_corpus


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_passes_the_conformance_suite(name: str) -> None:
    assert_target_conformance(targets.get(name), seed=20261125, circuits=6, shots=1500)


def test_the_corpus_distributions_are_exact_and_seeded() -> None:
    first, again = target_corpus(7), target_corpus(7)
    assert [p.graph for p in first] == [p.graph for p in again]
    for program in first:
        assert sum(program.exact.values()) == pytest.approx(1.0)


class _Flipped:
    """A run whose every shot reads its first event flipped (a broken target)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def footprint(self) -> Any:
        return self.inner.footprint

    def run(self, shots: int, seed: int, **kw: Any) -> Any:
        result = self.inner.run(shots, seed, **kw)
        flipped = {
            ("1" if key[0] == "0" else "0") + key[1:] if key else key: count
            for key, count in result.counts.items()
        }
        return dataclasses.replace(result, counts=flipped)


class _Broken(LogicalTarget):
    def compile(self, program: Any, request: Any, **options: Any) -> Any:
        return _Flipped(super().compile(program, request, **options))


class _Unseeded(LogicalTarget):
    runs = 0

    def compile(self, program: Any, request: Any, **options: Any) -> Any:
        inner = super().compile(program, request, **options)
        outer = self

        class Drifting(_Flipped):
            def run(self, shots: int, seed: int, **kw: Any) -> Any:
                outer.runs += 1
                return inner.run(shots, seed + outer.runs, **kw)

        return Drifting(inner)


class _Uncoded(LogicalTarget):
    def compile(self, program: Any, request: Any, **options: Any) -> Any:
        raise KeyError("APPLY_H")


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        (_Broken(), "probability 0"),
        (_Unseeded(), "the same seed"),
        (_Uncoded(), "without a code"),
    ],
)
def test_the_suite_fails_a_target_that_breaks_a_promise(broken: Any, says: str) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_target_conformance(broken, seed=3, circuits=2, shots=400)
    assert says in str(caught.value)


def test_a_footprint_of_another_target_fails() -> None:
    class Mislabelled(LogicalTarget):
        def compile(self, program: Any, request: Any, **options: Any) -> Any:
            inner = super().compile(program, request, **options)
            fp = msgspec.structs.replace(inner.footprint, target="elsewhere")

            class Wrapped(_Flipped):
                footprint = fp

                def run(self, shots: int, seed: int, **kw: Any) -> Any:
                    return inner.run(shots, seed, **kw)

            return Wrapped(inner)

    with pytest.raises(AssertionError) as caught:
        assert_target_conformance(Mislabelled(), seed=3, circuits=1, shots=400)
    assert "not this target's" in str(caught.value)
