"""OpenQASM 2.0 and 3 programs into QVM graphs, through the ``openqasm3`` reference parser.

What is lowered: qubit and bit registers (``qreg``/``creg``, ``qubit[n]``/``bit[n]``,
scalar ``qubit``/``bit``), calls of the standard gates (``qelib1.inc``,
``stdgates.inc``, the builtins ``U``, ``CX``, ``gphase``) with constant
expressions as parameters, user ``gate`` definitions (inlined), the modifiers
``inv @``, ``ctrl(n) @``, ``negctrl(n) @`` and ``pow(k) @`` (any integer ``k``; a
fraction on a one-qubit gate), ``measure``, ``reset``, ``barrier`` (an epoch
fence), ``if``/``else`` on bits and registers, ``for`` loops over constant ranges
and sets, ``const`` declarations, classical declarations with constant
initialisers, and ``input`` parameters bound by ``params``. Every other construct
is a :class:`~qmk.frontends.errors.FrontendError` naming it and its line.

Classical bits are tracked statically: each measurement writes a new event and a
bit reads the event last written into it (a bit nothing wrote reads 0). A
condition becomes guards: a disjunction of mutually exclusive conjunctions, each
node written once per conjunction. Result keys are Qiskit's: registers in reverse
declaration order separated by spaces, bit 0 of each register rightmost (a scalar
``bit b;`` is a one-bit register named ``b``).

>>> graph = from_qasm('''OPENQASM 2.0;
... include "qelib1.inc";
... qreg q[2];
... creg c[2];
... h q[0];
... cx q[0], q[1];
... measure q -> c;
... ''', name="bell.qasm")
>>> [n.op for n in graph.nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
>>> graph.nodes[1].metadata["source"]
'bell.qasm:5'
>>> from qmk.execution.executor import run
>>> sorted(run(graph, shots=100, seed=1, noise=False).counts)
['00', '11']
"""

from __future__ import annotations

import contextlib
import gc
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qmk.errors import QuotaError
from qmk.frontends import conditions, decompose, dialects, qasm_scan
from qmk.frontends.builder import ProgramBuilder, gate_emitter, gate_op, guard_of
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm_runtime import (
    DEFAULT_LOOP_CAP,
    FUNCTIONS,
    KINDS,
    MAX_LOOP_CAP,
    OPERATORS,
    UNARY,
    Loop,
    Operands,
    Value,
    cast_name,
    cond_text,
    literal,
    zero_of,
)
from qmk.qvm import classical
from qmk.qvm.classical import CType
from qmk.qvm.graph import Graph, gc_paused

#: Gates ``include "qelib1.inc";`` defines (OpenQASM 2.0).
QELIB1_GATES = frozenset(
    [
        "u3",
        "u2",
        "u1",
        "cx",
        "id",
        "u0",
        "u",
        "p",
        "x",
        "y",
        "z",
        "h",
        "s",
        "sdg",
        "t",
        "tdg",
        "rx",
        "ry",
        "rz",
        "sx",
        "sxdg",
        "cz",
        "cy",
        "swap",
        "ch",
        "ccx",
        "cswap",
        "crx",
        "cry",
        "crz",
        "cu1",
        "cp",
        "cu3",
        "csx",
        "cu",
        "rxx",
        "rzz",
        "rccx",
        "rc3x",
        "c3x",
        "c3sqrtx",
        "c4x",
    ]
)
#: Gates ``include "stdgates.inc";`` defines (OpenQASM 3).
STDGATES_GATES = frozenset(
    [
        "p",
        "x",
        "y",
        "z",
        "h",
        "s",
        "sdg",
        "t",
        "tdg",
        "sx",
        "rx",
        "ry",
        "rz",
        "cx",
        "cy",
        "cz",
        "cp",
        "crx",
        "cry",
        "crz",
        "ch",
        "swap",
        "ccx",
        "cswap",
        "cu",
        "CX",
        "phase",
        "cphase",
        "id",
        "u1",
        "u2",
        "u3",
    ]
)
_BUILTINS = {2: frozenset({"U", "CX"}), 3: frozenset({"U", "gphase"})}
_CONSTANTS = {"pi": math.pi, "π": math.pi, "tau": math.tau, "τ": math.tau, "euler": math.e}
_CONSTANTS["ℯ"] = math.e
_FUNCTIONS = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "arcsin": math.asin,
    "arccos": math.acos,
    "arctan": math.atan,
    "exp": math.exp,
    "ln": math.log,
    "sqrt": math.sqrt,
    "ceiling": math.ceil,
    "floor": math.floor,
}
_Cond = conditions.Cond
#: One node of a lowered gate: its op, its local qubits, its angle (None: no angle).
_Step = tuple[str, tuple[int, ...], float | None]


def _plan(low: decompose.Lowered) -> list[_Step]:
    """The nodes ``low`` writes, checked once (as :meth:`ProgramBuilder.gate` checks them)."""
    steps: list[_Step] = []
    for gate, qs, ps in low.ops:
        op, theta = gate_op(gate, len(qs), ps)
        steps.append((op, qs, theta))
    return steps


def from_qasm(
    source: str,
    *,
    name: str = "<qasm>",
    profile: str | None = None,
    params: Mapping[str, float] | None = None,
    version: int | None = None,
    fast: bool = True,
    max_nodes: int | None = None,
) -> Graph:
    """Lower an OpenQASM 2.0 or 3 program (the version comes from its header).

    Args:
        source: the program text.
        name: the file name used in ``metadata.source`` and in errors.
        profile: the code profile of the qubits (None: the runner's default).
        params: values of the program's ``input`` parameters, by name.
        version: 2 or 3 for a program without an ``OPENQASM`` header (default 3); a
            header that says otherwise is an error.
        fast: read the common statements with QMK's scanner
            (:mod:`qmk.frontends.qasm_scan`) and the rest with the reference parser
            (the default); False: the reference parser reads the whole program (slower,
            the same graph and the same errors).
        max_nodes: the most nodes the graph may have (None: no cap). A program of more
            statements than that (plus :data:`STATEMENT_SLACK` for declarations) is
            refused before it is parsed, and a ``for`` loop before it is unrolled: once
            its first pass is lowered, the loop's size is known (at most ``max_nodes``
            passes of all loops together, so a loop of no gates is bounded too).

    Raises:
        FrontendError: a syntax error, an undefined name, a wrong arity or an
            unsupported construct, with its line.
        QuotaError: past ``max_nodes`` (``limit: "max_graph_nodes"``), nothing built.
    """
    prepared = dialects.prepare(source, name, STDGATES_GATES)  # dialects, $n, box
    if max_nodes is not None:
        _check_statements(prepared.source, name, max_nodes)
    reader = _Reader(prepared.source, name, profile, dict(params or {}), version, max_nodes)
    if not fast:
        return dialects.noted(reader.reference(), prepared)
    reader.collect = gc.isenabled()
    with gc_paused():  # the fast lane makes no cycles; the collector would rescan its nodes
        return dialects.noted(reader.read(), prepared)


#: Statements a program may have beyond its node cap (declarations, includes, headers).
STATEMENT_SLACK = 1024


def too_many_nodes(name: str, what: str, needed: int, limit: int) -> QuotaError:
    """The refusal of a program past its node cap (``kernel.max_graph_nodes``)."""
    return QuotaError(
        f"{name}: {what}: at least {needed} nodes, past the {limit} a graph may have "
        "(kernel.max_graph_nodes); nothing was built",
        limit="max_graph_nodes",
        value=limit,
        needed=needed,
    )


def _check_statements(source: str, name: str, limit: int) -> None:
    """Refuse, before parsing, a program of more statements than ``limit`` nodes could
    hold (each gate, measurement or reset statement is at least one node)."""
    statements = source.count(";")
    if statements > limit + STATEMENT_SLACK:
        raise too_many_nodes(name, f"{statements} statements", statements - STATEMENT_SLACK, limit)


def _parse(source: str, name: str, line: int = 1, column: int = 0) -> Any:
    """``source`` by the reference parser (see :func:`qasm_scan.parse_chunk`)."""
    try:
        return qasm_scan.parse_chunk(source, line, column)
    except qasm_scan.ChunkError as exc:
        raise FrontendError.at("syntax", name, exc.line, exc.message) from None
    except RecursionError:
        raise FrontendError.at("syntax", name, None, "the program is nested too deeply") from None


#: The ``OPENQASM`` headers QMK reads: 2.0 (the only OpenQASM 2) and any 3.
_VERSIONS = re.compile(r"2(?:\.0)?|3(?:\.[0-9]+)?")


def _version(header: str | None, asked: int | None, name: str, source: str = "") -> int:
    """The program's OpenQASM version: its header's, else the one asked for, else 3.

    A header of a version that does not exist (``OPENQASM 2.6;``, ``OPENQASM 4;``) is
    QL107: read as another version, the program could mean something else.
    """
    if header is not None and not _VERSIONS.fullmatch(header):
        raise FrontendError.at(
            "bad-value",
            name,
            _header_line(source),
            f"OPENQASM {header} is not a version QMK reads (2.0, or 3 and its minor versions)",
        )
    found = None if header is None else (2 if header.startswith("2") else 3)
    if found is not None and asked is not None and found != asked:
        raise FrontendError.at(
            "bad-value",
            name,
            _header_line(source),
            f"the header says OpenQASM {found}, not {asked} as asked",
        )
    return found or asked or 3


def _header_line(source: str) -> int:
    """The line of the ``OPENQASM`` header in ``source`` (1 when it cannot be told)."""
    found = re.search(r"^[ \t]*OPENQASM\b", source, re.MULTILINE)
    return 1 if found is None else source.count("\n", 0, found.start()) + 1


