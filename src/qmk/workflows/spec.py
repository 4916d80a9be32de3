"""Workflow files: their schema, read into frozen values.

A file (TOML; YAML too when PyYAML is installed)::

    name = "bell-and-rotations"

    [defaults]            # every step's options unless it sets its own
    shots = 1000
    seed = 7

    [[steps]]
    name = "bell"
    program = "bell.qasm" # a path relative to the file, or `source` for inline text
    retries = 1

    [[steps]]
    name = "rotation"
    source = '''
    OPENQASM 3.0;
    include "stdgates.inc";
    input float theta;
    qubit q; bit c;
    ry(theta) q;
    c = measure q;
    '''
    after = ["bell"]      # runs once these steps completed
    sweep = { theta = [0.0, 0.785, 1.571, 3.142], shots = [200] }

Step options: ``program`` or ``source`` (with ``format``, else by the file's extension or
an OpenQASM header), ``shots``, ``seed``, ``engine``, ``device`` (a neutral-atom preset:
local runs only), ``noise`` (true/false, or a noise model such as
``"depolarizing(p=1e-3)"``: local runs only), ``qubit``, ``distance`` (the surface code
distance of qubits whose program names no profile), ``policy`` (kernel policy keys),
``after``, ``retries``, ``sweep``. A sweep maps keys to lists: ``shots``, ``seed``,
``distance``, ``noise``, ``qubit``, ``engine``, or any other name, which is an input
parameter of an OpenQASM program (``input float theta;``). The grid is every combination.

>>> flow = loads('[[steps]]\\nname = "a"\\nsource = "OPENQASM 2.0;"\\nsweep = {shots = [1, 2]}')
>>> [point for point in flow.steps[0].points()]
[{'shots': 1}, {'shots': 2}]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmk.abi.errors import CommandError

#: The keys a step (and ``[defaults]``) may set.
STEP_KEYS = (
    "name",
    "program",
    "source",
    "format",
    "shots",
    "seed",
    "engine",
    "device",
    "noise",
    "qubit",
    "distance",
    "policy",
    "after",
    "retries",
    "sweep",
)
#: Sweep keys that are run options; any other is a program parameter.
OPTION_KEYS = ("shots", "seed", "distance", "noise", "qubit", "engine")
#: The most jobs one workflow may expand to.
MAX_JOBS = 10_000


def bad(message: str, **details: Any) -> CommandError:
    """``QW013 bad-workflow``."""
    return CommandError.of("bad-workflow", message, **details)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step: a program, its run options and its sweep."""

    name: str
    source: str
    format: str | None = None
    origin: str = "<inline>"
    shots: int = 1000
    seed: int | None = None
    engine: str | None = None
    device: str | None = None
    noise: bool | str = True
    qubit: str | None = None
    distance: int | None = None
    policy: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    retries: int = 0
    sweep: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def points(self) -> Iterator[dict[str, Any]]:
        """Every combination of the sweep's values (one empty point without a sweep)."""
        keys = list(self.sweep)
        for values in itertools.product(*(self.sweep[k] for k in keys)):
            yield dict(zip(keys, values, strict=True))

    @property
    def size(self) -> int:
        """How many jobs the step runs."""
        count = 1
        for values in self.sweep.values():
            count *= len(values)
        return count


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """A workflow: its name and its steps in dependency order."""

    name: str
    steps: tuple[Step, ...]
    path: Path | None = None

    @property
    def size(self) -> int:
        """How many jobs the workflow runs."""
        return sum(step.size for step in self.steps)


