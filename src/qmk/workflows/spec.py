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
A step that sets no ``shots`` runs :data:`qmk.defaults.SHOTS`.

The file's schema is :class:`WorkflowFile` (frozen ``msgspec.Struct`` tables that refuse
unknown keys, read through :func:`qmk.values.convert`); what one table cannot say (program
or source, the steps ``after`` names, cycles, the size of the grid) is checked after it.
``qmk schema --kind workflow`` prints it as JSON Schema (shipped as ``schema.json`` next
to this module). A bad file is one line, ``QW013 bad-workflow``, naming the key:

>>> loads('[[steps]]\\nsource = "OPENQASM 2.0;"\\nshots = 0')
Traceback (most recent call last):
...
qmk.abi.errors.CommandError: QW013 bad-workflow: steps[0].shots: Expected `int` >= 1

>>> flow = loads('[[steps]]\\nname = "a"\\nsource = "OPENQASM 2.0;"\\nsweep = {shots = [1, 2]}')
>>> [point for point in flow.steps[0].points()]
[{'shots': 1}, {'shots': 2}]
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from qmk import defaults, values
from qmk.abi.errors import CommandError
from qmk.execution.request import Seed, Shots

#: Sweep keys that are run options; any other is a program parameter.
OPTION_KEYS = ("shots", "seed", "distance", "noise", "qubit", "engine")
#: The most jobs one workflow may expand to.
MAX_JOBS = 10_000
#: The shipped JSON Schema of a workflow file (package data; ``qmk schema --kind workflow``).
SCHEMA_PATH = Path(__file__).with_name("schema.json")


def bad(message: str, **details: Any) -> CommandError:
    """``QW013 bad-workflow``."""
    return CommandError.of("bad-workflow", message, **details)


def _bad_key(message: str, key: str) -> CommandError:
    # A list's item is named by the list's key (the message keeps its index).
    return bad(message, key=re.sub(r"\[\d+\]$", "", key))


#: Keys of a trigger (``qmk.workflows.triggers``) written into a workflow file by mistake:
#: refused with a pointer to ``qmk workflow trigger add``, not as any unknown key.
TRIGGER_KEYS = frozenset({"schedule", "trigger", "triggers", "cron", "every_s"})
#: A sweep's values for one key: the step runs once per value (and combination).
SweepValues = Annotated[list[Any], Meta(min_length=1)]
#: The sweep keys whose values are checked as a run checks them.
_SWEPT: Mapping[str, Any] = {"shots": list[Shots], "seed": list[Seed]}


