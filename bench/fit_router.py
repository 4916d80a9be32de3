"""Fit the router's cost models to measured seconds (least squares in the log ratio).

Reads the rows of ``bench/bench_router.py`` runs (their JSON; several runs: the least
measured time of each shape and engine, as ``--merge`` takes), builds each shape's
:class:`~qmk.engines.registry.Workload` with the code as it is now, and for each
engine finds the figures of its :class:`~qmk.engines.registry.CostModel` (``setup_s``,
``gate_s``, the per-element figures of each gate kind, ``block_s``, ...) that minimise

    sum over shapes of log(estimate / measured) ** 2  +  RIDGE * sum log(figure / prior) ** 2

where ``prior`` is the figure the table holds now (a figure the corpus hardly sees
stays near it). Figures are positive (fitted as their logs); the statevector engine's
numpy fallback is fitted after its compiled kernels, no figure below theirs (it is
never priced as the faster). Prints each engine's
figures and ratios before and after; ``--write`` puts the figures into the
``SPECS`` table of ``src/qmk/engines/registry.py`` (the one table of them; the numpy
fallback of the statevector engine is ``statevector/numpy``). Engines with fewer than
``--min-rows`` measured shapes are left as they are.

    python bench/fit_router.py run1.json run2.json [--write]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

import bench_router

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "src" / "qmk" / "engines" / "registry.py"

#: The figures fitted (the others: ``single``, ``parallel``, ``representation``, kept).
FITTED = (
    "setup_s",
    "gate_s",
    "element_s",
    "diagonal_s",
    "permutation_s",
    "wide_s",
    "block_s",
    "segment_s",
    "round_trip_s",
    "sample_s",
    "shot_s",
    "trajectory",
)
#: How strongly a figure is held near the table's (per unit of log).
RIDGE = 0.01
#: The fewest state elements a shape of the corpus must have for an engine's
#: per-element figures to be fitted.
SEEN_ELEMENTS = 2**14
#: A figure the table holds at 0 starts (and is held near) this fraction of ``element_s``.
FLOOR = 0.3


def best_rows(paths: list[str]) -> dict[tuple[str, str], float]:
    """(shape, engine label) -> the least measured seconds over the runs. A run that
    was one density matrix (mode ``density-matrix``) is priced by the engine's density
    model (``EngineSpec.density``), not the cost model fitted here: left out."""
    best: dict[tuple[str, str], float] = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for row in json.load(handle)["rows"]:
                if "measured_s" not in row or row["shape"] not in bench_router.SHAPES:
                    continue
                if row.get("mode") == "density-matrix":
                    continue
                key = (row["shape"], row["engine"])
                best[key] = min(best.get(key, math.inf), float(row["measured_s"]))
    return best


def model_of(label: str) -> Any:
    from qmk.engines.registry import spec

    if label == bench_router.NUMPY:
        compiled = spec("statevector").compiled
        assert compiled is not None
        return compiled.fallback
    return spec(label).cost


def precision_of(label: str) -> str:
    """The precision the bench ran ``label`` at (its default: the router's, none asked)."""
    from qmk.engines.registry import spec

    engine = "statevector" if label == bench_router.NUMPY else label
    return spec(engine).precisions[0]


def offset(label: str, work: Any) -> float:
    """What the engine's estimate adds beside its cost model (segment round trips)."""
    from qmk.engines.registry import spec

    engine = "statevector" if label == bench_router.NUMPY else label
    entry = spec(engine)
    precision = precision_of(label)
    return entry.seconds(work, precision, compiled=label != bench_router.NUMPY) - (
        model_of(label).seconds(work, precision)
    )


def fit(
    label: str,
    works: dict[str, Any],
    measured: dict[str, float],
    floor: Any | None = None,
) -> Any:
    """``label``'s cost model fitted to ``measured`` seconds; every figure at least
    ``floor``'s (a cost model: the numpy fallback is never priced below the compiled
    kernels). Where the largest state measured is under :data:`SEEN_ELEMENTS`, the
    per-element figures stay as they are (the corpus cannot tell them from per-gate
    costs: the density-matrix engines run only the 6-qubit shapes)."""
    from qmk.engines.registry import PER_ELEMENT

    model = model_of(label)
    shapes = [s for s in measured if s in works]
    extra = np.array([offset(label, works[s]) for s in shapes])
    target = np.log(np.array([measured[s] for s in shapes]))
    prior = []
    for name in FITTED:
        value = float(getattr(model, name))
        if value <= 0:
            value = FLOOR * model.element_s if name in PER_ELEMENT else 1e-9
        if name == "trajectory":
            value = min(value, 1.0)
        prior.append(math.log(value))
    theta0 = np.array(prior)
    lower = np.full(len(FITTED), -np.inf)
    upper = np.array([0.0 if name == "trajectory" else np.inf for name in FITTED])
    if floor is not None:
        lower = np.array([math.log(max(float(getattr(floor, n)), 1e-30)) for n in FITTED])
        lower = np.minimum(lower, upper - 1e-6)
        theta0 = np.clip(theta0, lower + 1e-9, upper)

    precision = precision_of(label)
    largest = max(model.elements(works[s].qubits) for s in shapes)
    free = [n not in PER_ELEMENT or largest >= SEEN_ELEMENTS for n in FITTED]
    for i, name in enumerate(FITTED):
        if not free[i]:  # held where it is
            value = max(float(getattr(model, name)), 1e-30)
            lower[i], upper[i] = math.log(value) - 1e-9, math.log(value) + 1e-9
            theta0[i] = math.log(value)

    def residuals(theta: np.ndarray) -> np.ndarray:
        trial = replace(model, **dict(zip(FITTED, np.exp(theta).tolist(), strict=True)))
        estimate = np.array([trial.seconds(works[s], precision) for s in shapes]) + extra
        return np.concatenate([np.log(estimate) - target, RIDGE * (theta - theta0)])

    found = least_squares(residuals, theta0, bounds=(lower, upper), method="trf")
    figures = {
        name: float(f"{math.exp(t):.2g}") if math.exp(t) > 1e-29 else 0.0
        for name, t in zip(FITTED, found.x, strict=True)
    }
    return replace(model, **figures)


def ratios(label: str, model: Any, works: dict[str, Any], measured: dict[str, float]) -> str:
    out = []
    for shape, seconds in measured.items():
        estimate = model.seconds(works[shape], precision_of(label)) + offset(label, works[shape])
        out.append(f"{shape}:{seconds / estimate:.2f}")
    return " ".join(out)


def render(model: Any, indent: str) -> str:
    """``CostModel(...)`` source for ``model``, its non-default figures one a line."""
    from qmk.engines.registry import CostModel

    parts = [f'representation="{model.representation}"']
    for field in fields(CostModel):
        if field.name == "representation":
            continue
        value = getattr(model, field.name)
        if value != field.default:
            parts.append(f"{field.name}={value!r}")
    inner = "".join(f"{indent}    {part},\n" for part in parts)
    return f"CostModel(\n{inner}{indent})"


def write(models: dict[str, Any]) -> None:
    """Put the fitted figures into registry.py's SPECS (each engine's ``cost=`` and
    the statevector's ``fallback=``)."""
    from qmk.engines.registry import SPECS

    text = REGISTRY.read_text(encoding="utf-8")
    starts = [m.start() for m in re.finditer(r"\n    EngineSpec\(\n", text)]
    assert len(starts) == len(SPECS), "one EngineSpec( per SPECS entry"
    pieces = []
    for index, entry in enumerate(SPECS):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        pieces.append((entry.name, starts[index], end))
    out = text[: pieces[0][1]]
    for name, start, end in pieces:
        chunk = text[start:end]
        for key, label in (("cost", name), ("fallback", bench_router.NUMPY)):
            if label not in models or (key == "fallback" and name != "statevector"):
                continue
            match = re.search(rf"\n(\s*){key}=CostModel\((.*?)\n\s*\)", chunk, flags=re.S)
            if match is None:  # one line
                match = re.search(rf"\n(\s*){key}=CostModel\((.*?)\)", chunk, flags=re.S)
            assert match is not None, (name, key)
            indent = match.group(1)
            chunk = (
                chunk[: match.start()]
                + f"\n{indent}{key}="
                + render(models[label], indent)
                + chunk[match.end() :]
            )
        out += chunk
    REGISTRY.write_text(out, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from qmk._front import read
    from qmk.qec.noise import parse_noise_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--shots", type=int, default=200)
    parser.add_argument("--min-rows", type=int, default=4)
    parser.add_argument("--skip", nargs="*", default=[], help="engines not fitted")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    best = best_rows(args.runs)
    works = {}
    for shape in {s for s, _ in best}:
        text, noisy = bench_router.SHAPES[shape]()
        noise = parse_noise_model(bench_router.NOISY_MODEL) if noisy else False
        works[shape] = bench_router._prepare(read(text), args.shots, noise)
    models = {}
    labels = sorted(
        dict.fromkeys(label for _, label in best), key=lambda label: label == bench_router.NUMPY
    )
    for label in labels:  # the numpy fallback after the compiled kernels: its floor
        measured = {s: t for (s, e), t in best.items() if e == label}
        if label in args.skip or len(measured) < args.min_rows:
            print(f"{label}: {len(measured)} rows, left as it is")
            continue
        before = ratios(label, model_of(label), works, measured)
        floor = models.get("statevector") if label == bench_router.NUMPY else None
        models[label] = fit(label, works, measured, floor)
        print(
            f"{label}\n  before {before}\n  after  {ratios(label, models[label], works, measured)}"
        )
        print("  " + render(models[label], "  "))
    if args.write:
        write(models)
        print(f"written to {REGISTRY}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