def _int(value: Any, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise bad(f"{where} must be an integer >= {low}, got {value!r}", key=where)
    return value


def _step(raw: Any, defaults: Mapping[str, Any], index: int, base: Path | None) -> Step:
    where = f"steps[{index}]"
    if not isinstance(raw, Mapping):
        raise bad(f"{where} must be a table")
    data = {**defaults, **raw}
    for key in data:
        if key not in STEP_KEYS:
            raise bad(f"{where}: unknown key {key!r}; known: {', '.join(STEP_KEYS)}", key=key)
    name = data.get("name", f"step{index + 1}")
    if not isinstance(name, str) or not name:
        raise bad(f"{where}.name must be a non-empty string")
    where = f"step {name!r}"
    if ("program" in data) == ("source" in data):
        raise bad(f"{where} needs program (a file) or source (the text), not both or neither")
    fmt = data.get("format")
    if "program" in data:
        path = Path(str(data["program"]))
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise bad(f"{where}: cannot read program {str(path)!r}: {exc}") from None
        origin = str(path)
        if fmt is None:
            fmt = _format_of(path)
    else:
        source, origin = str(data["source"]), f"<{name}>"
    sweep_raw = data.get("sweep", {})
    if not isinstance(sweep_raw, Mapping):
        raise bad(f"{where}.sweep must be a table of lists")
    sweep: dict[str, tuple[Any, ...]] = {}
    for key, values in sweep_raw.items():
        if not isinstance(values, list) or not values:
            raise bad(f"{where}.sweep.{key} must be a non-empty list", key=key)
        sweep[str(key)] = tuple(values)
    after = data.get("after", [])
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise bad(f"{where}.after must be a list of step names")
    policy = data.get("policy", {})
    if not isinstance(policy, Mapping):
        raise bad(f"{where}.policy must be a table")
    noise = data.get("noise", True)
    if not isinstance(noise, (bool, str)):
        raise bad(f"{where}.noise must be true, false or a noise model text")
    distance = data.get("distance")
    return Step(
        name=name,
        source=source,
        format=fmt,
        origin=origin,
        shots=_int(data.get("shots", 1000), f"{where}.shots", 1),
        seed=None if data.get("seed") is None else _int(data["seed"], f"{where}.seed"),
        engine=data.get("engine"),
        device=data.get("device"),
        noise=noise,
        qubit=data.get("qubit"),
        distance=None if distance is None else _int(distance, f"{where}.distance", 1),
        policy=dict(policy),
        after=tuple(after),
        retries=_int(data.get("retries", 0), f"{where}.retries"),
        sweep=sweep,
    )


def _format_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return {
        ".json": "qvm-json",
        ".asm": "qvm-asm",
        ".qasm3": "qasm3",
        ".ll": "qir",
    }.get(suffix)


def _ordered(steps: list[Step]) -> tuple[Step, ...]:
    """``steps`` with each after the steps it depends on (a cycle is an error)."""
    by_name = {}
    for step in steps:
        if step.name in by_name:
            raise bad(f"two steps are named {step.name!r}")
        by_name[step.name] = step
    for step in steps:
        for name in step.after:
            if name not in by_name:
                raise bad(f"step {step.name!r} runs after {name!r}, which is no step")
    ordered: list[Step] = []
    state: dict[str, int] = {}  # 1: being placed, 2: placed

    def place(step: Step, chain: tuple[str, ...]) -> None:
        if state.get(step.name) == 2:
            return
        if state.get(step.name) == 1:
            raise bad(f"the steps depend on each other in a cycle: {' -> '.join(chain)}")
        state[step.name] = 1
        for name in step.after:
            place(by_name[name], (*chain, name))
        state[step.name] = 2
        ordered.append(step)

    for step in steps:
        place(step, (step.name,))
    return tuple(ordered)


def from_data(data: Any, *, base: Path | None = None, path: Path | None = None) -> Workflow:
    """The workflow of parsed data (a TOML or YAML document)."""
    if not isinstance(data, Mapping):
        raise bad("a workflow is a table with [[steps]]")
    unknown = sorted(set(data) - {"name", "defaults", "steps"})
    if unknown:
        raise bad(f"unknown top-level key {unknown[0]!r}; known: name, defaults, steps")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, Mapping) or "name" in defaults:
        raise bad("[defaults] must be a table of step options (no name)")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise bad("a workflow needs at least one [[steps]] table")
    steps = [_step(raw, defaults, i, base) for i, raw in enumerate(raw_steps)]
    flow = Workflow(name=str(data.get("name", "workflow")), steps=_ordered(steps), path=path)
    if flow.size > MAX_JOBS:
        raise bad(f"the workflow expands to {flow.size} jobs; at most {MAX_JOBS}")
    return flow


def loads(text: str, *, yaml: bool = False, base: Path | None = None) -> Workflow:
    """The workflow in ``text`` (TOML, or YAML when ``yaml``)."""
    if yaml:
        try:
            import yaml as pyyaml
        except ImportError:
            raise bad("YAML workflows need PyYAML (pip install pyyaml); or write TOML") from None
        try:
            data = pyyaml.safe_load(text)
        except pyyaml.YAMLError as exc:
            raise bad(f"not YAML: {exc}") from None
    else:
        import sys

        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise bad(f"not TOML: {exc}") from None
    return from_data(data, base=base)


def load(path: str | Path) -> Workflow:
    """The workflow in the file ``path`` (``.yaml``/``.yml``: YAML; else TOML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise bad(f"{path}: cannot read: {exc}") from None
    flow = loads(text, yaml=path.suffix.lower() in (".yaml", ".yml"), base=path.parent)
    return Workflow(name=flow.name, steps=flow.steps, path=path)
