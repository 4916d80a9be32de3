"""QMK's own tools, as the model calls them: ``validate``, ``info``, ``estimate``, ``plan``,
``run``.

Each tool takes a ``program``: its text (OpenQASM 2 or 3, QVM assembly or JSON, QIR
text), or ``"file"`` for the file the user gave. Each returns a JSON object; a program
QMK refuses gives ``{"ok": false, "code": ..., "error": ...}`` (the coded one-line
error), never an exception, so the finding goes back to the model. ``run`` is small
by construction: at most :attr:`Context.max_shots` shots, ideal logical qubits (noise
off), and the caller's limits on program size.

Where the work happens is the caller's (:class:`Context`): by default here, in this
process (``qmk assist`` on the user's own machine, ``run`` in-process on ideal qubits).
A kernel's assistant passes ``remote``: each call then runs whole in the kernel's planner
process (:func:`planned`: confined, without the network the model's process needs), its
CPU charged to the tenant, and ``run``'s program becomes the caller's own job, so a tool
call is admitted, limited and metered as any submit of that tenant is
(:mod:`qmk.kernel.admit.assist`).

>>> ctx = Context()
>>> head = 'OPENQASM 3.0;\\ninclude "stdgates.inc";\\nqubit[2] q;\\n'
>>> call("validate", {"program": head + "h q[0];"}, ctx)["ok"]
True
>>> call("validate", {"program": head + "cx q[0], q[0];"}, ctx)  # doctest: +ELLIPSIS
{'ok': False, 'code': 'QL107', 'error': ...}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeGuard

from qmk import defaults
from qmk.errors import QMKError
from qmk.qvm.limits import Limits

#: What every tool's ``program`` argument is.
PROGRAM_ARG: Mapping[str, Any] = MappingProxyType(
    {
        "type": "string",
        "description": 'the program text (OpenQASM 2 or 3, QVM assembly, QIR), or "file" '
        "for the user's file",
    }
)


#: A tool call run elsewhere (:attr:`Context.remote`): the tool's name and arguments to its
#: result, a coded refusal raised.
Remote = Callable[[str, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What the tools may touch: the user's file, the size limits, the shot cap, and
    where their work runs.

    Attributes:
        file_text, file_name: the user's file (the program ``"file"``), if any.
        limits: the size limits of a program (``max_nodes`` also caps OpenQASM's loops
            before they unroll).
        max_shots: ``run``'s shot cap.
        remote: runs each tool call whole elsewhere (None: here, ``run`` in-process on
            ideal qubits).
    """

    file_text: str | None = None
    file_name: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_shots: int = defaults.ASSIST_MAX_SHOTS
    remote: Remote | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: its name, what it does (for the model), its JSON Schema, its function,
    and whether it runs a job (``job``: under a kernel its program becomes the caller's
    own job, :func:`planned`)."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    fn: Callable[[Mapping[str, Any], Context], dict[str, Any]]
    job: bool = False

    def schema(self) -> dict[str, Any]:
        """The OpenAI/Ollama ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": json.loads(json.dumps(dict(self.parameters))),
            },
        }


def _graph(args: Mapping[str, Any], ctx: Context) -> Any:
    """The tool's program, read and lowered (not yet verified)."""
    from qmk.frontends.errors import FrontendError
    from qmk.frontends.text import lower_text, sniff

    program = args.get("program")
    if not isinstance(program, str) or not program.strip():
        raise FrontendError.of("bad-value", 'program: give the program text, or "file"')
    if program.strip() == "file":
        if ctx.file_text is None:
            raise FrontendError.of("bad-value", 'program "file": the user gave no file')
        program = ctx.file_text
    kind = sniff(program)
    if kind is None:
        raise FrontendError.of(
            "unknown-format",
            "the program is none of OpenQASM (a header), QVM assembly or JSON, or QIR text",
        )
    limit = ctx.limits.max_bytes
    if limit is not None and len(program.encode()) > limit:
        raise FrontendError.of("bad-value", f"the program is over {limit} bytes")
    return lower_text(program, kind, "program", limits=ctx.limits, max_nodes=ctx.limits.max_nodes)