class _Options(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The run options a step has, in the file and once read."""

    format: Annotated[
        str | None,
        Meta(
            description="qvm-json, qvm-asm, qasm2, qasm3, qasm or qir (default: by the "
            "file's extension, or an OpenQASM header)"
        ),
    ] = None
    shots: Shots = defaults.SHOTS
    seed: Annotated[
        Seed | None,
        Meta(description="the run's seed (none: one is drawn and reported)"),
    ] = None
    engine: Annotated[
        str | None, Meta(description="an engine of qmk engines (default: the router's)")
    ] = None
    device: Annotated[
        str | None,
        Meta(description="a neutral-atom preset: the step runs on its emulator (local runs)"),
    ] = None
    noise: Annotated[
        bool | str,
        Meta(description='true, false, or a noise model such as "depolarizing(p=1e-3)"'),
    ] = True
    qubit: Annotated[str | None, Meta(description="a qubit parameter set")] = None
    distance: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(description="the surface-code distance of qubits whose program names no profile"),
    ] = None
    policy: Annotated[
        dict[str, Any], Meta(description="kernel policy keys (priority, timeout_ms, ...)")
    ] = {}
    retries: Annotated[
        int, Meta(ge=0, description="how many times a job that did not complete runs again")
    ] = 0


class StepOptions(_Options, frozen=True, kw_only=True):
    """The options of a step, or of every step (the [defaults] table)."""

    program: Annotated[
        str | None, Meta(description="the program's file, relative to the workflow's")
    ] = None
    source: Annotated[str | None, Meta(description="the program's text")] = None
    after: Annotated[
        str | list[str],
        Meta(description="steps whose jobs must all have COMPLETED first (else: SKIPPED)"),
    ] = []
    sweep: Annotated[
        dict[str, SweepValues],
        Meta(
            description="key -> values: shots, seed, distance, noise, qubit, engine, or an "
            "OpenQASM input's name; the step runs every combination"
        ),
    ] = {}


class StepTable(StepOptions, frozen=True, kw_only=True):
    """A [[steps]] table: a program, its run options and its sweep."""

    name: Annotated[
        str, Meta(min_length=1, description="the step's name, unique (default: stepN)")
    ] = ""


class WorkflowFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A workflow file: its name, the options every step shares, and its steps.

    When it runs by itself is no key of the file: a trigger says that (qmk workflow
    trigger add FILE --every S | --cron EXPR | --on-job | --on-calibration).
    """

    name: str = "workflow"
    defaults: StepOptions = msgspec.field(default_factory=StepOptions)
    steps: Annotated[list[StepTable], Meta(min_length=1)]


class Step(_Options, frozen=True, kw_only=True):
    """One step: a program, its run options and its sweep."""

    name: str
    source: str
    origin: str = "<inline>"
    after: tuple[str, ...] = ()
    sweep: Mapping[str, tuple[Any, ...]] = {}

    def points(self) -> Iterator[dict[str, Any]]:
        """Every combination of the sweep's values (one empty point without a sweep)."""
        keys = list(self.sweep)
        for values_ in itertools.product(*(self.sweep[k] for k in keys)):
            yield dict(zip(keys, values_, strict=True))

    @property
    def size(self) -> int:
        """How many jobs the step runs."""
        count = 1
        for values_ in self.sweep.values():
            count *= len(values_)
        return count


class Workflow(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow: its name and its steps in dependency order."""

    name: str
    steps: tuple[Step, ...]
    path: Path | None = None

    @property
    def size(self) -> int:
        """How many jobs the workflow runs."""
        return sum(step.size for step in self.steps)


def _step(
    raw: Mapping[str, Any],
    given: Mapping[str, Any],
    index: int,
    base: Path | None,
    files: bool = True,
) -> Step:
    """Step ``index`` of the file (checked already), with the ``[defaults]`` it does not set
    (``files``: a ``program`` is a file to read; otherwise only ``source`` is taken)."""
    where = f"steps[{index}]"
    table: StepTable = values.convert({**given, **raw}, StepTable, where=where, error=_bad_key)
    name = table.name or f"step{index + 1}"
    if (table.program is None) == (table.source is None):
        raise bad(f"step {name!r} needs program (a file) or source (the text), not both or neither")
    fmt = table.format
    if table.program is not None and not files:
        raise bad(
            f"step {name!r}: program names a file; here a step carries its program's text "
            "in source (qmk workflow trigger add reads the files)",
            key="program",
        )
    if table.program is not None:
        path = Path(table.program)
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise bad(f"step {name!r}: cannot read program {str(path)!r}: {exc}") from None
        origin = str(path)
        if fmt is None:
            fmt = _format_of(path)
    else:
        source, origin = str(table.source), f"<{name}>"
    options = {key: getattr(table, key) for key in _Options.__struct_fields__}
    return Step(
        **{**options, "format": fmt},
        name=name,
        source=source,
        origin=origin,
        after=(table.after,) if isinstance(table.after, str) else tuple(table.after),
        sweep={key: tuple(swept) for key, swept in table.sweep.items()},
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


def _sweeps_of(data: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    tables = [("defaults", data.get("defaults"))]
    tables += [(f"steps[{i}]", step) for i, step in enumerate(data["steps"])]
    for where, table in tables:
        sweep = table.get("sweep") if isinstance(table, Mapping) else None
        if isinstance(sweep, Mapping):
            for key, swept in sweep.items():
                yield f"{where}.sweep.{key}", swept


def from_data(
    data: Any, *, base: Path | None = None, path: Path | None = None, files: bool = True
) -> Workflow:
    """The workflow of parsed data (a TOML or YAML document); ``files`` False: one that
    reads no file (each step's program in ``source``, as :func:`to_data` gives it).

    Raises:
        CommandError: ``QW013 bad-workflow``, one line naming the key.
    """
    data = values.convert(data, dict[str, Any], error=_bad_key)
    scheduled = sorted(TRIGGER_KEYS.intersection(data))
    if scheduled:
        raise bad(
            f"{scheduled[0]}: a workflow file holds no schedule; make a trigger run it: qmk "
            "workflow trigger add FILE --every S | --cron EXPR | --on-job | --on-calibration",
            key=scheduled[0],
        )
    if not data.get("steps"):
        raise bad("a workflow needs at least one [[steps]] table")
    # Each sweep's list on its own first, so that an error names its key, not sweep[...].
    for where, swept in _sweeps_of(data):
        values.convert(swept, SweepValues, where=where, error=_bad_key)
        checked = _SWEPT.get(where.rsplit(".", 1)[-1])
        if checked is not None:
            values.convert(swept, checked, where=where, error=_bad_key)
    file: WorkflowFile = values.convert(data, WorkflowFile, error=_bad_key)
    given = data.get("defaults", {})
    steps = [_step(raw, given, i, base, files) for i, raw in enumerate(data["steps"])]
    flow = Workflow(name=file.name, steps=_ordered(steps), path=path)
    if flow.size > MAX_JOBS:
        raise bad(f"the workflow expands to {flow.size} jobs; at most {MAX_JOBS}")
    return flow


def to_data(flow: Workflow) -> dict[str, Any]:
    """``flow`` as the data of a workflow file that reads no file: each step's program's
    text in ``source`` (and its ``format``), for a kernel that runs it by itself.

    >>> flow = loads('[[steps]]\\nname = "a"\\nsource = "OPENQASM 2.0;"\\nshots = 5')
    >>> data = to_data(flow)
    >>> data["steps"][0]["source"], data["steps"][0]["shots"]
    ('OPENQASM 2.0;', 5)
    >>> from_data(data, files=False) == msgspec.structs.replace(flow, path=None)
    True
    """
    steps = []
    for step in flow.steps:
        table: dict[str, Any] = {"name": step.name, "source": step.source}
        for key in _Options.__struct_fields__:
            table[key] = msgspec.to_builtins(getattr(step, key))
        table["after"] = list(step.after)
        table["sweep"] = {key: list(swept) for key, swept in step.sweep.items()}
        steps.append({key: value for key, value in table.items() if value is not None})
    return {"name": flow.name, "steps": steps}


def loads(text: str, *, yaml: bool = False, base: Path | None = None) -> Workflow:
    """The workflow in ``text`` (TOML, or YAML when ``yaml``)."""
    if yaml:
        import yaml as pyyaml  # a dependency

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
    return msgspec.structs.replace(flow, path=path)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow file (TOML or YAML read as JSON), from :class:`WorkflowFile`.

    >>> json_schema()["$defs"]["StepTable"]["properties"]["shots"]["minimum"]
    1
    """
    schema = values.json_schema(WorkflowFile)
    return {
        "$schema": schema.pop("$schema"),
        "$id": "https://qmk.dev/schemas/workflow.json",
        "title": "QMK workflow file",
        **schema,
    }


def schema_text() -> str:
    """:func:`json_schema` as the shipped file's text."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


__all__ = [
    "MAX_JOBS",
    "OPTION_KEYS",
    "SCHEMA_PATH",
    "TRIGGER_KEYS",
    "Step",
    "StepOptions",
    "StepTable",
    "Workflow",
    "WorkflowFile",
    "bad",
    "from_data",
    "json_schema",
    "load",
    "loads",
    "schema_text",
    "to_data",
]
