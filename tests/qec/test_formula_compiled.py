"""A compiled formula gives what walking its tree gives: the same float, the same error."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from qmk.qec.formula import VARIABLES, compile_formula, compile_tree, evaluate_tree


def _formula(rng: random.Random, depth: int) -> str:
    """A random formula of the scheme language (numbers, variables, + - * / **, calls)."""
    if depth == 0 or rng.random() < 0.25:
        return rng.choice([*sorted(VARIABLES), "0", "3", "0.5", "1e-3", "2.5e2"])
    pick = rng.randrange(4)
    if pick == 0:
        op = rng.choice(["+", "-", "*", "/", "**"])
        return f"({_formula(rng, depth - 1)} {op} {_formula(rng, depth - 1)})"
    if pick == 1:
        return f"-{_formula(rng, depth - 1)}"
    if pick == 2:
        name = rng.choice(["ceil", "floor", "log2"])
        return f"{name}({_formula(rng, depth - 1)})"
    return f"{rng.choice(['min', 'max'])}({_formula(rng, depth - 1)}, {_formula(rng, depth - 1)})"


def _outcome(run: Callable[[], float]) -> tuple[str, object]:
    try:
        value = run()
    except Exception as exc:  # the error is the outcome to compare
        return type(exc).__name__, str(exc)
    return "nan" if math.isnan(value) else "value", None if math.isnan(value) else value


@pytest.mark.parametrize("seed", range(6))
def test_a_compiled_formula_agrees_with_its_tree_walk(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        tree, _names = compile_formula(_formula(rng, 4))
        compiled = compile_tree(tree)
        for _ in range(4):
            variables = {name: rng.choice([0, 1, 2, 7, 50, 0.25, 1e200]) for name in VARIABLES}
            walked = _outcome(lambda t=tree, v=variables: evaluate_tree(t, v))
            assert _outcome(lambda f=compiled, v=variables: f(v)) == walked