def _verified(args: Mapping[str, Any], ctx: Context) -> Any:
    from qmk.qvm.verify import verify

    return verify(_graph(args, ctx), limits=ctx.limits)


def _validate(args: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    from qmk.qvm.verify import check

    report = check(_graph(args, ctx), limits=ctx.limits)
    findings = [
        {"code": f.code, "severity": f.severity.value, "message": f.message, "node": f.node_id}
        for f in report.findings
    ]
    return {"ok": report.ok, "findings": findings}


def _info(args: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    summary = _verified(args, ctx).summary()
    keep = ("qubits", "peak_live_qubits", "events", "clifford", "counts", "required_caps")
    return {"ok": True, **{k: summary[k] for k in keep if k in summary}}


def _estimate(args: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """QRE's single point (the fastest variant), or with ``family``, ``distance`` and
    ``t_factories`` the estimate of that variant of the ``plan`` tool (its figures)."""
    from qmk.estimate.counts import count_graph
    from qmk.estimate.report import estimate
    from qmk.estimate.variants import variant_estimate

    counts = count_graph(_verified(args, ctx).graph)
    if "family" in args:
        family, distance, factories = (args.get(k) for k in ("family", "distance", "t_factories"))
        if not (isinstance(family, str) and _integer(distance) and _integer(factories)):
            from qmk.frontends.errors import FrontendError

            raise FrontendError.of(
                "bad-value", "a variant is a family (text), a distance and t_factories (integers)"
            )
        qubit = args.get("qubit")
        result = dict(
            variant_estimate(
                counts,
                qubit if isinstance(qubit, str) else defaults.QUBIT,
                family=family,
                distance=distance,
                t_factories=factories,
            )
        )
    else:
        params: dict[str, Any] = {}
        if isinstance(args.get("qubit"), str):
            params["qubitParams"] = {"name": args["qubit"]}
        result = estimate(counts, params)
    physical = result.get("physicalCounts", {})
    return {
        "ok": True,
        "physicalQubits": physical.get("physicalQubits"),
        "runtime_ns": physical.get("runtime"),
        "rqops": physical.get("rqops"),
        "logicalQubits": result.get("physicalCounts", {})
        .get("breakdown", {})
        .get("algorithmicLogicalQubits"),
        "codeDistance": result.get("logicalQubit", {}).get("codeDistance"),
        "tFactories": physical.get("breakdown", {}).get("numTfactories"),
    }


def _integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _plan(args: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    from qmk.estimate.counts import count_graph
    from qmk.estimate.variants import plan_variants

    budget = args.get("error_budget", 1e-3)
    plan = plan_variants(
        count_graph(_verified(args, ctx).graph), defaults.QUBIT, error_budget=float(budget)
    )
    data = plan.to_json()
    return {"ok": True, "chosen": data.get("chosen"), "objective": data.get("objective")}


def _run(args: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """The ``run`` tool: the machine's defaults (:meth:`RunRequest.build`'s checks, a
    seed drawn and reported when the model names none), with the shots capped at
    :attr:`Context.max_shots` and noise off, in-process (under a kernel the caller's job:
    :func:`planned`)."""
    shots, seed = _shots_and_seed(args, ctx)
    return _run_here(args, ctx, shots, seed)


def _shots_and_seed(args: Mapping[str, Any], ctx: Context) -> tuple[Any, Any]:
    """``run``'s shots (at most :attr:`Context.max_shots`) and seed, as the model gave
    them (the run checks them further; a seed None is drawn)."""
    from qmk.frontends.errors import FrontendError

    shots = args.get("shots", min(defaults.SHOTS, ctx.max_shots))
    if isinstance(shots, int) and not isinstance(shots, bool) and shots > ctx.max_shots:
        raise FrontendError.of("bad-value", f"shots: at most {ctx.max_shots}, got {shots}")
    return shots, args.get("seed")


def _run_here(args: Mapping[str, Any], ctx: Context, shots: Any, seed: Any) -> dict[str, Any]:
    from qmk.execution.runs import run

    result = run(_verified(args, ctx), shots=shots, seed=seed, noise=False)
    return {
        "ok": True,
        "shots": result.shots,
        "seed": result.seed,
        "counts": dict(result.counts),
        "engine": result.engine,
    }


def _tool(
    name: str,
    description: str,
    fn: Callable[[Mapping[str, Any], Context], dict[str, Any]],
    *,
    job: bool = False,
    **extra: Any,
) -> Tool:
    properties = {"program": dict(PROGRAM_ARG), **extra}
    parameters = {"type": "object", "properties": properties, "required": ["program"]}
    return Tool(name, description, MappingProxyType(parameters), fn, job)


#: Every tool the model may call, by name.
TOOLS: Mapping[str, Tool] = MappingProxyType(
    {
        t.name: t
        for t in (
            _tool(
                "validate",
                "read and verify a program with QMK's verifier; returns ok and the findings",
                _validate,
            ),
            _tool(
                "info",
                "a verified program's qubits, events, gate counts and whether it is Clifford",
                _info,
            ),
            _tool(
                "estimate",
                "the physical resources of a program (QMK's estimator, identical to the "
                "Azure Quantum Resource Estimator): physical qubits, runtime, code distance",
                _estimate,
                qubit={"type": "string", "description": "qubit parameter set name"},
                family={"type": "string", "description": "a plan's variant: its family"},
                distance={"type": "integer", "description": "a plan's variant: its distance"},
                t_factories={"type": "integer", "description": "a plan's variant: factories"},
            ),
            _tool(
                "plan",
                "the cheapest code variant (profile) for a program under an error budget",
                _plan,
                error_budget={"type": "number"},
            ),
            _tool(
                "run",
                "run a program on ideal logical qubits with few shots; returns the counts",
                _run,
                job=True,
                shots={"type": "integer", "minimum": 1, "maximum": defaults.ASSIST_MAX_SHOTS},
                seed={"type": "integer", "minimum": 0, "maximum": defaults.SEED_BOUND - 1},
            ),
        )
    }
)


def call(name: str, args: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Call tool ``name`` with ``args``; QMK's refusals come back as data."""
    tool = TOOLS.get(name)
    if tool is None:
        return {"ok": False, "code": "unknown-tool", "error": f"no tool {name!r}: {sorted(TOOLS)}"}
    try:
        return ctx.remote(name, args) if ctx.remote is not None else tool.fn(args, ctx)
    except REFUSALS as exc:
        return refusal(exc)


#: What a tool's work raises that its result says as data (:func:`refusal`).
REFUSALS = (QMKError, MemoryError, RecursionError)


def refusal(exc: QMKError | MemoryError | RecursionError) -> dict[str, Any]:
    """A tool's result for ``exc``: QMK's coded refusal, or a program too large to hold."""
    if not isinstance(exc, QMKError):
        return {"ok": False, "code": "too-large", "error": f"the program is too large: {exc!r}"}
    refused = {"ok": False, "code": exc.code, "error": str(exc)}
    return {**refused, "details": dict(exc.details)} if exc.details else refused


def planned(
    link: Any,
    name: str,
    args: Mapping[str, Any],
    file_text: str | None,
    limits: Limits,
    max_shots: int,
) -> dict[str, Any]:
    """Tool ``name`` for a kernel's assistant, run in the kernel's planner process
    (``link``: its task's line, unused): ``{"result": ...}``, or for ``run`` its program
    lowered, ``{"run": {"graph", "shots", "seed"}}``, which the kernel submits as the
    caller's job; with ``cpu_s``, this process's CPU for it (charged to the tenant)."""
    ctx = Context(file_text=file_text, file_name="program", limits=limits, max_shots=max_shots)
    began = time.thread_time()
    answer: dict[str, Any]
    tool = TOOLS.get(name)
    if tool is not None and tool.job:
        try:
            shots, seed = _shots_and_seed(args, ctx)
            answer = {"run": {"graph": _graph(args, ctx).to_json(), "shots": shots, "seed": seed}}
        except REFUSALS as exc:
            answer = {"result": refusal(exc)}
    else:
        answer = {"result": call(name, args, ctx)}
    return {**answer, "cpu_s": time.thread_time() - began}
