"""OpenQASM 2.0 and 3 programs into QVM graphs, through the ``openqasm3`` reference parser.

What is lowered:

- qubit and bit registers (``qreg``/``creg``, ``qubit[n]``/``bit[n]``, scalar
  ``qubit``/``bit``);
- calls of the standard gates (``qelib1.inc``, ``stdgates.inc``, the builtins ``U``,
  ``CX``, ``gphase``) with constant expressions as parameters;
- user ``gate`` definitions (inlined), and the modifiers ``inv @``, ``ctrl(n) @``,
  ``negctrl(n) @`` and ``pow(k) @`` (any integer ``k``; a fraction on a one-qubit gate);
- ``measure``, ``reset``, ``barrier`` (an epoch fence);
- ``if``/``else`` on bits and registers, ``for`` loops over constant ranges and sets;
- ``const`` declarations, classical declarations with constant initialisers, and
  ``input`` parameters bound by ``params``.

Every other construct is a :class:`~qmk.frontends.errors.FrontendError` naming it and
its line.

Classical bits are tracked statically: each measurement writes a new event and a
bit reads the event last written into it (a bit nothing wrote reads 0). A
condition becomes guards: a disjunction of mutually exclusive conjunctions, each
node written once per conjunction. Result keys are Qiskit's: registers in reverse
declaration order separated by spaces, bit 0 of each register rightmost (a scalar
``bit b;`` is a one-bit register named ``b``). An ``int[n]``/``uint[n]`` a measurement
writes into (or declared ``output``) holds results: its bits are a register too.

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
>>> from qmk.execution import run
>>> sorted(run(graph, shots=100, seed=1, noise=False).counts)
['00', '11']
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from qmk.frontends import dialects, qasm_scan
from qmk.frontends.builder import guard_of
from qmk.frontends.errors import FrontendError, too_many_nodes
from qmk.frontends.qasm_classical import Classical
from qmk.frontends.qasm_gates import Gates
from qmk.frontends.qasm_library import QELIB1_GATES, STDGATES_GATES
from qmk.frontends.qasm_runtime import KINDS, Operands, cond_text, zero_of
from qmk.frontends.qasm_scope import Cond, describe
from qmk.qvm import classical
from qmk.qvm.fold import rows
from qmk.qvm.graph import Graph, gc_paused

__all__ = ["QELIB1_GATES", "STATEMENT_SLACK", "STDGATES_GATES", "from_qasm", "too_many_nodes"]


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
            refused before it is parsed. A ``for`` loop is refused before it is
            unrolled: once its first pass is lowered, the loop's size is known. All
            loops together make at most ``max_nodes`` passes, so a loop of no gates is
            bounded too.

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
        for item in items:
            if item[0] == "gate":  # the hot path: a gate call seen before, on single qubits
                nodes = resolved.get(item[3])
                if nodes is not None and failed is None:
                    emit(nodes, item[1])
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
                resolved, emit = lowerer.resolved, lowerer.emit
                # Statements lowered before are emitted by the scanner itself.
                scanner.known = resolved
                scanner.lane = emit
                scanner.shape = lowerer.shaped
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
                scanner.known, scanner.shape = {}, None  # nothing more is lowered
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


class _Lowerer(Gates):
    """Walks the AST once, writing through a :class:`ProgramBuilder`: the statements,
    declarations and defs, on top of the gates, the classical part and the scope it
    shares with them (:mod:`~qmk.frontends.qasm_scope`)."""

    # ------------------------------------------------------------------ statements

    def finish(self) -> Graph:
        """The graph, keyed as Qiskit keys the circuit its importer makes. Bit registers
        come in reverse declaration order, bit 0 rightmost, separated by spaces. Scalar
        bits (``bit b;``, loose clbits in Qiskit) are one group, the first declared
        rightmost, leftmost of the registers (Qiskit's key of a circuit with only loose
        clbits). An
        ``int[n]``/``uint[n]`` that holds results (measured into, or ``output``) is a
        register of its ``n`` bits among them, in its declaration's place."""
        unused = sorted(set(self.params) - self.inputs)
        if unused:
            declared = ", ".join(sorted(self.inputs)) or "none"
            raise FrontendError.at(
                "undefined",
                self.name,
                None,
                f"input {unused[0]} is not declared by the program (its inputs: {declared})",
            )
        registers = [
            (self.stamps[name], [self.bits[s] for s in reversed(slots)])
            for name, slots in self.cregs.items()
            if name not in self.scalars
        ]
        registers += [
            (self.stamps[name], list(reversed(self.variable_events(name))))
            for name in self.results
            if name in self.types
        ]
        registers.sort(key=lambda register: register[0])
        loose = [slots[0] for name, slots in self.cregs.items() if name in self.scalars]
        groups: list[list[str | None]] = [bits for _, bits in reversed(registers)]
        if loose:
            groups.insert(0, [self.bits[s] for s in reversed(loose)])
        language = f"openqasm{self.version}"
        graph = self.builder.build(output=groups, separator=" ", metadata={"language": language})
        stored = rows(graph.nodes) + rows(graph.blocks)  # a folded loop: its rows, not passes
        if self.max_nodes is not None and stored > self.max_nodes:
            raise too_many_nodes(self.name, "the program", stored, self.max_nodes)
        return graph

    def statement(self, st: Any, cond: Cond) -> None:
        kind = type(st).__name__
        if self.version == 2:
            self.check_version_2(st, kind)
        runtime = self.RUNTIME_STATEMENTS.get(kind)
        if runtime is not None and not (kind == "ClassicalAssignment" and self.is_call(st.rvalue)):
            runtime(self, st, cond)
        else:
            self.other_statement(st, cond, kind)

    def other_statement(self, st: Any, cond: Cond, kind: str) -> None:
        handler = self.STATEMENTS.get(kind)
        if handler is not None:
            handler(self, st, cond)
        elif kind == "ExpressionStatement" and self.is_call(st.expression):
            self.call(st.expression, cond)
        elif kind == "ClassicalAssignment" and self.is_call(st.rvalue):
            self.assign_call(st, cond)
        elif kind == "ReturnStatement" and self.calling:
            raise self.error(
                "unsupported",
                f"a return inside a branch or loop of def {self.calling[-1]}: QMK inlines a "
                "def whose returns are its last statement",
            )
        else:
            raise self.error("unsupported", f"{describe(kind)} is not supported by QMK")

    def reset(self, st: Any, cond: Cond) -> None:
        for q in self.qubits([st.qubits]):
            for terms in cond:
                self.builder.reset(q, guard=guard_of(list(terms.items())), where=self.where())

    def barrier(self, st: Any, cond: Cond) -> None:
        self.qubits(st.qubits)  # names must exist
        if cond:
            self.builder.fence(where=self.where())

    def branch(self, st: Any, cond: Cond) -> None:
        """``if``/``else``: each block under its condition."""
        with self.assuming(cond):
            here = self.condition(st.condition)
        # inside a loop, conditions are made one event each (they would grow with
        # every iteration); outside, guards keep their terms (what the FT lowering
        # and the batch sampler read)
        shrink = self.compact if self.loops else _same
        self.block(st.if_block, shrink(self.conjoin(cond, here)))
        if st.else_block:
            self.block(st.else_block, shrink(self.conjoin(cond, self.negate(here))))

    #: How each kind of statement (its AST class: none of them has subclasses) lowers,
    #: but those of :data:`RUNTIME_STATEMENTS` and the calls of defs.
    STATEMENTS: Mapping[str, Callable[[_Lowerer, Any, Cond], object]] = {
        "Include": lambda self, st, cond: self.include(st.filename),
        "QubitDeclaration": lambda self, st, cond: self.qubit_declaration(st),
        "ClassicalDeclaration": lambda self, st, cond: self.classical_declaration(st, cond),
        "ConstantDeclaration": lambda self, st, cond: self.classical_declaration(st, cond),
        "IODeclaration": lambda self, st, cond: self.io_declaration(st),
        "QuantumGateDefinition": lambda self, st, cond: self.gate_definition(st),
        "QuantumGate": lambda self, st, cond: self.gate_call(st, cond),
        "QuantumPhase": lambda self, st, cond: self.phase_call(st, cond),
        "QuantumMeasurementStatement": lambda self, st, cond: self.measure(st, cond),
        "QuantumReset": reset,
        "QuantumBarrier": barrier,
        "BranchingStatement": branch,
        "ForInLoop": lambda self, st, cond: self.for_loop(st, cond),
        "CompoundStatement": lambda self, st, cond: self.statements(st.statements, cond),
        # no idle noise is modelled for a delay: see docs
        "DelayInstruction": lambda self, st, cond: self.qubits(st.qubits),
        "Pragma": lambda self, st, cond: self.pragma(st.command),
        "SubroutineDefinition": lambda self, st, cond: self.subroutine_definition(st),
    }

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
            why = describe(kind)
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

    # ------------------------------------------------------------------ declarations

    def qubit_declaration(self, st: Any) -> None:
        name = st.qubit.name
        self.declare(name)
        size = 1 if st.size is None else self.integer(st.size, "a register size")
        if size < 1:
            raise self.error("bad-value", f"register {name} must have at least 1 qubit, got {size}")
        self.qregs[name] = self.builder.allocate(size, where=self.where())

    def classical_declaration(self, st: Any, cond: Cond) -> None:
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
            self.types[name] = self.typed[name] = self.ctype(st.type)
        if not const and isinstance(init, ast.QuantumMeasurement):  # int[4] c = measure q;
            self.values[name] = zero_of(self.types[name])
            self.measure_to(self.qubits([init.qubit]), st.identifier, cond)
            return
        if init is None:
            self.values[name] = zero_of(self.types[name])
        elif not const and self.is_runtime(init):
            self.values[name] = zero_of(self.types[name])
            self.store(name, init, [{}])  # a new name: no old value where cond fails
        else:
            value = self.fit(name, st.type, self.evaluate(init))
            if type(st.type).__name__ in KINDS:  # as its type holds it (an angle: mod 2 pi)
                self.typed[name] = self.ctype(st.type)
                value = self.constant_of(name, self.typed[name], value)
            self.values[name] = value
        if const:
            self.consts.add(name)

    def io_declaration(self, st: Any) -> None:
        from openqasm3 import ast

        name = st.identifier.name
        if st.io_identifier == ast.IOKeyword.output:
            if not isinstance(st.type, ast.BitType | ast.IntType | ast.UintType):
                raise self.error(
                    "unsupported", f"output {name}: only bit, int and uint outputs are supported"
                )
            self.classical_declaration(
                ast.ClassicalDeclaration(type=st.type, identifier=st.identifier), [{}]
            )
            if not isinstance(st.type, ast.BitType):
                self.results.add(name)
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
        self.typed[name] = self.ctype(st.type)  # as its type holds it (an angle: mod 2 pi)
        self.values[name] = self.constant_of(name, self.typed[name], self.fit(name, st.type, value))

    # ------------------------------------------------------------------ subroutines

    def subroutine_definition(self, st: Any) -> None:
        name = st.name.name
        if name in self.subroutines or name in self.gates or self.declared(name):
            raise self.error("bad-value", f"{name!r} is already defined")
        self.subroutines[name] = st

    def is_call(self, expr: Any) -> bool:
        from openqasm3 import ast

        return isinstance(expr, ast.FunctionCall) and expr.name.name in self.subroutines

    def call(self, fc: Any, cond: Cond) -> Any:
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
        typed = {n: self.typed[n] for n in values if n in self.typed}
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
                if type(param.type).__name__ in KINDS:  # a number by value, of its type
                    typed[pname] = self.ctype(param.type)
                    values[pname] = self.constant_of(pname, typed[pname], values[pname])
        saved = (self.qregs, self.cregs, self.values, self.scalars, self.widths, self.stretches)
        saved_runtime = (self.runtime, self.types, self.typed, self.loops, self.assumed)
        saved_line = self.line
        self.qregs, self.cregs, self.values = qregs, {}, values
        self.runtime, self.types, self.typed, self.loops, self.assumed = {}, {}, typed, [], {}
        self.scalars, self.widths, self.stretches = set(), dict(self.widths), set()
        for pname, events in bit_args:
            self.add_bits(pname, len(events))
            for slot, event in zip(self.cregs[pname], events, strict=True):
                self.bits[slot] = event
        start, before, where = len(self.builder.events), len(self.builder.nodes), self.where()
        self.calling.append(name)
        try:
            result = self.inline_body(st, cond)
            if result is None and not bit_args and cond == [{}]:  # a CALL row of its block
                key = (name, *(repr(values.get(p.name.name)) for p in st.arguments))
                self.as_call(before, [q for h in qregs.values() for q in h], key, where)
            return result
        finally:
            self.call_events = start
            self.calling.pop()
            (self.qregs, self.cregs, self.values, self.scalars, self.widths, self.stretches) = saved
            self.runtime, self.types, self.typed, self.loops, self.assumed = saved_runtime
            self.line = saved_line

    def inline_body(self, st: Any, cond: Cond) -> Any:
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
        raise self.error("unsupported", f"{describe(type(expr).__name__)} as a qubit argument")

    def assign_call(self, st: Any, cond: Cond) -> None:
        """``c = f(...)`` (or ``c[i] = f(...)``): the def's returned bits into ``c``."""
        if st.op.name != "=":
            raise self.error("unsupported", f"the assignment {st.op.name} of a def's value")
        if not self.is_bits(st.lvalue):
            raise self.error(
                "unsupported", "assigning a def's value to anything but bits (classical assignment)"
            )
        slots = self.bit_slots(st.lvalue)
        self.assign_events(slots, self.call(st.rvalue, cond), cond, "the target")

    def assign_events(self, slots: list[int], events: Any, cond: Cond, what: str) -> None:
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
            # a skipped assignment leaves the old value. Bits nothing wrote yet given events
            # measured under this same condition read the events as they are (a skipped
            # measurement reads 0); others take a CALC: the events where cond holds, the
            # old bits elsewhere (rus.qasm: flags = segment(...) in a while loop)
            fresh = set(self.builder.events[self.call_events :])
            if (
                len(cond) > 1
                or any(self.bits[s] is not None for s in slots)
                or any(e is not None and e not in fresh for e in events)
            ):
                t = classical.make_type("bit", len(slots))
                ops = Operands()
                new = ops.ref(t, tuple(e or self.constant_bit(0) for e in events))
                text = f"({new} if {cond_text(cond, ops)} else {self.bits_ref(slots, ops)})"
                events = self.calc(t, text, ops)
        for slot, event in zip(slots, events, strict=True):
            self.bits[slot] = event

    RUNTIME_STATEMENTS: Mapping[str, Any] = {
        "ClassicalAssignment": Classical.assignment,
        "WhileLoop": Classical.while_loop,
        "SwitchStatement": Classical.switch,
        "BreakStatement": Classical.loop_exit,
        "ContinueStatement": Classical.loop_exit,
    }


def _same(cond: Cond) -> Cond:
    return cond