class _Reader:
    """The fast lane: :class:`qasm_scan.Scanner`'s records lowered directly, its chunks
    parsed by the reference parser and lowered from their AST, in program order.

    Errors come in the reference path's order: a syntax error anywhere comes before any
    other error (once lowering fails, the rest is only checked for syntax).
    """

    def __init__(
        self,
        source: str,
        name: str,
        profile: str | None,
        params: dict[str, float],
        asked: int | None,
        max_nodes: int | None = None,
    ) -> None:
        self.max_nodes = max_nodes
        self.source = source
        self.name = name
        self.profile = profile
        self.params = params
        self.asked = asked
        self.collect = True  # whether the collector ran when the read began

    def read(self) -> Graph:
        scanner = qasm_scan.Scanner(self.source, version=self.asked)
        items: Iterator[Any] = iter(scanner)  # Fast tuples and Chunks, told apart by [0]
        lowerer: _Lowerer | None = None
        failed: FrontendError | None = None
        resolved: dict[str, Any] = {}
        emit: Any = None
        name = self.name
        for item in items:
            if item[0] == "gate":  # the hot path: a gate call seen before, on single qubits
                nodes = resolved.get(item[3])
                if nodes is not None and failed is None:
                    emit(nodes, f"{name}:{item[1]}")
                    continue
            program = None
            if type(item) is qasm_scan.Chunk:
                with self.collecting():
                    program = self.parse(item)
                if program is None:  # the chunk's statements end elsewhere: read it all
                    with self.collecting():
                        return self.reference()
            if lowerer is None:
                header = item[2][0] if item[0] == "header" else None
                if program is not None:
                    header = program.version
                lowerer = _Lowerer(
                    name=self.name,
                    profile=self.profile,
                    params=self.params,
                    version=_version(header, self.asked, self.name, self.source),
                    max_nodes=self.max_nodes,
                )
                scanner.version = lowerer.version
                lowerer.source_lines = self.source.splitlines()
                resolved, emit = lowerer.resolved, lowerer.builder.emit
                # Statements lowered before are emitted by the scanner itself.
                scanner.known = resolved
                scanner.lane = gate_emitter(lowerer.builder.nodes, f"{name}:")
            elif program is not None and program.version is not None:
                with self.collecting():  # a header after the first statement: its error
                    return self.reference()
            if failed is not None:
                continue
            try:
                if program is not None:
                    with self.collecting():
                        lowerer.statements(program.statements, [{}])
                elif item[0] != "header":
                    lowerer.fast(item)
            except FrontendError as exc:
                failed = exc
                scanner.known = {}  # nothing more is lowered
        if failed is not None:
            raise failed
        if lowerer is None:
            lowerer = _Lowerer(
                name=self.name,
                profile=self.profile,
                params=self.params,
                version=_version(None, self.asked, self.name),
                max_nodes=self.max_nodes,
            )
        return lowerer.finish()

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """The collector running (if it ran before) while the reference parser's cyclic
        trees are made and dropped: the fast lane around it pauses it."""
        resume = self.collect and not gc.isenabled()
        if resume:
            gc.enable()
        try:
            yield
        finally:
            if resume:
                gc.disable()

    def reference(self) -> Graph:
        """The program read by the reference parser alone.

        OpenQASM 2's ``opaque`` is not in the reference grammar: when a version 2
        program has one, the scanner finds them, they are blanked out (spaces, lines
        kept) before the parse, and each is declared where it stood.
        """
        opaque: list[tuple[int, int, tuple[Any, ...]]] = []  # (line, column, data)
        text = self.source
        if "opaque" in text:
            scanner = qasm_scan.Scanner(text, version=self.asked, fast=False)
            found: list[Any] = [item for item in scanner if type(item) is not qasm_scan.Chunk]
            if found:
                parts, at = [], 0
                for (start, end), item in zip(scanner.spans, found, strict=True):
                    parts += [text[at:start], re.sub(r"[^\n]", " ", text[start:end])]
                    opaque.append((item[1], scanner.column(start), item[2]))
                    at = end
                text = "".join([*parts, text[at:]])
        program = _parse(text, self.name)
        lowerer = _Lowerer(
            name=self.name,
            profile=self.profile,
            params=self.params,
            version=_version(program.version, self.asked, self.name, self.source),
            max_nodes=self.max_nodes,
        )
        lowerer.source_lines = self.source.splitlines()
        for st in program.statements:
            here = (st.span.start_line, st.span.start_column) if st.span else (0, 0)
            while opaque and opaque[0][:2] < here:
                lowerer.line = opaque[0][0]
                lowerer.fast_opaque(*opaque.pop(0)[2])
            lowerer.statements([st], [{}])
        for line, _, data in opaque:
            lowerer.line = line
            lowerer.fast_opaque(*data)
        return lowerer.finish()

    def parse(self, chunk: qasm_scan.Chunk) -> Any:
        """The chunk's AST; None when the parser stopped at the chunk's own end before
        the program's end (the scanner split a statement: the whole program is read)."""
        text = self.source[chunk.start : chunk.end]
        try:
            return qasm_scan.parse_chunk(text, chunk.line, chunk.column)
        except qasm_scan.ChunkError as exc:
            if exc.at_end and self.source[chunk.end :].strip(" \t\r\n"):
                return None  # (a comment after the chunk: the reference parse tells)
            raise FrontendError.at("syntax", self.name, exc.line, exc.message) from None
        except RecursionError:
            raise FrontendError.at(
                "syntax", self.name, None, "the program is nested too deeply"
            ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class _GateDef:
    """A user gate: parameter names, qubit names, body statements."""

    name: str
    params: tuple[str, ...]
    qubits: tuple[str, ...]
    body: tuple[Any, ...]
    line: int


class _Lowerer:
    """Walks the AST once, writing through a :class:`ProgramBuilder`.

    Why one class: lowering is one walk over one scope (the registers, the event each
    bit last got, the constants and inputs, the gate and def definitions so far), and
    every part of the walk reads or writes it: declarations add to it; gate and def
    bodies are inlined by the same walk; conditions read the events that measurements
    wrote; constant expressions read its values and may call a def; the fast lane
    (statements the scanner read without an AST) declares into the same registers and
    fills the same caches. What needs no scope lives outside: the scanner
    (:mod:`~qmk.frontends.qasm_scan`), the algebra of conditions
    (:mod:`~qmk.frontends.conditions`), the gate decompositions
    (:mod:`~qmk.frontends.decompose`) and the graph builder.
    """

    def __init__(
        self,
        *,
        name: str,
        profile: str | None,
        params: dict[str, float],
        version: int,
        max_nodes: int | None = None,
    ) -> None:
        self.max_nodes = max_nodes
        self.passes = 0  # loop passes lowered or about to be, of all loops (within max_nodes)
        self.name = name
        self.version = version
        self.params = params
        self.builder = ProgramBuilder(profile=profile, source=name, description=name)
        self.qregs: dict[str, list[str]] = {}
        self.cregs: dict[str, list[int]] = {}
        self.bits: list[str | None] = []
        self.values: dict[str, float | int | bool] = {}
        self.gates: dict[str, _GateDef] = {}
        self.standard: set[str] = set(_BUILTINS[version])
        self.opaque: dict[str, tuple[int, int]] = {}
        self.stretches: set[str] = set()
        self.scalars: set[str] = set()  # bit registers declared as a scalar ``bit b;``
        self.consts: set[str] = set()  # the values declared ``const`` (visible in defs)
        self.subroutines: dict[str, Any] = {}  # def name -> its SubroutineDefinition
        self.calling: list[str] = []  # the defs being inlined, outermost first
        self.call_events = 0  # the first event the last inlined call measured
        self.inputs: set[str] = set()  # the ``input`` names declared
        self.widths: dict[str, int] = {}  # declared widths of int[n]/uint[n] variables
        # run-time classical values: variables whose value is computed at run time, the
        # declared type of every classical variable, the loops being lowered (innermost
        # last), the iteration cap of the next while loops, and constant bits' events
        self.runtime: dict[str, Value] = {}
        self.types: dict[str, CType] = {}
        self.loops: list[Loop] = []
        self.loop_cap = DEFAULT_LOOP_CAP
        self.constant_bits: dict[int, str] = {}
        self.scopes: list[set[str]] = []  # the names each open block declared
        # a run-time variable's constant where a condition holds (store), and what each
        # event compact() made stands for
        self.assumed: dict[str, tuple[_Cond, Any]] = {}
        self.implied: dict[str, _Cond] = {}
        self.source_lines: list[str] = []  # the source, for the words a statement starts with
        self.line: int | None = None
        # (name, operand count, parameters) -> the lowered gate and its node plan; emptied
        # whenever a gate definition or include changes what a name means
        self.plans: dict[tuple[Any, ...], tuple[decompose.Lowered, list[_Step]]] = {}
        # a gate call's text -> its nodes (op, qubits, angle), for calls on single qubits
        self.resolved: dict[str, list[tuple[str, tuple[str, ...], float | None]]] = {}
        self.fast_handlers: dict[str, Any] = {
            "measure": self.fast_measure,
            "reset": self.fast_reset,
            "barrier": self.fast_barrier,
            "qreg": self.fast_qreg,
            "creg": self.fast_creg,
            "include": self.include,
            "opaque": self.fast_opaque,
        }

    # ------------------------------------------------------------------ helpers

    def error(self, kind: str, message: str, line: int | None = None) -> FrontendError:
        return FrontendError.at(kind, self.name, line if line is not None else self.line, message)

    def where(self) -> str:
        return f"{self.name}:{self.line}"

    def finish(self) -> Graph:
        """The graph, keyed as Qiskit keys the circuit its importer makes: bit registers
        in reverse declaration order, bit 0 rightmost, separated by spaces; scalar bits
        (``bit b;``, loose clbits in Qiskit) as one group, the first declared rightmost,
        leftmost of the registers (Qiskit's key of a circuit with only loose clbits)."""
        unused = sorted(set(self.params) - self.inputs)
        if unused:
            declared = ", ".join(sorted(self.inputs)) or "none"
            raise FrontendError.at(
                "undefined",
                self.name,
                None,
                f"input {unused[0]} is not declared by the program (its inputs: {declared})",
            )
        registers = [slots for name, slots in self.cregs.items() if name not in self.scalars]
        loose = [slots[0] for name, slots in self.cregs.items() if name in self.scalars]
        groups = [[self.bits[s] for s in reversed(slots)] for slots in reversed(registers)]
        if loose:
            groups.insert(0, [self.bits[s] for s in reversed(loose)])
        language = f"openqasm{self.version}"
        graph = self.builder.build(output=groups, separator=" ", metadata={"language": language})
        if self.max_nodes is not None and len(graph.nodes) > self.max_nodes:
            raise too_many_nodes(self.name, "the program", len(graph.nodes), self.max_nodes)
        return graph

    def declared(self, name: str) -> bool:
        return (
            name in self.qregs or name in self.cregs or name in self.values or name in self.runtime
        )

    def declare(self, name: str) -> None:
        if self.declared(name) or name in self.gates:
            raise self.error("bad-value", f"{name!r} is already declared")
        if self.scopes:
            self.scopes[-1].add(name)

    # ------------------------------------------------------------------ the fast lane

    def fast(self, item: qasm_scan.Fast) -> None:
        """Lower a statement the scanner read (the same as its AST would lower)."""
        kind, self.line, data, text = item
        if kind == "gate":
            nodes = self.resolved.get(text)
            if nodes is None:
                self.fast_gate(text, *data)
                return
            self.builder.emit(nodes, f"{self.name}:{self.line}")
            return
        self.fast_handlers[kind](*data)

    def fast_gate(
        self,
        text: str,
        name: str,
        params: tuple[qasm_scan.Expr, ...],
        operands: tuple[qasm_scan.Operand, ...],
    ) -> None:
        """A gate call; its nodes are kept by the statement's text when the call is on
        single qubits (a name's meaning never changes once defined, and the caches are
        emptied when a gate definition or include could change a gate's)."""
        registers = [self.qubit_operand(reg, index) for reg, index in operands]
        values = [self.angle_of(p) for p in params]
        key = (name, len(registers), *values)
        cached = self.plans.get(key)
        if cached is None:
            low = self.lowered(name, (), values, len(registers), {})
            cached = (low, _plan(low))
            if 0.0 not in values:  # -0.0 == 0.0: such keys would merge two angles
                self.plans[key] = cached
        if any(len(r) != 1 for r in registers):
            self.apply(cached[0], registers, [{}])
            return
        handles = [r[0] for r in registers]
        if len(handles) > 1 and len(set(handles)) != len(handles):
            raise self.error("bad-value", "a gate is applied to the same qubit twice")
        nodes = [(op, tuple([handles[i] for i in local]), theta) for op, local, theta in cached[1]]
        self.resolved[text] = nodes
        self.builder.emit(nodes, f"{self.name}:{self.line}")

    def angle_of(self, expr: qasm_scan.Expr) -> float:
        value = float(self.value_of(expr))
        if not math.isfinite(value):
            raise self.error("bad-value", f"a gate parameter evaluates to {value}")
        return value

    def value_of(self, expr: qasm_scan.Expr) -> Any:
        """A scanned expression's value, as :meth:`evaluate` gives its AST's."""
        kind = expr[0]
        if kind == "n":
            return expr[1]
        if kind == "id":
            return self.name_value(expr[1], {})
        if kind == "neg":
            return -self.value_of(expr[1])
        return self.arith(kind, self.value_of(expr[1]), self.value_of(expr[2]))

    def fast_measure(self, qubit: qasm_scan.Operand, target: qasm_scan.Operand | None) -> None:
        qubits = self.qubit_operand(*qubit)
        if target is None:
            for q in qubits:
                self.measure_into([q], None, [{}])
            return
        self.measure_into(qubits, self.bit_operand(*target), [{}])

    def fast_reset(self, operand: qasm_scan.Operand) -> None:
        for q in self.qubit_operand(*operand):
            self.builder.reset(q, where=self.where())

    def fast_barrier(self, *operands: qasm_scan.Operand) -> None:
        for operand in operands:
            self.qubit_operand(*operand)
        self.builder.fence(where=self.where())

    def fast_qreg(self, name: str, size: int | None) -> None:
        self.declare(name)
        self.qregs[name] = self.builder.allocate(size or 1, where=self.where())

    def fast_creg(self, name: str, size: int | None) -> None:
        self.declare(name)
        self.add_bits(name, size or 1)
        if size is None and self.version != 2:
            self.scalars.add(name)

    def fast_opaque(self, name: str, n_params: int, n_qubits: int) -> None:
        """OpenQASM 2's ``opaque``: a gate with no body, refused only where it is called."""
        if name in self.gates or name in self.opaque:
            raise self.error("bad-value", f"gate {name} is already defined")
        self.forget()
        self.opaque[name] = (n_qubits, n_params)

    def forget(self) -> None:
        """Empty the gate caches: what a gate name means is about to change (the dicts
        are emptied in place: the reader holds ``resolved``)."""
        self.plans.clear()
        self.resolved.clear()

    def qubit_operand(self, name: str, index: int | None) -> list[str]:
        """``name`` or ``name[index]`` as qubits (as :meth:`qubit_list` reads them)."""
        items = self.qregs.get(name)
        if items is None:
            raise self.error("undefined", f"qubit register {name} is not declared")
        if index is None:
            return list(items)
        return [self.pick(items, index, name)]

    def bit_operand(self, name: str, index: int | None) -> list[int]:
        """``name`` or ``name[index]`` as bit slots (as :meth:`bit_slots` reads them)."""
        items = self.cregs.get(name)
        if items is None:
            raise self.error("undefined", f"bit register {name} is not declared")
        if index is None:
            return list(items)
        return [self.pick(items, index, name)]

    def pick(self, items: list[Any], p: int, name: str) -> Any:
        if not -len(items) <= p < len(items):
            raise self.error(
                "bad-value", f"index {p} is out of range for {name} (size {len(items)})"
            )
        return items[p]

    # ------------------------------------------------------------------ statements

    def statements(self, statements: Iterable[Any], cond: _Cond) -> None:
        for statement in statements:
            saved = self.line
            self.line = statement.span.start_line if statement.span else self.line
            loop = self.loops[-1] if self.loops else None
            stops = len(loop.stops) if loop is not None else 0
            self.statement(statement, cond)
            if loop is not None and len(loop.stops) > stops:
                # a break or continue ran under these conditions: what follows runs
                # only where none did
                for stop in loop.stops[stops:]:
                    cond = self.conjoin(cond, self.negate(stop))
                cond = self.compact(cond)
            self.line = saved

    def block(self, statements: Iterable[Any], cond: _Cond) -> None:
        """A block's statements in a scope of their own: what they declare ends with it."""
        self.scopes.append(set())
        try:
            self.statements(statements, cond)
        finally:
            for name in self.scopes.pop():
                for table in (self.values, self.runtime, self.cregs, self.types, self.assumed):
                    table.pop(name, None)
                self.scalars.discard(name)

    def statement(self, st: Any, cond: _Cond) -> None:
        kind = type(st).__name__
        if self.version == 2:
            self.check_version_2(st, kind)
        runtime = self.RUNTIME_STATEMENTS.get(kind)
        if runtime is not None and not (kind == "ClassicalAssignment" and self.is_call(st.rvalue)):
            runtime(self, st, cond)
        else:
            self.other_statement(st, cond, kind)

    def other_statement(self, st: Any, cond: _Cond, kind: str) -> None:
        from openqasm3 import ast

        if isinstance(st, ast.Include):
            self.include(st.filename)
        elif isinstance(st, ast.QubitDeclaration):
            self.qubit_declaration(st)
        elif isinstance(st, ast.ClassicalDeclaration | ast.ConstantDeclaration):
            self.classical_declaration(st, cond)
        elif isinstance(st, ast.IODeclaration):
            self.io_declaration(st)
        elif isinstance(st, ast.QuantumGateDefinition):
            self.gate_definition(st)
        elif isinstance(st, ast.QuantumGate):
            self.gate_call(st, cond)
        elif isinstance(st, ast.QuantumPhase):
            self.phase_call(st, cond)
        elif isinstance(st, ast.QuantumMeasurementStatement):
            self.measure(st, cond)
        elif isinstance(st, ast.QuantumReset):
            for q in self.qubits([st.qubits]):
                for terms in cond:
                    self.builder.reset(q, guard=guard_of(list(terms.items())), where=self.where())
        elif isinstance(st, ast.QuantumBarrier):
            self.qubits(st.qubits)  # names must exist
            if cond:
                self.builder.fence(where=self.where())
        elif isinstance(st, ast.BranchingStatement):
            with self.assuming(cond):
                here = self.condition(st.condition)
            # inside a loop, conditions are made one event each (they would grow with
            # every iteration); outside, guards keep their terms (what the FT lowering
            # and the batch sampler read)
            shrink = self.compact if self.loops else _same
            self.block(st.if_block, shrink(self.conjoin(cond, here)))
            if st.else_block:
                self.block(st.else_block, shrink(self.conjoin(cond, self.negate(here))))
        elif isinstance(st, ast.ForInLoop):
            self.for_loop(st, cond)
        elif isinstance(st, ast.CompoundStatement):
            self.statements(st.statements, cond)
        elif isinstance(st, ast.DelayInstruction):
            self.qubits(st.qubits)  # no idle noise is modelled for a delay: see docs
        elif isinstance(st, ast.Pragma):
            self.pragma(st.command)
        elif isinstance(st, ast.SubroutineDefinition):
            self.subroutine_definition(st)
        elif isinstance(st, ast.ExpressionStatement) and self.is_call(st.expression):
            self.call(st.expression, cond)
        elif isinstance(st, ast.ClassicalAssignment) and self.is_call(st.rvalue):
            self.assign_call(st, cond)
        elif isinstance(st, ast.ReturnStatement) and self.calling:
            raise self.error(
                "unsupported",
                f"a return inside a branch or loop of def {self.calling[-1]}: QMK inlines a "
                "def whose returns are its last statement",
            )
        else:
            raise self.error("unsupported", f"{_describe(kind)} is not supported by QMK")

    #: What OpenQASM 2.0 has: statement kinds, and the word a declaration starts with.
    VERSION_2 = frozenset(
        {
            "Include",
            "QuantumGateDefinition",
            "QuantumGate",
            "QuantumMeasurementStatement",
            "QuantumReset",
            "QuantumBarrier",
            "BranchingStatement",
            "QubitDeclaration",
            "ClassicalDeclaration",
        }
    )

    def check_version_2(self, st: Any, kind: str) -> None:
        """Refuse (QL111) OpenQASM 3 syntax in a program whose header says 2.0."""
        word = self.first_word(st)
        why = None
        if kind == "BranchingStatement" and st.else_block:
            why = "else"
        elif kind not in self.VERSION_2:
            why = _describe(kind)
        elif kind == "QubitDeclaration" and word not in (None, "qreg"):
            why = f"'{word} ...' (OpenQASM 2.0 declares qubits with qreg)"
        elif kind == "ClassicalDeclaration" and word not in (None, "creg"):
            why = f"'{word} ...' (OpenQASM 2.0 declares bits with creg)"
        elif kind == "QuantumMeasurementStatement" and word not in (None, "measure"):
            why = "'c = measure q' (OpenQASM 2.0 writes measure q -> c)"
        elif kind == "QuantumGate" and st.modifiers:
            why = "gate modifiers (inv @, ctrl @, pow @)"
        if why is not None:
            raise self.error(
                "version-rule",
                f"{why} is OpenQASM 3 syntax, and the header says OPENQASM 2.0: write it as "
                "OpenQASM 2.0 does, or make the header OPENQASM 3.0",
            )

    def first_word(self, st: Any) -> str | None:
        """The first word of ``st``'s text (None when its source is not at hand)."""
        span = st.span
        if span is None or not self.source_lines or span.start_line > len(self.source_lines):
            return None
        text = self.source_lines[span.start_line - 1][span.start_column :]
        match = re.match(r"[A-Za-z_]\w*", text)
        return match.group(0) if match else None

    def include(self, filename: str) -> None:
        other = {2: "stdgates.inc", 3: "qelib1.inc"}[self.version]
        if filename == other:
            own = "qelib1.inc" if self.version == 2 else "stdgates.inc"
            raise self.error(
                "version-rule",
                f'include "{filename}" is OpenQASM {5 - self.version}\'s gate library; an '
                f'OpenQASM {self.version} program includes "{own}"',
            )
        self.forget()
        if filename == "qelib1.inc":
            self.standard |= QELIB1_GATES
        elif filename == "stdgates.inc":
            self.standard |= STDGATES_GATES
        else:
            raise self.error(
                "unsupported",
                f'include "{filename}": only "qelib1.inc" and "stdgates.inc" can be included',
            )

    def qubit_declaration(self, st: Any) -> None:
        name = st.qubit.name
        self.declare(name)
        size = 1 if st.size is None else self.integer(st.size, "a register size")
        if size < 1:
            raise self.error("bad-value", f"register {name} must have at least 1 qubit, got {size}")
        self.qregs[name] = self.builder.allocate(size, where=self.where())

    def classical_declaration(self, st: Any, cond: _Cond) -> None:
        from openqasm3 import ast

        name = st.identifier.name
        if isinstance(st.type, ast.BitType):
            const_bits = isinstance(st, ast.ConstantDeclaration)
            if const_bits and (st.init_expression is None or self.is_runtime(st.init_expression)):
                raise self.error("bad-value", f"const {name} needs a value known before the run")
            self.declare(name)
            size = 1 if st.type.size is None else self.integer(st.type.size, "a register size")
            if size < 1:
                raise self.error("bad-value", f"register {name} must have at least 1 bit")
            self.add_bits(name, size)
            if st.type.size is None and self.version != 2:
                self.scalars.add(name)
            init = st.init_expression
            if init is None:
                return
            if isinstance(init, ast.QuantumMeasurement):
                self.measure_into(self.qubits([init.qubit]), self.cregs[name], cond)
                return
            if self.is_call(init):
                self.assign_events(self.cregs[name], self.call(init, cond), cond, name)
                return
            self.store_bits(self.cregs[name], init, [{}])  # a new name: no old value
            if const_bits:  # Q#'s OpenQASM output writes its constant results so
                self.consts.add(name)
            return
        if isinstance(st.type, ast.StretchType) and st.init_expression is None:
            self.declare(name)  # a stretch only delays use: ignored as delays are (see docs)
            self.stretches.add(name)
            return
        if isinstance(st.type, ast.ArrayType | ast.StretchType | ast.DurationType):
            raise self.error("unsupported", f"{type(st.type).__name__} declarations")
        self.declare(name)
        init = st.init_expression
        const = isinstance(st, ast.ConstantDeclaration)
        if const and (init is None or self.is_runtime(init)):
            raise self.error("bad-value", f"const {name} needs a value known before the run")
        if not const:
            self.types[name] = self.ctype(st.type)
        if init is None:
            self.values[name] = zero_of(self.types[name])
        elif not const and self.is_runtime(init):
            self.values[name] = zero_of(self.types[name])
            self.store(name, init, [{}])  # a new name: no old value where cond fails
        else:
            self.values[name] = self.fit(name, st.type, self.evaluate(init))
        if const:
            self.consts.add(name)

    def fit(self, name: str, type_: Any, value: Any) -> Any:
        """``value`` as a variable of ``type_`` holds it: a sized ``int[n]``/``uint[n]``
        must hold it (its width is kept for indexing its bits)."""
        kind = type(type_).__name__
        if kind not in ("IntType", "UintType"):
            return value
        if isinstance(value, float):
            if not value.is_integer():
                raise self.error("bad-value", f"{name} is an integer, not {value}")
            value = int(value)
        size = getattr(type_, "size", None)
        if size is None:
            return int(value)
        width = self.integer(size, "a type width")
        low, high = (0, 2**width) if kind == "UintType" else (-(2 ** (width - 1)), 2 ** (width - 1))
        if not low <= value < high:
            spelled = "uint" if kind == "UintType" else "int"
            raise self.error("bad-value", f"{value} does not fit {name}, a {spelled}[{width}]")
        self.widths[name] = width
        return int(value)

    def add_bits(self, name: str, size: int) -> None:
        """A bit register ``name`` of ``size`` bits that nothing wrote yet."""
        self.cregs[name] = list(range(len(self.bits), len(self.bits) + size))
        self.bits.extend([None] * size)

    def io_declaration(self, st: Any) -> None:
        from openqasm3 import ast

        name = st.identifier.name
        if st.io_identifier == ast.IOKeyword.output:
            if not isinstance(st.type, ast.BitType):
                raise self.error("unsupported", f"output {name}: only bit outputs are supported")
            self.classical_declaration(
                ast.ClassicalDeclaration(type=st.type, identifier=st.identifier), [{}]
            )
            return
        if isinstance(st.type, ast.BitType):
            raise self.error("unsupported", f"input bit {name}: only numeric inputs are supported")
        self.declare(name)
        self.inputs.add(name)
        if name not in self.params:
            raise self.error(
                "undefined",
                f"input {name} has no value: give it with qmk run --input {name}=VALUE "
                f"(inputs={{'{name}': ...}} in Python)",
            )
        value = self.params[name]
        kind = type(st.type).__name__
        if kind == "BoolType" and isinstance(value, int | float) and value in (0, 1):
            self.values[name] = bool(value)
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error("bad-value", f"input {name} must be a number, got {value!r}")
        if kind in ("FloatType", "AngleType"):
            value = float(value)
        elif kind not in ("IntType", "UintType"):
            raise self.error("unsupported", f"input {name} of type {kind.removesuffix('Type')}")
        self.values[name] = self.fit(name, st.type, value)

    # ------------------------------------------------------------------ subroutines

    def subroutine_definition(self, st: Any) -> None:
        name = st.name.name
        if name in self.subroutines or name in self.gates or self.declared(name):
            raise self.error("bad-value", f"{name!r} is already defined")
        self.subroutines[name] = st

    def is_call(self, expr: Any) -> bool:
        from openqasm3 import ast

        return isinstance(expr, ast.FunctionCall) and expr.name.name in self.subroutines

    def call(self, fc: Any, cond: _Cond) -> Any:
        """Inline the def that ``fc`` calls under ``cond``; its return value: a list of
        events (a bit or bit register), a number, or None.

        The body sees its arguments (qubits by reference; bits and numbers by value),
        its own locals and the program's constants and gates, as OpenQASM 3 says.
        """
        from openqasm3 import ast

        name = fc.name.name
        st = self.subroutines[name]
        if name in self.calling:
            chain = " -> ".join([*self.calling, name])
            raise self.error("unsupported", f"def {name} calls itself ({chain}): recursion")
        if len(fc.arguments) != len(st.arguments):
            raise self.error(
                "arity",
                f"def {name} takes {len(st.arguments)} argument(s), got {len(fc.arguments)}",
            )
        qregs: dict[str, list[str]] = {}
        bit_args: list[tuple[str, list[str | None]]] = []
        values: dict[str, Any] = {n: self.values[n] for n in self.consts if n in self.values}
        for param, arg in zip(st.arguments, fc.arguments, strict=True):
            pname = param.name.name
            if isinstance(param, ast.QuantumArgument):
                handles = self.qubit_expression(arg)
                want = 1 if param.size is None else self.integer(param.size, "a register size")
                if len(handles) != want:
                    raise self.error(
                        "arity", f"def {name}: {pname} takes {want} qubit(s), got {len(handles)}"
                    )
                qregs[pname] = handles
            elif isinstance(param.type, ast.BitType):
                if not self.bits_read(arg):
                    raise self.error("unsupported", f"def {name}: {pname} takes bits")
                slots, _ = self.read_bits(arg)
                want = 1 if param.type.size is None else self.integer(param.type.size, "a size")
                if len(slots) != want:
                    raise self.error(
                        "arity", f"def {name}: {pname} takes {want} bit(s), got {len(slots)}"
                    )
                bit_args.append((pname, [self.bits[s] for s in slots]))
            else:
                values[pname] = self.fit(pname, param.type, self.evaluate(arg))
        saved = (self.qregs, self.cregs, self.values, self.scalars, self.widths, self.stretches)
        saved_runtime = (self.runtime, self.types, self.loops, self.assumed)
        saved_line = self.line
        self.qregs, self.cregs, self.values = qregs, {}, values
        self.runtime, self.types, self.loops, self.assumed = {}, {}, [], {}
        self.scalars, self.widths, self.stretches = set(), dict(self.widths), set()
        for pname, events in bit_args:
            self.add_bits(pname, len(events))
            for slot, event in zip(self.cregs[pname], events, strict=True):
                self.bits[slot] = event
        start = len(self.builder.events)
        self.calling.append(name)
        try:
            return self.inline_body(st, cond)
        finally:
            self.call_events = start
            self.calling.pop()
            (self.qregs, self.cregs, self.values, self.scalars, self.widths, self.stretches) = saved
            self.runtime, self.types, self.loops, self.assumed = saved_runtime
            self.line = saved_line

    def inline_body(self, st: Any, cond: _Cond) -> Any:
        from openqasm3 import ast

        for body_st in st.body:
            if not isinstance(body_st, ast.ReturnStatement):
                self.statements([body_st], cond)
                continue
            self.line = body_st.span.start_line if body_st.span else self.line
            expr = body_st.expression
            if expr is None:
                result = None
            elif isinstance(expr, ast.QuantumMeasurement):
                qubits = self.qubits([expr.qubit])
                self.add_bits(" return", len(qubits))  # a name no program can spell
                self.measure_into(qubits, self.cregs[" return"], cond)
                result = [self.bits[s] for s in self.cregs.pop(" return")]
            elif self.bits_read(expr):
                result = [self.bits[s] for s in self.read_bits(expr)[0]]
            else:
                result = self.evaluate(expr)
            return self.returned(st, result)
        return self.returned(st, None)

    def returned(self, st: Any, result: Any) -> Any:
        """``result`` checked against the def's return type."""
        from openqasm3 import ast

        name, kind = st.name.name, st.return_type
        if kind is None:
            if result is not None:
                raise self.error("bad-value", f"def {name} has no return type but returns a value")
            return None
        if result is None:
            raise self.error("bad-value", f"def {name} ends without returning a value")
        if isinstance(kind, ast.BitType):
            want = 1 if kind.size is None else self.integer(kind.size, "a size")
            if not isinstance(result, list):
                result = [None] * want if not int(result) else None
                if result is None:
                    raise self.error(
                        "unsupported", f"def {name} returns a constant 1 as a bit: not supported"
                    )
            if len(result) != want:
                raise self.error(
                    "arity", f"def {name} returns {len(result)} bit(s); its type says {want}"
                )
            return result
        if isinstance(result, list):
            raise self.error("unsupported", f"def {name} returns bits as a number")
        return self.fit(f"the value of def {name}", kind, result)

    def pure_call(self, fc: Any) -> Any:
        """A def called inside an expression: it may compute, but not touch qubits."""
        before = len(self.builder.nodes)
        value = self.call(fc, [{}])
        if len(self.builder.nodes) != before:
            raise self.error(
                "unsupported",
                f"def {fc.name.name} applies quantum operations inside an expression: call it "
                "as a statement or assign its bits first",
            )
        if isinstance(value, list):
            raise self.error(
                "unsupported", f"def {fc.name.name} returns bits: assign them to a bit first"
            )
        return value

    def qubit_expression(self, expr: Any) -> list[str]:
        """The qubits an argument expression names (``q``, ``q[1]``, ``q[0:2]``)."""
        from openqasm3 import ast

        if isinstance(expr, ast.Identifier):
            return self.qubit_list(expr)
        if isinstance(expr, ast.IndexExpression) and isinstance(expr.collection, ast.Identifier):
            index = expr.index
            indices = [index] if isinstance(index, ast.DiscreteSet) else [list(index)]
            name = expr.collection.name
            if name not in self.qregs:
                raise self.error("undefined", f"qubit register {name} is not declared")
            return self.select(self.qregs[name], indices, name)
        raise self.error("unsupported", f"{_describe(type(expr).__name__)} as a qubit argument")

    def assign_call(self, st: Any, cond: _Cond) -> None:
        """``c = f(...)`` (or ``c[i] = f(...)``): the def's returned bits into ``c``."""
        if st.op.name != "=":
            raise self.error("unsupported", f"the assignment {st.op.name} of a def's value")
        if not self.is_bits(st.lvalue):
            raise self.error(
                "unsupported", "assigning a def's value to anything but bits (classical assignment)"
            )
        slots = self.bit_slots(st.lvalue)
        self.assign_events(slots, self.call(st.rvalue, cond), cond, "the target")

    def assign_events(self, slots: list[int], events: Any, cond: _Cond, what: str) -> None:
        """Bits ``slots`` now read ``events`` (a def's returned bits)."""
        if not isinstance(events, list):
            raise self.error("unsupported", f"{what} is bits; the def returns no bits")
        if len(events) != len(slots):
            raise self.error(
                "arity", f"a def returns {len(events)} bit(s) into {len(slots)} bit(s)"
            )
        if not cond:
            return
        if cond != [{}]:
            # a skipped assignment leaves the old value: only bits nothing wrote yet, given
            # events measured under this same condition (a skipped measurement reads 0)
            fresh = set(self.builder.events[self.call_events :])
            if (
                len(cond) > 1
                or any(self.bits[s] is not None for s in slots)
                or any(e is not None and e not in fresh for e in events)
            ):
                raise self.error(
                    "unsupported",
                    "a def's bits assigned under a condition QMK cannot track statically "
                    "(assign them unconditionally, or to bits nothing wrote yet)",
                )
        for slot, event in zip(slots, events, strict=True):
            self.bits[slot] = event

    def gate_definition(self, st: Any) -> None:
        name = st.name.name
        if name in self.gates or name in self.opaque:
            raise self.error("bad-value", f"gate {name} is already defined")
        self.forget()
        self.gates[name] = _GateDef(
            name=name,
            params=tuple(a.name for a in st.arguments),
            qubits=tuple(q.name for q in st.qubits),
            body=tuple(st.body),
            line=self.line or 0,
        )

    def for_loop(self, st: Any, cond: _Cond) -> None:
        from openqasm3 import ast

        var = st.identifier.name
        if self.declared(var):
            raise self.error("bad-value", f"loop variable {var!r} shadows a declared name")
        spec = st.set_declaration
        values: Sequence[float | int | bool]
        if isinstance(spec, ast.RangeDefinition):
            values = self.range_of(spec, None)  # lazy: its length is known, nothing built
        elif isinstance(spec, ast.DiscreteSet):
            values = [self.evaluate(v) for v in spec.values]
        else:
            raise self.error("unsupported", "for loops over a register or array")
        try:
            passes = len(values)
        except OverflowError:  # a range longer than sys.maxsize
            passes = sys.maxsize
        self.charge_passes(passes)
        block = st.block if isinstance(st.block, list) else [st.block]
        loop = Loop()
        self.loops.append(loop)
        try:
            active = cond
            for index, value in enumerate(values):
                if not active:
                    break
                before = len(self.builder.nodes)
                self.values[var] = value
                active = self.iteration(block, active, loop)
                if index == 0 and self.max_nodes is not None:
                    self.check_unrolled(len(self.builder.nodes) - before, passes)
        finally:
            self.loops.pop()
            self.values.pop(var, None)

    def charge_passes(self, passes: int) -> None:
        """Count a loop's passes against the cap before any of them is lowered."""
        if self.max_nodes is None:
            return
        self.passes += passes
        if self.passes > self.max_nodes:
            raise too_many_nodes(
                self.where(),
                f"loops of {self.passes} passes in all (a pass counts as a node)",
                self.passes,
                self.max_nodes,
            )

    def check_unrolled(self, per_pass: int, passes: int) -> None:
        """Refuse a loop whose first pass wrote ``per_pass`` nodes when its ``passes``
        would pass the cap, before the second pass is lowered."""
        assert self.max_nodes is not None
        total = len(self.builder.nodes) + per_pass * (passes - 1)
        if total > self.max_nodes:
            raise too_many_nodes(
                self.where(),
                f"a for loop of {passes} passes of {per_pass} nodes each",
                total,
                self.max_nodes,
            )

    # ------------------------------------------------------------------ gates

    def gate_call(self, st: Any, cond: _Cond) -> None:
        operands = [self.qubit_list(q) for q in st.qubits]
        params = [self.evaluate_angle(a) for a in st.arguments]
        low = self.lowered(st.name.name, st.modifiers, params, len(operands), {})
        self.apply(low, operands, cond)

    def phase_call(self, st: Any, cond: _Cond) -> None:
        operands = [self.qubit_list(q) for q in st.qubits]
        param = self.evaluate_angle(st.argument)
        low = self.lowered("gphase", st.modifiers, [param], len(operands), {})
        self.apply(low, operands, cond)

    def apply(self, low: decompose.Lowered, operands: list[list[str]], cond: _Cond) -> None:
        """Write ``low`` on ``operands`` (registers broadcast) once per condition term."""
        if not operands:
            return  # a bare global phase: nothing a program can observe
        sizes = {len(o) for o in operands if len(o) != 1}
        if len(sizes) > 1:
            raise self.error("arity", f"registers of different sizes {sorted(sizes)} in one call")
        width = sizes.pop() if sizes else 1
        for k in range(width):
            handles = [o[k] if len(o) > 1 else o[0] for o in operands]
            if len(set(handles)) != len(handles):
                raise self.error("bad-value", "a gate is applied to the same qubit twice")
            for terms in cond:
                guard = guard_of(list(terms.items()))
                for gate, qs, ps in low.ops:
                    self.builder.gate(
                        gate, [handles[i] for i in qs], ps, guard=guard, where=self.where()
                    )

    def lowered(
        self,
        name: str,
        modifiers: Sequence[Any],
        params: list[float],
        n_operands: int,
        scope: dict[str, float],
    ) -> decompose.Lowered:
        """The gate ``name`` with ``modifiers`` applied, as exact basic gates."""
        if not modifiers:  # the fast lane's calls: no need of the reference parser's AST
            return self.base_gate(name, params, n_operands)
        from openqasm3 import ast

        controls: list[tuple[int, bool]] = []
        for mod in modifiers:
            if mod.modifier in (ast.GateModifierName.ctrl, ast.GateModifierName.negctrl):
                n = (
                    1
                    if mod.argument is None
                    else self.integer(mod.argument, "a control count", scope)
                )
                if n < 1:
                    raise self.error("bad-value", f"a control count must be >= 1, got {n}")
                controls.append((n, mod.modifier == ast.GateModifierName.ctrl))
        n_controls = sum(n for n, _ in controls)
        base = self.base_gate(name, params, n_operands - n_controls)
        low = base
        try:
            for mod in reversed(modifiers):
                kind = mod.modifier
                if kind == ast.GateModifierName.inv:
                    low = decompose.inverse(low)
                elif kind == ast.GateModifierName.pow:
                    low = decompose.power(low, float(self.evaluate(mod.argument, scope)))
                else:
                    n = 1 if mod.argument is None else self.integer(mod.argument, "", scope)
                    positive = kind == ast.GateModifierName.ctrl
                    low = decompose.controlled(low, n, None if positive else 0)
        except ValueError as exc:
            raise self.error("unsupported", f"{name}: {exc}") from None
        return low

    def base_gate(self, name: str, params: list[float], n_qubits: int) -> decompose.Lowered:
        if name in self.gates:
            definition = self.gates[name]
            self.check_arity(name, len(definition.qubits), len(definition.params), n_qubits, params)
            return self.gate_body(definition, params)
        if name in self.opaque:
            want_q, want_p = self.opaque[name]
            self.check_arity(name, want_q, want_p, n_qubits, params)
            raise self.error(
                "unsupported",
                f"gate {name} is opaque (declared without a body): QMK cannot run it; "
                "give it a gate definition instead",
            )
        if name in self.standard:
            want_q, want_p = decompose.arity(name)
            self.check_arity(name, want_q, want_p, n_qubits, params)
            return decompose.lower_gate(name, params)
        if self.version == 3 and name == "CX":
            raise self.error(
                "version-rule",
                "CX is OpenQASM 2's built-in gate; OpenQASM 3 builds in only U and gphase "
                '(include "stdgates.inc" for cx, or CX as its backwards-compatible name)',
            )
        hint = ""
        if decompose.canonical(name) is not None:
            lib = '"qelib1.inc"' if self.version == 2 else '"stdgates.inc"'
            hint = f" (it is a standard gate: include {lib} or define it)"
        raise self.error("undefined", f"gate {name} is not defined{hint}")

    def check_arity(
        self, name: str, want_q: int, want_p: int, got_q: int, params: Sequence[float]
    ) -> None:
        if len(params) != want_p:
            raise self.error("arity", f"gate {name} takes {want_p} parameter(s), got {len(params)}")
        if got_q != want_q:
            raise self.error("arity", f"gate {name} takes {want_q} qubit(s), got {got_q}")

    def gate_body(self, definition: _GateDef, params: list[float]) -> decompose.Lowered:
        from openqasm3 import ast

        scope = dict(zip(definition.params, params, strict=True))
        index = {q: i for i, q in enumerate(definition.qubits)}
        ops: list[decompose.Instr] = []
        phase = 0.0
        for st in definition.body:
            if isinstance(st, ast.QuantumBarrier):
                continue
            at_line = f" (line {st.span.start_line})" if st.span else ""
            if not isinstance(st, ast.QuantumGate | ast.QuantumPhase):
                kind = _describe(type(st).__name__)
                raise self.error("unsupported", f"{kind} inside gate {definition.name}{at_line}")
            local: list[int] = []
            for q in st.qubits:
                if isinstance(q, ast.IndexedIdentifier):
                    raise self.error(
                        "unsupported",
                        f"indexed qubit {q.name.name}[...] inside gate {definition.name}{at_line}: "
                        "the arguments of a gate are single qubits",
                    )
                if q.name not in index:
                    raise self.error(
                        "undefined",
                        f"gate {definition.name} uses a qubit that is not one of its arguments"
                        f"{at_line}",
                    )
                local.append(index[q.name])
            if isinstance(st, ast.QuantumPhase):
                name, args = "gphase", [st.argument]
            else:
                name, args = st.name.name, st.arguments
            values = [self.evaluate_angle(a, scope) for a in args]
            if name == definition.name:
                raise self.error("unsupported", f"gate {name} calls itself")
            inner = self.lowered(name, st.modifiers, values, len(local), scope)
            ops.extend((g, tuple(local[i] for i in qs), ps) for g, qs, ps in inner.ops)
            phase += inner.phase
        return decompose.Lowered(num_qubits=len(definition.qubits), ops=tuple(ops), phase=phase)

    # ------------------------------------------------------------------ measurement

    def measure(self, st: Any, cond: _Cond) -> None:
        qubits = self.qubits([st.measure.qubit])
        if st.target is None:
            for q in qubits:
                self.measure_into([q], None, cond)
            return
        self.measure_into(qubits, self.bit_slots(st.target), cond)

    def measure_into(self, qubits: list[str], slots: list[int] | None, cond: _Cond) -> None:
        if slots is not None and len(slots) != len(qubits):
            raise self.error("arity", f"measuring {len(qubits)} qubit(s) into {len(slots)} bit(s)")
        if not cond:
            return
        cond = self.compact(cond) if len(cond) > 1 else cond
        guard = guard_of(list(cond[0].items()))
        for k, q in enumerate(qubits):
            event = self.builder.measure(q, guard=guard, where=self.where())
            if slots is None:
                continue
            old = self.bits[slots[k]]
            if cond != [{}] and old is not None:
                # the bit keeps its old value where the measurement did not run
                ops = Operands()
                bit = classical.make_type("bit", 1)
                new, was = ops.ref(bit, (event,)), ops.ref(bit, (old,))
                (event,) = self.calc(bit, f"({new} if {cond_text(cond, ops)} else {was})", ops)
            self.bits[slots[k]] = event

    # ------------------------------------------------------------------ run-time values

    def pragma(self, command: str) -> None:
        """``pragma qmk loop_cap N``: the iteration cap of the while loops that follow.
        Other pragmas say nothing to QMK."""
        words = command.split()
        if words[:2] != ["qmk", "loop_cap"]:
            return
        if len(words) != 3 or not words[2].isdigit() or not 1 <= int(words[2]) <= MAX_LOOP_CAP:
            raise self.error(
                "bad-value", f"pragma qmk loop_cap takes one integer 1..{MAX_LOOP_CAP}: {command!r}"
            )
        self.loop_cap = int(words[2])

    def ctype(self, type_: Any) -> CType:
        """An AST scalar type as a :class:`~qmk.qvm.classical.CType`."""
        kind = KINDS.get(type(type_).__name__)
        if kind is None:
            raise self.error("unsupported", f"{_describe(type(type_).__name__)} values")
        size = getattr(type_, "size", None)
        width = classical.DEFAULT_WIDTH[kind] if size is None else self.integer(size, "a width")
        try:
            return classical.make_type(kind, width)
        except classical.ClassicalError as exc:
            raise self.error("bad-value", str(exc)) from None

    def is_runtime(self, expr: Any) -> bool:
        """Whether ``expr`` reads a value known only at run time (bits, or a variable
        computed from them)."""
        from openqasm3 import ast

        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Identifier):
                if node.name in self.runtime or node.name in self.cregs:
                    return True
            elif isinstance(node, ast.UnaryExpression):
                stack.append(node.expression)
            elif isinstance(node, ast.BinaryExpression):
                stack += [node.lhs, node.rhs]
            elif isinstance(node, ast.Cast):
                stack.append(node.argument)
            elif isinstance(node, ast.IndexExpression):
                stack.append(node.collection)
            elif isinstance(node, ast.IndexedIdentifier):
                stack.append(node.name)
            elif isinstance(node, ast.FunctionCall):
                stack += list(node.arguments)
        return False

    def text(self, expr: Any, ops: Operands) -> str:
        """``expr`` as CALC expression text, the run-time values it reads in ``ops``."""
        from openqasm3 import ast

        if not self.is_runtime(expr):
            try:
                return literal(self.evaluate(expr))
            except ValueError as exc:
                raise self.error("bad-value", str(exc)) from None
        if isinstance(expr, ast.Identifier) and expr.name in self.runtime:
            value = self.runtime[expr.name]
            return ops.ref(value.type, value.events)
        if self.is_bits(expr):
            return self.bits_ref(self.bit_slots(expr), ops)
        if isinstance(expr, ast.IndexExpression) and isinstance(expr.collection, ast.Identifier):
            value = self.runtime[expr.collection.name]
            events = self.select(list(value.events), [expr.index], expr.collection.name)
            return ops.ref(classical.make_type("bit", len(events)), tuple(events))
        if isinstance(expr, ast.UnaryExpression):
            return f"({UNARY[expr.op.name]}{self.text(expr.expression, ops)})"
        if isinstance(expr, ast.BinaryExpression):
            op = OPERATORS.get(expr.op.name, expr.op.name)
            return f"({self.text(expr.lhs, ops)} {op} {self.text(expr.rhs, ops)})"
        if isinstance(expr, ast.Cast):
            return f"{cast_name(self.ctype(expr.type))}({self.text(expr.argument, ops)})"
        if isinstance(expr, ast.FunctionCall):
            return self.call_text(expr, ops)
        raise self.error(
            "unsupported", f"{_describe(type(expr).__name__)} in a run-time expression"
        )

    def call_text(self, fc: Any, ops: Operands) -> str:
        name, args = fc.name.name, [self.text(a, ops) for a in fc.arguments]
        if name in FUNCTIONS and len(args) == 1:
            return f"{FUNCTIONS[name]}({args[0]})"
        if name == "mod" and len(args) == 2:
            return f"({args[0]} % {args[1]})"
        if name == "pow" and len(args) == 2:
            return f"({args[0]} ** {args[1]})"
        if name in self.subroutines:
            raise self.error("unsupported", f"def {name} called on values known only at run time")
        raise self.error("undefined", f"function {name} with {len(args)} argument(s)")

    def bits_ref(self, slots: Sequence[int], ops: Operands) -> str:
        """Bits as an operand (a bit nothing wrote reads a constant 0)."""
        events = tuple(self.bits[s] or self.constant_bit(0) for s in slots)
        return ops.ref(classical.make_type("bit", len(events)), events)

    def constant_bit(self, value: int) -> str:
        """An event that holds ``value`` in every shot."""
        event = self.constant_bits.get(value)
        if event is None:
            (event,) = self.builder.calc(
                "bool", 1, "True" if value else "False", where=self.where()
            )
            self.constant_bits[value] = event
        return event

    def calc(self, t: CType, text: str, ops: Operands) -> list[str]:
        """A CALC of ``text`` stored as ``t``; a mistyped expression is QL107 at its line
        (not a verifier finding about a node the user never wrote)."""
        try:
            classical.prepare(str(t), ops.reads, text, len(ops.inputs))
        except classical.ClassicalError as exc:
            raise self.error("bad-value", f"a run-time value that does not type: {exc}") from None
        return self.builder.calc(
            str(t), t.width, text, reads=ops.reads, inputs=ops.inputs, where=self.where()
        )

    def compact(self, cond: _Cond) -> _Cond:
        """``cond`` as one event test when it has more than one term or many literals (so
        guards stay short and conditions stay small as loops unroll)."""
        if len(cond) <= 1 and all(len(term) <= 2 for term in cond):
            return cond
        ops = Operands()
        (event,) = self.calc(classical.BOOL, cond_text(cond, ops), ops)
        self.implied[event] = cond
        return [{event: 1}]

    def runtime_condition(self, expr: Any) -> _Cond:
        """A condition on values known only at run time: one bool computed by a CALC."""
        from openqasm3 import ast

        if isinstance(expr, ast.Identifier) and expr.name in self.runtime:
            value = self.runtime[expr.name]
            if value.type.kind in ("bool", "bit") and value.type.width == 1:
                return [{value.events[0]: 1}]
        ops = Operands()
        (event,) = self.calc(classical.BOOL, f"bool({self.text(expr, ops)})", ops)
        return [{event: 1}]

    def assignment(self, st: Any, cond: _Cond) -> None:
        """``x = e``, ``x += e`` ...: a variable, bits or a bit of a register."""
        from openqasm3 import ast

        op = st.op.name
        target = st.lvalue
        if isinstance(target, ast.IndexedIdentifier):
            if len(target.indices) != 1:
                raise self.error("unsupported", "multi-dimensional indexing in an assignment")
            target_expr: Any = ast.IndexExpression(collection=target.name, index=target.indices[0])
        else:
            target_expr = target
        base = getattr(target, "name", None)
        base = getattr(base, "name", base)
        if base in self.consts and base in self.cregs:  # a const bit register
            raise self.error("bad-value", f"{base} is a constant: it cannot be assigned")
        rhs = st.rvalue
        if isinstance(rhs, ast.QuantumMeasurement):
            if op != "=":
                raise self.error("unsupported", f"{op} of a measurement")
            self.measure_into(self.qubits([rhs.qubit]), self.bit_slots(target_expr), cond)
            return
        if op != "=":
            binary = ast.BinaryOperator[op[:-1]]
            rhs = ast.BinaryExpression(op=binary, lhs=target_expr, rhs=rhs)
        if self.is_bits(target_expr):
            self.store_bits(self.bit_slots(target_expr), rhs, cond)
            return
        if not isinstance(target, ast.Identifier) or target.name not in self.types:
            shown = getattr(target, "name", None)
            shown = getattr(shown, "name", shown)
            if isinstance(target, ast.Identifier) and (shown in self.values or shown in _CONSTANTS):
                raise self.error("bad-value", f"{shown} is a constant: it cannot be assigned")
            if isinstance(target, ast.IndexedIdentifier) and shown in self.types:
                raise self.error("unsupported", f"assigning one bit of {shown}, an integer")
            raise self.error("undefined", f"{shown} is not a declared variable")
        self.store(target.name, rhs, cond)

    def store(self, name: str, rhs: Any, cond: _Cond) -> None:
        """Variable ``name`` takes ``rhs`` where ``cond`` holds (its old value elsewhere).

        ``rhs`` is read under ``cond`` (:meth:`assuming`); a value it has there that is
        known before the run is remembered with ``cond`` (where ``cond`` holds later, the
        variable is that constant), so a loop counter stays a constant along the path
        where its loop runs."""
        t = self.types[name]
        if not cond:
            return
        ops = Operands()
        with self.assuming(cond):
            known = not self.is_runtime(rhs)
            value = self.constant_of(name, t, self.evaluate(rhs)) if known else None
            text = f"{cast_name(t)}({literal(value) if known else self.text(rhs, ops)})"
        if cond == [{}] and value is not None:  # known before the run, everywhere
            self.runtime.pop(name, None)
            self.assumed.pop(name, None)
            self.values[name] = value
            return
        if cond != [{}]:
            old = self.runtime.get(name)
            was = ops.ref(old.type, old.events) if old else literal(self.values[name])
            text = f"({text} if {cond_text(cond, ops)} else {cast_name(t)}({was}))"
        events = self.calc(t, text, ops)
        self.values.pop(name, None)
        self.runtime[name] = Value(t, tuple(events))
        if known:
            self.assumed[name] = (cond, value)
        else:
            self.assumed.pop(name, None)

    @contextlib.contextmanager
    def assuming(self, context: _Cond) -> Iterator[None]:
        """Read expressions where ``context`` holds: a run-time variable whose remembered
        condition holds there (:meth:`store`) reads as its constant meanwhile."""
        moved: dict[str, Value] = {}
        for name, (pred, value) in self.assumed.items():
            if name in self.runtime and self.holds_under(context, pred):
                moved[name] = self.runtime.pop(name)
                self.values[name] = value
        try:
            yield
        finally:
            for name, runtime in moved.items():
                self.values.pop(name, None)
                self.runtime[name] = runtime

    def holds_under(self, context: _Cond, pred: _Cond) -> bool:
        """Whether ``pred`` holds wherever ``context`` does (False when it cannot tell): an
        event :meth:`compact` made stands for the condition it was made of."""
        for term in context:
            facts = dict(term)
            todo = [e for e, v in term.items() if v == 1]
            while todo:
                made = self.implied.get(todo.pop())
                if made is not None and len(made) == 1:
                    for event, value in made[0].items():
                        if event not in facts:
                            facts[event] = value
                            if value == 1:
                                todo.append(event)
            if not any(all(facts.get(e) == v for e, v in p.items()) for p in pred):
                return False
        return True

    def constant_of(self, name: str, t: CType, value: Any) -> Any:
        """A constant stored as a variable of type ``t`` (integers wrap to its width)."""
        if t.kind == "bool":
            return bool(value)
        if t.kind in ("float", "angle"):
            return float(value)
        if isinstance(value, float) and not value.is_integer():
            return classical.cast(classical.FLOAT, t, value)
        return classical.wrap(t, int(value))

    def store_bits(self, slots: list[int], rhs: Any, cond: _Cond) -> None:
        """Bits ``slots`` take ``rhs`` where ``cond`` holds."""
        if not cond:
            return
        same = self.same_bits(rhs, len(slots)) if cond == [{}] else None
        if same is not None:  # the same bits: the same events
            for slot, event in zip(slots, same, strict=True):
                self.bits[slot] = event
            return
        t = classical.make_type("bit", len(slots))
        ops = Operands()
        text = f"{cast_name(t)}({self.text(rhs, ops)})"
        if cond != [{}]:
            text = f"({text} if {cond_text(cond, ops)} else {self.bits_ref(slots, ops)})"
        for slot, event in zip(slots, self.calc(t, text, ops), strict=True):
            self.bits[slot] = event

    def same_bits(self, rhs: Any, width: int) -> list[str | None] | None:
        """The events ``rhs`` reads as ``width`` bits when it is bits as they are (bits, a
        run-time variable, a bit of one, or a cast to ``bit[width]`` of one of that
        width); None when it computes."""
        from openqasm3 import ast

        if self.is_bits(rhs):
            slots = self.bit_slots(rhs)
            return [self.bits[s] for s in slots] if len(slots) == width else None
        if isinstance(rhs, ast.Cast) and isinstance(rhs.type, ast.BitType):
            size = 1 if rhs.type.size is None else self.integer(rhs.type.size, "a width")
            return self.same_bits(rhs.argument, width) if size == width else None
        if isinstance(rhs, ast.IndexExpression) and isinstance(rhs.collection, ast.Identifier):
            value = self.runtime.get(rhs.collection.name)
            if value is None or value.type.kind == "float":
                return None
            events = self.select(list(value.events), [rhs.index], rhs.collection.name)
            return list(events) if len(events) == width else None
        if isinstance(rhs, ast.Identifier) and rhs.name in self.runtime:
            value = self.runtime[rhs.name]
            if value.type.kind == "float" or value.type.width != width:
                return None
            return list(value.events)
        return None

    def while_loop(self, st: Any, cond: _Cond) -> None:
        """Unrolled up to the loop cap: iteration k runs where the loop still runs; a shot
        still looping after the cap stops the run (a HALT node, QE115)."""
        cap = self.loop_cap
        self.charge_passes(cap)  # at most cap passes: refused past the graph cap unbuilt
        block = st.block if isinstance(st.block, list) else [st.block]
        loop = Loop()
        self.loops.append(loop)
        try:
            active = cond
            for k in range(cap + 1):
                with self.assuming(active):
                    here = self.condition(st.while_condition)
                run = self.conjoin(active, here)
                if not run:
                    return
                if k == cap:
                    self.overrun(run, "while loop", cap)
                    return
                before = len(self.builder.nodes)
                active = self.iteration(block, self.compact(run), loop)
                if k == 0 and self.max_nodes is not None:
                    self.check_unrolled(len(self.builder.nodes) - before, cap)
        finally:
            self.loops.pop()

    def iteration(self, block: list[Any], run: _Cond, loop: Loop) -> _Cond:
        """One iteration of a loop's body under ``run``; where the loop goes on."""
        loop.broke, loop.stops = [], []
        self.block(block, run)
        return self.compact(self.conjoin(run, self.negate(loop.broke)))

    def overrun(self, run: _Cond, what: str, cap: int) -> None:
        message = f"the {what} at line {self.line} ran past its iteration cap of {cap}"
        if run == [{}]:
            raise self.error(
                "loop-cap",
                f"this {what} runs past its iteration cap of {cap} in every run: bound it, or "
                "raise the cap with 'pragma qmk loop_cap N' before it",
            )
        for terms in run:
            self.builder.halt(message, guard=guard_of(list(terms.items())), where=self.where())

    def switch(self, st: Any, cond: _Cond) -> None:
        """``switch``: each case runs where the target equals one of its values and no
        case before it matched; ``default`` where none did."""
        from openqasm3 import ast

        taken: _Cond = []
        seen: set[int] = set()
        for values, body in st.cases:
            here: _Cond = []
            for value in values:
                number = self.integer(value, "a case value")
                if number in seen:
                    raise self.error("bad-value", f"case {number} appears twice in one switch")
                seen.add(number)
                test = ast.BinaryExpression(
                    op=ast.BinaryOperator["=="], lhs=st.target, rhs=ast.IntegerLiteral(number)
                )
                with self.assuming(cond):
                    here = self.disjoin(here, self.condition(test))
            here = self.compact(self.conjoin(here, self.negate(taken)))
            self.block(body.statements, self.compact(self.conjoin(cond, here)))
            taken = self.compact(self.disjoin(taken, here))
        if st.default is not None:
            self.block(st.default.statements, self.compact(self.conjoin(cond, self.negate(taken))))

    def loop_exit(self, st: Any, cond: _Cond) -> None:
        """``break`` or ``continue`` under ``cond``."""
        word = "break" if type(st).__name__ == "BreakStatement" else "continue"
        if not self.loops:
            raise self.error("bad-value", f"{word} outside a loop")
        if not cond:
            return
        loop = self.loops[-1]
        loop.stops.append(cond)
        if word == "break":
            loop.broke = loop.broke + cond  # exclusive: each stop runs where none did before

    RUNTIME_STATEMENTS: Mapping[str, Any] = {
        "ClassicalAssignment": assignment,
        "WhileLoop": while_loop,
        "SwitchStatement": switch,
        "BreakStatement": loop_exit,
        "ContinueStatement": loop_exit,
    }

    # ------------------------------------------------------------------ conditions

    def condition(self, expr: Any) -> _Cond:
        """``expr`` as mutually exclusive conjunctions of event tests."""
        from openqasm3 import ast

        if isinstance(expr, ast.UnaryExpression) and expr.op.name == "!":
            return self.negate(self.condition(expr.expression))
        if isinstance(expr, ast.BinaryExpression):
            op = expr.op.name
            if op == "&&":
                return self.conjoin(self.condition(expr.lhs), self.condition(expr.rhs))
            if op == "||":
                return self.disjoin(self.condition(expr.lhs), self.condition(expr.rhs))
            if op in ("==", "!=") and self.register_test(expr.lhs, expr.rhs):
                bits, value = self.comparison(expr.lhs, expr.rhs)
                equal = self.equals(bits, value)
                return equal if op == "==" else self.negate(equal)
        if (
            isinstance(expr, ast.Cast)
            and type(expr.type).__name__ == "BoolType"
            and self.bits_read(expr.argument)
        ):
            return self.condition(expr.argument)
        if self.bits_read(expr):
            slots, _ = self.read_bits(expr)
            return self.negate(self.equals(slots, 0))
        if self.is_runtime(expr):
            return self.runtime_condition(expr)
        try:
            value = self.evaluate(expr)
        except FrontendError as exc:
            if exc.name != "unsupported":  # an undefined name, a bad value: said as they are
                raise
            raise self.error(
                "unsupported",
                "this condition: QMK lowers conditions on bits and registers (==, !=, !, &&, "
                "||, casts such as int[n](c) and bool(c[i])) and on constants",
            ) from None
        return [{}] if value else []

    def register_test(self, lhs: Any, rhs: Any) -> bool:
        """Whether ``lhs == rhs`` compares bits with a constant integer (tested on the bits'
        events directly; anything else run-time is computed)."""
        for bits, other in ((lhs, rhs), (rhs, lhs)):
            if self.bits_read(bits) and not self.is_runtime(other):
                with contextlib.suppress(FrontendError):
                    value = self.evaluate(other)
                    return not isinstance(value, float) or value.is_integer()
        return False

    def comparison(self, lhs: Any, rhs: Any) -> tuple[list[int], int]:
        """A register (or a cast of one) compared with a constant: its bits and the value
        they must spell (a negative value of a signed cast in two's complement)."""
        bits, other = (lhs, rhs) if self.bits_read(lhs) else (rhs, lhs)
        if self.bits_read(other):
            raise self.error("unsupported", "a comparison of two registers")
        value = self.evaluate(other)
        if isinstance(value, float) and not value.is_integer():
            raise self.error("bad-value", f"a register compared with a non-integer {value}")
        slots, signed = self.read_bits(bits)
        number = int(value)
        if signed and number < 0:
            number += 2 ** len(slots)
        return slots, number

    def bits_read(self, expr: Any) -> bool:
        """Whether ``expr`` reads bits: a bit register, one of its bits, or an integer
        cast of one (``int[4](c)``, ``uint(c)``)."""
        from openqasm3 import ast

        if isinstance(expr, ast.Cast) and type(expr.type).__name__ in ("IntType", "UintType"):
            return self.is_bits(expr.argument)
        return self.is_bits(expr)

    def read_bits(self, expr: Any) -> tuple[list[int], bool]:
        """The bit slots ``expr`` reads (bit 0 first), and whether they are read as a
        signed (two's complement) number.

        ``int[n](c)``/``uint[n](c)`` of an m-bit register reads its low ``min(n, m)``
        bits (a wider cast extends with zeros: unsigned); ``int(c)``/``uint(c)``
        without a width read all of it, unsigned.
        """
        from openqasm3 import ast

        if not isinstance(expr, ast.Cast):
            return self.bit_slots(expr), False
        slots = self.bit_slots(expr.argument)
        size = getattr(expr.type, "size", None)
        if size is None:
            return slots, False
        width = self.integer(size, "a cast width")
        if width < 1:
            raise self.error("bad-value", f"a cast to a width of {width} bits")
        signed = type(expr.type).__name__ == "IntType" and width <= len(slots)
        return slots[:width], signed

    def equals(self, slots: list[int], value: int) -> _Cond:
        """Bits ``slots`` (bit 0 first) spell ``value``."""
        return conditions.equals([self.bits[s] for s in slots], value)

    def negate(self, cond: _Cond) -> _Cond:
        try:
            return conditions.negate(cond)
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None

    def conjoin(self, a: _Cond, b: _Cond) -> _Cond:
        try:
            return conditions.conjoin(a, b)
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None

    def disjoin(self, a: _Cond, b: _Cond) -> _Cond:
        try:
            return conditions.disjoin(a, b)
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None

    # ------------------------------------------------------------------ operands

    def is_bits(self, expr: Any) -> bool:
        from openqasm3 import ast

        if isinstance(expr, ast.Identifier):
            return expr.name in self.cregs
        if isinstance(expr, ast.IndexExpression | ast.IndexedIdentifier):
            base = expr.collection if isinstance(expr, ast.IndexExpression) else expr.name
            return isinstance(base, ast.Identifier) and base.name in self.cregs
        return False

    def bit_slots(self, expr: Any) -> list[int]:
        from openqasm3 import ast

        if isinstance(expr, ast.Identifier):
            if expr.name not in self.cregs:
                raise self.error("undefined", f"bit register {expr.name} is not declared")
            return list(self.cregs[expr.name])
        if isinstance(expr, ast.IndexExpression):
            name, indices = expr.collection, [expr.index]
        else:
            name, indices = expr.name, expr.indices
        if not isinstance(name, ast.Identifier) or name.name not in self.cregs:
            shown = getattr(name, "name", "?")
            raise self.error("undefined", f"bit register {shown} is not declared")
        return self.select(self.cregs[name.name], indices, name.name)

    def qubits(self, operands: Iterable[Any]) -> list[str]:
        out: list[str] = []
        for operand in operands:
            out.extend(self.qubit_list(operand))
        return out

    def qubit_list(self, operand: Any) -> list[str]:
        from openqasm3 import ast

        if isinstance(operand, ast.Identifier):
            name, indices = operand.name, []
        elif isinstance(operand, ast.IndexedIdentifier):
            name, indices = operand.name.name, operand.indices
        else:
            raise self.error("unsupported", f"{_describe(type(operand).__name__)} as a qubit")
        if name.startswith("$"):
            raise self.error("unsupported", f"physical qubit {name}: declare qubit registers")
        if name not in self.qregs:
            raise self.error("undefined", f"qubit register {name} is not declared")
        return self.select(self.qregs[name], indices, name)

    def select(self, items: list[Any], indices: Sequence[Any], name: str) -> list[Any]:
        from openqasm3 import ast

        if not indices:
            return list(items)
        if len(indices) > 1:
            raise self.error("unsupported", f"multi-dimensional indexing of {name}")
        index = indices[0]
        if isinstance(index, ast.DiscreteSet):
            positions = [self.integer(v, "an index") for v in index.values]
        else:
            positions = []
            for part in index:
                if isinstance(part, ast.RangeDefinition):
                    positions.extend(self.range_values(part, len(items)))
                else:
                    positions.append(self.integer(part, "an index"))
        return [self.pick(items, p, name) for p in positions]

    def range_values(self, spec: Any, size: int | None) -> list[int]:
        return list(self.range_of(spec, size))

    def range_of(self, spec: Any, size: int | None) -> range:
        """The values of an OpenQASM 3 range (which includes its end), unbuilt."""
        start = 0 if spec.start is None else self.integer(spec.start, "a range start")
        step = 1 if spec.step is None else self.integer(spec.step, "a range step")
        if spec.end is None:
            if size is None:
                raise self.error("bad-value", "a range without an end")
            end = size - 1
        else:
            end = self.integer(spec.end, "a range end")
        if step == 0:
            raise self.error("bad-value", "a range with step 0")
        # OpenQASM 3 ranges include their end
        return range(start, end + (1 if step > 0 else -1), step)

    # ------------------------------------------------------------------ expressions

    def integer(self, expr: Any, what: str, scope: Mapping[str, Any] | None = None) -> int:
        value = self.evaluate(expr, scope)
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise self.error("bad-value", f"{what or 'this value'} must be an integer, got {value}")
        return int(value)

    def evaluate_angle(self, expr: Any, scope: Mapping[str, Any] | None = None) -> float:
        value = float(self.evaluate(expr, scope))
        if not math.isfinite(value):
            raise self.error("bad-value", f"a gate parameter evaluates to {value}")
        return value

    def evaluate(self, expr: Any, scope: Mapping[str, Any] | None = None) -> Any:
        """A constant expression's value."""
        from openqasm3 import ast

        scope = scope or {}
        if isinstance(expr, ast.IntegerLiteral | ast.FloatLiteral | ast.BooleanLiteral):
            return expr.value
        if isinstance(expr, ast.Identifier):
            return self.name_value(expr.name, scope)
        if isinstance(expr, ast.UnaryExpression):
            value = self.evaluate(expr.expression, scope)
            op = expr.op.name
            if op == "-":
                return -value
            if op == "!":
                return not value
            return ~int(value)
        if isinstance(expr, ast.BinaryExpression):
            return self.binary(expr.op.name, expr.lhs, expr.rhs, scope)
        if isinstance(expr, ast.FunctionCall) and expr.name.name in self.subroutines:
            return self.pure_call(expr)
        if isinstance(expr, ast.FunctionCall):
            name = expr.name.name
            args = [self.evaluate(a, scope) for a in expr.arguments]
            if name in _FUNCTIONS and len(args) == 1:
                try:
                    return _FUNCTIONS[name](args[0])
                except (ValueError, OverflowError):
                    raise self.error("bad-value", f"{name}({args[0]}) is undefined") from None
            if name == "mod" and len(args) == 2:
                return math.fmod(args[0], args[1])
            if name == "pow" and len(args) == 2:
                return args[0] ** args[1]
            raise self.error("undefined", f"function {name} with {len(args)} argument(s)")
        if isinstance(expr, ast.Cast):
            value = self.evaluate(expr.argument, scope)
            type_name = type(expr.type).__name__
            if type_name in ("IntType", "UintType", "BitType"):
                return int(value)
            if type_name == "BoolType":
                return bool(value)
            return float(value)
        if isinstance(expr, ast.IndexExpression):
            return self.bit_of(expr, scope)
        if isinstance(expr, ast.DurationLiteral):
            raise self.error("unsupported", "durations")
        raise self.error(
            "unsupported", f"{_describe(type(expr).__name__)} in a constant expression"
        )

    def bit_of(self, expr: Any, scope: Mapping[str, Any]) -> int:
        """``x[i]`` of a constant integer ``x``: its bit ``i`` (bit 0 least significant;
        a negative ``i`` counts from the top of a sized ``int[n]``/``uint[n]``)."""
        from openqasm3 import ast

        base = expr.collection
        value = self.evaluate(base, scope)
        name = base.name if isinstance(base, ast.Identifier) else "a value"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error("unsupported", f"indexing {name}, which is not an integer")
        index = expr.index
        if isinstance(index, ast.DiscreteSet) or len(index) != 1:
            raise self.error("unsupported", f"indexing {name} by anything but one integer")
        (position,) = index
        if isinstance(position, ast.RangeDefinition):
            raise self.error("unsupported", f"a range of the bits of {name}")
        i = self.integer(position, "an index", scope)
        width = self.widths.get(name) if isinstance(base, ast.Identifier) else None
        if i < 0 and width is not None:
            i += width
        if i < 0 or (width is not None and i >= width):
            size = "" if width is None else f" (width {width})"
            raise self.error("bad-value", f"bit {i} of {name} is out of range{size}")
        return (value >> i) & 1

    def name_value(self, name: str, scope: Mapping[str, Any]) -> Any:
        """The value a name stands for in a constant expression."""
        if name in scope:
            return scope[name]
        if name in self.values:
            return self.values[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in self.runtime:
            raise self.error(
                "unsupported",
                f"{name} holds a value known only at run time here; QMK takes gate parameters, "
                "indices, widths and loop ranges known before the run",
            )
        if name in self.cregs or name in self.qregs:
            raise self.error("unsupported", f"{name} used as a number")
        if name in self.stretches:
            raise self.error(
                "unsupported", f"stretch {name}: a stretch is supported only in delay[...]"
            )
        raise self.error("undefined", f"{name} is not defined")

    def binary(self, op: str, lhs: Any, rhs: Any, scope: Mapping[str, Any]) -> Any:
        a = self.evaluate(lhs, scope)
        b = self.evaluate(rhs, scope)
        return self.arith(op, a, b)

    def arith(self, op: str, a: Any, b: Any) -> Any:
        """``a op b`` for the binary operators of constant expressions."""
        try:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
                    return a // b if a % b == 0 else a / b
                return a / b
            if op == "%":
                return a % b
            if op == "**":
                return a**b
            comparisons = {
                "==": a == b,
                "!=": a != b,
                "<": a < b,
                ">": a > b,
                "<=": a <= b,
                ">=": a >= b,
            }
            if op in comparisons:
                return comparisons[op]
            if op == "&&":
                return bool(a) and bool(b)
            if op == "||":
                return bool(a) or bool(b)
            ints = {"&": int.__and__, "|": int.__or__, "^": int.__xor__}
            if op in ints:
                return ints[op](int(a), int(b))
            if op == "<<":
                return int(a) << int(b)
            if op == ">>":
                return int(a) >> int(b)
        except ZeroDivisionError:
            raise self.error("bad-value", "division by zero") from None
        except OverflowError:
            raise self.error("bad-value", "a constant expression overflows") from None
        raise self.error("unsupported", f"operator {op}")


def _same(cond: _Cond) -> _Cond:
    return cond


def _describe(kind: str) -> str:
    """A readable name for an AST node class."""
    names = {
        "WhileLoop": "while loop",
        "SwitchStatement": "switch statement",
        "SubroutineDefinition": "def (subroutine definition)",
        "ClassicalAssignment": "classical assignment",
        "ExpressionStatement": "expression statement",
        "ReturnStatement": "return statement",
        "BreakStatement": "break",
        "ContinueStatement": "continue",
        "AliasStatement": "let (alias)",
        "Box": "box",
        "CalibrationDefinition": "defcal",
        "CalibrationStatement": "cal block",
        "CalibrationGrammarDeclaration": "defcalgrammar",
        "ExternDeclaration": "extern declaration",
        "EndStatement": "end statement",
        "QuantumMeasurement": "measure expression",
        "ForInLoop": "for loop",
        "ConstantDeclaration": "const declaration",
        "IODeclaration": "input/output declaration",
        "QuantumPhase": "gphase",
        "DelayInstruction": "delay",
        "Pragma": "pragma",
    }
    return names.get(kind, kind)
