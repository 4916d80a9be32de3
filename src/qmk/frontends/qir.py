"""QIR (text ``.ll`` or bitcode ``.bc``) into QVM graphs, parsed with ``pyqir``.

Takes the base and adaptive profiles as the ``qsharp`` compiler emits them: the
``__quantum__qis__*`` gates, rotations and measurements on static qubit and
result ids, ``__quantum__rt__*_record_output`` and forward branches on
measurement results. Each block's path condition (which measurement outcomes
lead to it) is tracked exactly as a disjunction of disjoint conjunctions of
``event == value`` terms; a quantum call in a block becomes one node per term,
guarded by that term. A counted loop of one block of gate calls
(:mod:`~qmk.frontends.qir_loops`) is read folded, one REPEAT row. Other loops, dynamic
qubits and anything else are refused with a
:class:`~qmk.frontends.errors.FrontendError` that names the instruction and
where it is (``@function``, block, instruction number, and the line for text).

Outcome keys are the recorded results in recording order, first leftmost, with
no separator: tuple and array structure is left out (see ``docs/frontends_qir.md``).

>>> text = '''
... define void @main() #0 {
... entry:
...   call void @__quantum__qis__h__body(ptr null)
...   call void @__quantum__qis__cx__body(ptr null, ptr inttoptr (i64 1 to ptr))
...   call void @__quantum__qis__mz__body(ptr null, ptr null)
...   call void @__quantum__qis__mz__body(ptr inttoptr (i64 1 to ptr), ptr inttoptr (i64 1 to ptr))
...   call void @__quantum__rt__result_record_output(ptr null, ptr null)
...   call void @__quantum__rt__result_record_output(ptr inttoptr (i64 1 to ptr), ptr null)
...   ret void
... }
... declare void @__quantum__qis__h__body(ptr)
... declare void @__quantum__qis__cx__body(ptr, ptr)
... declare void @__quantum__qis__mz__body(ptr, ptr)
... declare void @__quantum__rt__result_record_output(ptr, ptr)
... attributes #0 = { "entry_point" "required_num_qubits"="2" "required_num_results"="2" }
... '''
>>> graph = from_qir(text, name="bell.ll")
>>> [n.op for n in graph.nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
>>> from qmk.execution import run
>>> sorted(run(graph, shots=100, seed=5, noise=False).counts)
['00', '11']
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qmk.frontends import conditions, decompose
from qmk.frontends.builder import GATE_OPS, ProgramBuilder, guard_of
from qmk.frontends.errors import FrontendError
from qmk.frontends.folding import fold_pass
from qmk.frontends.qasm_runtime import Operands, cast_name, cond_text, literal
from qmk.frontends.qir_loops import CountedLoop, counted_loop
from qmk.gates import GATES
from qmk.qvm import classical
from qmk.qvm.classical import CType
from qmk.qvm.graph import Graph, gc_paused
from qmk.qvm.limits import Limits

__all__ = ["QIR_GATES", "from_qir", "is_bitcode"]

#: Bitcode magic, and the magic of the bitcode wrapper header (little-endian 0x0B17C0DE).
_BITCODE_MAGIC = b"BC\xc0\xde"
_WRAPPER_MAGIC = b"\xde\xc0\x17\x0b"

#: Most terms a path condition may hold before QMK gives up (guards are conjunctions;
#: a disjunction costs one node per term): the bound every front-end's conditions share.
MAX_TERMS = conditions.MAX_TERMS

#: ``__quantum__qis__<key>`` -> the gate's name in the shared table of exact
#: decompositions (:data:`qmk.frontends.decompose.STANDARD_GATES`): the QIR names of the
#: gates the op table applies (their gate records'), and of gates written in them. Angles
#: come first in a QIR call, then qubits, as the table orders them.
QIR_GATES: Mapping[str, str] = {
    **{name: gate for gate in GATE_OPS for name in GATES[gate].names.of("qir")},
    "sx__body": "sx",
    "cy__body": "cy",
    "rxx__body": "rxx",
    "ryy__body": "ryy",
    "rzz__body": "rzz",
}

_MEASURES = {"mz__body": False, "m__body": False, "mresetz__body": True}
_READ_RESULT = ("__quantum__rt__read_result", "__quantum__qis__read_result__body")
_STRUCTURE_RECORDS = ("__quantum__rt__tuple_record_output", "__quantum__rt__array_record_output")
_IGNORED_CALLS = ("__quantum__rt__initialize",)
_CASTS = (
    "zext",
    "sext",
    "trunc",
    "si_to_fp",
    "ui_to_fp",
    "fp_to_si",
    "fp_to_ui",
    "fp_ext",
    "fp_trunc",
)


def is_bitcode(data: bytes) -> bool:
    """Whether ``data`` starts like LLVM bitcode (raw or in the bitcode wrapper)."""
    return data[:4] in (_BITCODE_MAGIC, _WRAPPER_MAGIC)


# ---------------------------------------------------------------------- conditions
# A path condition is a :data:`qmk.frontends.conditions.Cond` (pairwise exclusive
# conjunctions) kept in canonical form, so equal conditions compare equal.

_DNF = conditions.Cond
_TRUE: _DNF = [{}]
_FALSE: _DNF = []
_and = conditions.meet
_or = conditions.join_disjoint
_term_key = conditions.term_key


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bool:
    """An ``i1`` value: when it is true, when it is false (disjoint conditions)."""

    true: _DNF
    false: _DNF

    @classmethod
    def const(cls, value: bool) -> _Bool:
        return cls(true=_TRUE, false=_FALSE) if value else cls(true=_FALSE, false=_TRUE)

    def negate(self) -> _Bool:
        return _Bool(true=self.false, false=self.true)

    def and_(self, other: _Bool) -> _Bool:
        return _Bool(
            true=_and(self.true, other.true),
            false=_or(self.false, _and(self.true, other.false)),
        )

    def or_(self, other: _Bool) -> _Bool:
        return _Bool(
            true=_or(self.true, _and(self.false, other.true)),
            false=_and(self.false, other.false),
        )

    def xor(self, other: _Bool) -> _Bool:
        return _Bool(
            true=_or(_and(self.true, other.false), _and(self.false, other.true)),
            false=_or(_and(self.true, other.true), _and(self.false, other.false)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Dynamic:
    """A value QMK cannot compute at lowering time (refused when something uses it)."""

    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Runtime:
    """An integer or float computed at run time from measurements: its type and the
    events holding its bits (written by a ``CALC`` node)."""

    type: CType
    events: tuple[str, ...]


_Val = _Bool | int | float | _Dynamic | _Runtime

#: ``icmp`` predicates as CALC comparisons, and whether they compare unsigned.
_ICMP = {
    "EQ": ("==", False),
    "NE": ("!=", False),
    "SGT": (">", False),
    "SGE": (">=", False),
    "SLT": ("<", False),
    "SLE": ("<=", False),
    "UGT": (">", True),
    "UGE": (">=", True),
    "ULT": ("<", True),
    "ULE": ("<=", True),
}
#: ``fcmp`` predicates: ordered ones are false on NaN, unordered ones true.
_FCMP = {"EQ": "==", "NE": "!=", "GT": ">", "GE": ">=", "LT": "<", "LE": "<="}
#: Binary instructions on run-time integers and floats as CALC operators, and whether
#: their operands are read unsigned.
_RUNTIME_BINARY = {
    "add": ("+", False),
    "sub": ("-", False),
    "mul": ("*", False),
    "sdiv": ("/", False),
    "udiv": ("/", True),
    "srem": ("%", False),
    "urem": ("%", True),
    "and": ("&", False),
    "or": ("|", False),
    "xor": ("^", False),
    "shl": ("<<", False),
    "ashr": (">>", False),
    "lshr": (">>", True),
    "fadd": ("+", False),
    "fsub": ("-", False),
    "fmul": ("*", False),
    "fdiv": ("/", False),
    "frem": ("%", False),
}


# ---------------------------------------------------------------------- positions


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pos:
    """Where an instruction is: function, block, index in the function, line (text)."""

    function: str
    block: str
    index: int
    line: int | None
    inst: Any

    @property
    def text(self) -> str:
        """The instruction as LLVM prints it (made only for messages: it is slow)."""
        return str(self.inst).strip()

    def describe(self) -> str:
        return f"@{self.function}, block {self.block}, instruction #{self.index}: `{self.text}`"


_LABEL = re.compile(r'^\s*(?:[-\w.$]+|"[^"]*"):')
_DEFINE = re.compile(r"^\s*define\b[^@]*@(\"[^\"]*\"|[-\w.$]+)\s*\(")


def _instruction_lines(text: str, function: str, count: int) -> list[int] | None:
    """The source line of each instruction of ``function`` (None if they cannot be matched)."""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        m = _DEFINE.match(line)
        if m and m.group(1).strip('"') == function:
            start = i
            break
    if start is None:
        return None
    found: list[int] = []
    for i in range(start + 1, len(lines)):
        stripped = lines[i].split(";", 1)[0].strip() if '"' not in lines[i] else lines[i].strip()
        if stripped == "}":
            break
        if not stripped or stripped.startswith(";") or _LABEL.match(stripped):
            continue
        found.append(i + 1)
    return found if len(found) == count else None


# ---------------------------------------------------------------------- entry point


def from_qir(
    source: str | bytes, *, name: str = "<qir>", profile: str | None = None, fast: bool = True
) -> Graph:
    """Lower a QIR program (LLVM text or bitcode) into a QVM graph.

    Args:
        source: LLVM IR text (``str``, or ``bytes`` in UTF-8) or bitcode (``bytes``
            starting with the bitcode magic ``BC 0xC0DE`` or the wrapper magic).
        name: the file name used in errors and in each node's ``metadata.source``.
        profile: the code profile of the allocated qubits (None: the runner's default).
        fast: parse LLVM text with llvmlite's LLVM when it is installed (the ``fast``
            extra; much quicker than pyqir's text parser, ``docs/frontends_qir.md``)
            and hand pyqir the bitcode. Text llvmlite refuses, or bitcode pyqir
            refuses, goes to pyqir's own parser, which stays the judge. False: pyqir's
            text parser only.

    Returns:
        The graph; ``metadata.output`` lists the recorded results, first leftmost.

    Raises:
        FrontendError: ``syntax`` (text that does not parse or verify), ``unreadable``
            (truncated or invalid bitcode, undecodable bytes), ``unsupported`` (a loop
            other than a counted loop of gates, dynamic qubits, an unknown call or
            instruction, ...), ``undefined`` (no entry point), ``bad-value`` (a
            non-constant or non-finite angle), ``missing-extra`` (pyqir is not installed).
    """
    try:
        import pyqir
    except ImportError as exc:  # pragma: no cover - pyqir is installed with the extra
        raise FrontendError.at(
            "missing-extra", name, None, "reading QIR needs pyqir: pip install 'qmk[qir]'"
        ) from exc
    text: str | None
    if isinstance(source, bytes) and is_bitcode(source):
        text = None
        try:
            module = pyqir.Module.from_bitcode(pyqir.Context(), source, name)
        except ValueError as exc:
            raise FrontendError.at(
                "unreadable", name, None, f"invalid or truncated bitcode ({_first_line(exc)})"
            ) from None
    else:
        if isinstance(source, bytes):
            try:
                text = source.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FrontendError.at(
                    "unreadable",
                    name,
                    None,
                    f"neither QIR bitcode nor UTF-8 text (byte {exc.start} is not UTF-8)",
                ) from None
        else:
            text = source
        if "\0" in text:  # pyqir panics (a BaseException) on a NUL in the text
            at = text.count("\n", 0, text.index("\0")) + 1
            raise FrontendError.at("syntax", name, at, "a NUL character in LLVM IR text")
        quick = _via_llvmlite(pyqir, text, name) if fast else None
        if quick is not None:
            module = quick
        else:
            try:
                module = pyqir.Module.from_ir(pyqir.Context(), text, name)
            except ValueError as exc:
                line, message = _llvm_error(str(exc), name)
                raise FrontendError.at("syntax", name, line, message) from None
    problem = module.verify()
    if problem:
        raise FrontendError.at("syntax", name, None, f"invalid LLVM module: {_first_line(problem)}")
    with gc_paused():
        return _Lowering(pyqir, module, name=name, text=text, profile=profile).run()


def _via_llvmlite(pyqir: Any, text: str, name: str) -> Any | None:
    """``text`` parsed and verified by llvmlite's LLVM, as a pyqir module read from its
    bitcode; None when llvmlite is not installed or anything fails on the way (then
    pyqir's own text parser reads it and says what is wrong)."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return None
    try:
        parsed = llvm.parse_assembly(text)
        parsed.verify()
        bitcode = parsed.as_bitcode()
        return pyqir.Module.from_bitcode(pyqir.Context(), bitcode, name)
    except (RuntimeError, ValueError):
        return None


def _first_line(message: object) -> str:
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return lines[0] if lines else "no detail"


def _llvm_error(message: str, name: str) -> tuple[int | None, str]:
    """``(line, message)`` from LLVM's ``name:line:col: error: message``."""
    m = re.match(r"^.*?:(\d+):(\d+): error: (.*)$", message.splitlines()[0] if message else "")
    if m is None:
        return None, _first_line(message)
    return int(m.group(1)), f"{m.group(3)} (column {m.group(2)})"


# ---------------------------------------------------------------------- lowering


class _Lowering:
    """One pass over the entry point's blocks in a topological order.

    The walk's state is one scope read by every step. It holds the value of each
    instruction so far (constants, path conditions, values computed at run time), the
    event each result holds, the blocks' path conditions, the records and the builder.
    A branch, a phi, an arithmetic instruction and a call each read and extend it.
    What needs no scope lives outside: the algebra of conditions
    (:mod:`~qmk.frontends.conditions`), the classical types and expressions
    (:mod:`qmk.qvm.classical`, :mod:`~qmk.frontends.qasm_runtime`) and the gate
    decompositions.
    """

    def __init__(
        self, pyqir: Any, module: Any, *, name: str, text: str | None, profile: str | None
    ) -> None:
        self.q = pyqir
        self.module = module
        self.name = name
        self.text = text
        self.builder = ProgramBuilder(profile=profile, source=name)
        self.values: dict[Any, _Val] = {}
        self.results: dict[int, str] = {}
        # what was recorded, in order: a result's or bool's event (None: a constant 0),
        # or an integer's events (least significant first)
        self.records: list[str | tuple[str, ...] | None] = []
        self.recorded = False
        self.qubits: list[str] = []
        self.ptr_ids: dict[Any, int | None] = {}
        # (gate, angles) -> its basic gates, by the decomposition table
        self.steps: dict[tuple[Any, ...], tuple[decompose.Instr, ...]] = {}
        # blocks that branch back to themselves: a counted loop, or why they are not one
        self.loops: dict[Any, CountedLoop | str] = {}
        self.folds = 0  # counted loops read folded into REPEAT rows so far

    # -- errors and positions

    def fail(self, kind: str, pos: _Pos | None, message: str) -> FrontendError:
        if pos is None:
            return FrontendError.at(kind, self.name, None, message)
        return FrontendError.at(
            kind,
            self.name,
            pos.line,
            f"{message} (at {pos.describe()})",
            function=pos.function,
            block=pos.block,
            instruction=pos.index,
        )

    def where(self, pos: _Pos) -> str:
        if pos.line is not None:
            return f"{self.name}:{pos.line}"
        return f"{self.name}:@{pos.function}/{pos.block}#{pos.index}"

    # -- the walk

    def run(self) -> Graph:
        entry = self.entry_point()
        blocks = list(entry.basic_blocks)
        positions = self.positions(entry, blocks)
        self.loops = {b: counted_loop(self.q, b) for b in blocks if b in self.successors(b)}
        order = self.topological(entry, blocks, positions)
        self.allocate(entry, blocks, positions)
        cond: dict[Any, _DNF] = {blocks[0]: _TRUE}
        edges: dict[tuple[Any, Any], _DNF] = {}
        for block in order:
            here = cond.get(block, _FALSE)
            loop = self.loops.get(block)
            if isinstance(loop, CountedLoop):
                self.counted(block, loop, positions[block], here, edges, cond)
                continue
            for inst, pos in zip(block.instructions, positions[block], strict=True):
                self.instruction(inst, pos, here, edges, cond, block)
        attrs = {a.string_kind: a.string_value for a in entry.attributes.func}
        meta: dict[str, Any] = {"language": "qir", "entry_point": entry.name}
        if attrs.get("qir_profiles"):
            meta["qir_profile"] = attrs["qir_profiles"]
        ints = any(isinstance(r, tuple) for r in self.records)
        output: list[Any] | None = None
        if self.recorded and ints:  # one group per record: bits, and integers in decimal
            output = [
                {"int": list(r), "signed": True} if isinstance(r, tuple) else [r]
                for r in self.records
            ]
        elif self.recorded:
            output = [list(self.records)]
        return self.builder.build(output=output, separator=" " if ints else "", metadata=meta)

    def entry_point(self) -> Any:
        entries = [f for f in self.module.functions if self.q.is_entry_point(f)]
        if not entries:
            raise self.fail(
                "undefined", None, 'no entry point (a function with the "entry_point" attribute)'
            )
        if len(entries) > 1:
            names = ", ".join("@" + f.name for f in entries)
            raise self.fail("unsupported", None, f"more than one entry point ({names})")
        if not entries[0].basic_blocks:  # a declaration with the attribute: no body to read
            raise self.fail(
                "undefined", None, f"the entry point @{entries[0].name} is declared, not defined"
            )
        return entries[0]

    def positions(self, entry: Any, blocks: list[Any]) -> dict[Any, list[_Pos]]:
        count = sum(len(b.instructions) for b in blocks)
        lines = _instruction_lines(self.text, entry.name, count) if self.text else None
        out: dict[Any, list[_Pos]] = {}
        k = 0
        for b, block in enumerate(blocks):
            label = block.name or f"#{b}"
            out[block] = []
            for inst in block.instructions:
                out[block].append(
                    _Pos(
                        function=entry.name,
                        block=label,
                        index=k,
                        line=lines[k] if lines else None,
                        inst=inst,
                    )
                )
                k += 1
        return out

    def topological(
        self, entry: Any, blocks: list[Any], positions: dict[Any, list[_Pos]]
    ) -> list[Any]:
        """Reachable blocks, each after all its predecessors; a cycle is refused."""
        state: dict[Any, int] = {}  # 1: on the DFS stack, 2: done
        postorder: list[Any] = []
        stack: list[tuple[Any, list[Any]]] = [(blocks[0], self.successors(blocks[0]))]
        state[blocks[0]] = 1
        while stack:
            block, todo = stack[-1]
            if not todo:
                stack.pop()
                state[block] = 2
                postorder.append(block)
                continue
            nxt = todo.pop(0)
            if state.get(nxt) == 1:
                pos = positions[block][-1]
                why = self.loops.get(nxt) if nxt == block else "it spans several blocks"
                raise self.fail(
                    "unsupported",
                    pos,
                    f"backward branch to block {nxt.name} (a loop); QMK lowers forward "
                    f"control flow and counted loops of one block, and this is none: {why}",
                )
            if nxt not in state:
                state[nxt] = 1
                stack.append((nxt, self.successors(nxt)))
        return postorder[::-1]

    def successors(self, block: Any) -> list[Any]:
        """The blocks ``block`` may branch to (a counted loop: the one after it)."""
        loop = self.loops.get(block)
        if isinstance(loop, CountedLoop):
            return [loop.after]
        term = block.terminator
        return list(term.successors) if term is not None else []

    def counted(
        self,
        block: Any,
        loop: CountedLoop,
        positions: list[_Pos],
        here: _DNF,
        edges: dict[tuple[Any, Any], _DNF],
        cond: dict[Any, _DNF],
    ) -> None:
        """A counted loop: its body of gate calls lowered once and kept as a REPEAT row of
        its turns (:func:`~qmk.frontends.folding.fold_pass`); then the block after it."""
        if here != _TRUE:
            raise self.fail(
                "unsupported",
                positions[0],
                f"the counted loop {block.name} runs only where measurements say so; QMK "
                "reads a counted loop on every path only",
            )
        before = len(self.builder.nodes)
        for inst, pos in zip(block.instructions, positions, strict=True):
            if inst in loop.bookkeeping:
                continue
            callee = inst.callee.name if isinstance(inst, self.q.Call) else ""
            if callee.removeprefix("__quantum__qis__") not in QIR_GATES:
                raise self.fail(
                    "unsupported",
                    pos,
                    f"the counted loop {block.name} holds `{pos.text}`: QMK reads a loop "
                    "whose body is gate calls only",
                )
            self.call(inst, pos, here)
        if loop.turns > 1 and len(self.builder.nodes) > before:
            self.folds += 1
            if not fold_pass(self.builder.nodes, before, loop.turns, self.folds):
                raise self.fail(
                    "unsupported", positions[0], f"the counted loop {block.name} cannot be folded"
                )
        for inst, value in loop.values.items():
            self.values[inst] = _Bool.const(value) if isinstance(value, bool) else value
        edges[(block, loop.after)] = here
        cond[loop.after] = _or(cond.get(loop.after, _FALSE), here)

    def allocate(self, entry: Any, blocks: list[Any], positions: dict[Any, list[_Pos]]) -> None:
        """Allocate the qubits the entry point declares, or more if its calls name more."""
        count = self.q.required_num_qubits(entry) or 0
        for block in blocks:
            for inst in block.instructions:
                if not isinstance(inst, self.q.Call):
                    continue
                key = inst.callee.name.removeprefix("__quantum__qis__")
                if key == inst.callee.name or key == "read_result__body":
                    continue
                args = list(inst.args)[:1] if key in _MEASURES else list(inst.args)
                for arg in args:
                    qid = _ptr_id(self.q, arg, self.ptr_ids)
                    if qid is not None:
                        count = max(count, qid + 1)
        if count > _MAX_QUBITS:  # refused before the builder spends memory on them
            raise self.fail(
                "bad-value", None, f"{count} qubits; a program allocates at most {_MAX_QUBITS}"
            )
        self.qubits = self.builder.allocate(count)

    # -- instructions

    def instruction(
        self,
        inst: Any,
        pos: _Pos,
        here: _DNF,
        edges: dict[tuple[Any, Any], _DNF],
        cond: dict[Any, _DNF],
        block: Any,
    ) -> None:
        op = _opcode_name(inst.opcode)
        if op == "call":
            self.call(inst, pos, here)
        elif op == "br":
            self.branch(inst, pos, here, edges, cond, block)
        elif op == "ret":
            return
        elif op == "phi":
            parts = [
                (edges.get((pred, block), _FALSE), incoming) for incoming, pred in inst.incoming
            ]
            self.values[inst] = self.join(
                [(edge, self.value(v, pos)) for edge, v in parts if edge], inst.type, pos
            )
        elif op == "select":
            c = self.boolean(inst.operands[0], pos)
            a = self.value(inst.operands[1], pos)
            b = self.value(inst.operands[2], pos)
            self.values[inst] = self.join([(c.true, a), (c.false, b)], inst.type, pos)
        elif op == "icmp":
            self.values[inst] = self.icmp(inst, pos)
        elif op == "fcmp":
            self.values[inst] = self.fcmp(inst, pos)
        elif op in _BINARY:
            self.values[inst] = self.binary(inst, pos)
        elif op in _CASTS:
            self.values[inst] = self.cast(inst, op, pos)
        else:
            raise self.fail("unsupported", pos, f"instruction {op} is not supported")

    def cast(self, inst: Any, op: str, pos: _Pos) -> _Val:
        """A conversion, folded when its operand is a constant."""
        v = self.value(inst.operands[0], pos)
        was_bool = isinstance(v, _Bool)
        if isinstance(v, _Bool):
            if v.true == _TRUE and v.false == _FALSE:
                v = -1 if op == "sext" else 1
            elif v.true == _FALSE and v.false == _TRUE:
                v = 0
            elif getattr(inst.type, "width", None) == 1:
                return v  # an i1 -> i1 conversion keeps the condition
        if isinstance(v, _Runtime | _Bool):
            return self.runtime_cast(inst, op, v, pos)
        if isinstance(v, _Dynamic):
            return _Dynamic(why=f"`{pos.text}` depends on a measurement")
        if op in ("si_to_fp", "ui_to_fp", "fp_ext", "fp_trunc"):
            return float(v)
        if op in ("fp_to_si", "fp_to_ui") and not math.isfinite(v):
            return _Dynamic(why=f"`{pos.text}` converts a non-finite value")
        number = int(v)
        if getattr(inst.type, "width", None) == 1 and not was_bool:
            return _Bool.const(bool(number & 1))
        return number

    def runtime_cast(self, inst: Any, op: str, v: _Runtime | _Bool, pos: _Pos) -> _Val:
        """A conversion of a value known only at run time (an i1 condition widened to an
        integer: ``zext`` gives 0 or 1, ``sext`` 0 or -1)."""
        unsigned = op in ("zext", "ui_to_fp", "fp_to_ui")
        if isinstance(v, _Bool):
            template = "(0 - int64({0}))" if op == "sext" else "int64({0})"
            return self.runtime_op(inst, pos, template, [v], False)
        if op == "fp_to_ui":
            t = self.ctype(inst.type, pos)
            return self.runtime_op(inst, pos, f"uint{t.width}({{0}})", [v], False)
        return self.runtime_op(inst, pos, "{0}", [v], unsigned)

    def join(self, parts: list[tuple[_DNF, _Val]], llvm_type: Any, pos: _Pos) -> _Val:
        """A value that is ``v`` where its condition holds (the conditions disjoint): a
        condition (i1), a constant, or one computed at run time (a CALC that selects)."""
        parts = [(when, v) for when, v in parts if when]
        if not parts:
            return _Dynamic(why="unreachable")
        merged: _Val | None = None
        for when, v in parts:
            merged = self.merge(merged, v, when, pos)
        if merged is not None and not isinstance(merged, _Dynamic):
            return merged
        for _, v in parts:
            if isinstance(v, _Dynamic):
                return v
        t = self.ctype(llvm_type, pos)
        ops = Operands()
        text = f"{cast_name(t)}({self.operand(parts[-1][1], ops)})"
        for when, v in reversed(parts[:-1]):
            text = f"({cast_name(t)}({self.operand(v, ops)}) if {cond_text(when, ops)} else {text})"
        return self.compute(t, text, ops, pos)

    def ctype(self, llvm_type: Any, pos: _Pos) -> CType:
        """The classical type of an LLVM integer or floating-point type."""
        width = getattr(llvm_type, "width", None)
        if width == 1:
            return classical.BOOL
        if isinstance(width, int) and 1 < width <= 64:
            return classical.make_type("int", width)
        if getattr(llvm_type, "is_double", False):
            return classical.FLOAT
        raise self.fail("unsupported", pos, f"a run-time value of type {llvm_type}")

    def operand(self, v: _Val, ops: Operands, unsigned: bool = False) -> str:
        """A value as CALC expression text (its run-time events read through ``ops``)."""
        if isinstance(v, _Runtime):
            ref = ops.ref(v.type, v.events)
            if unsigned and v.type.kind == "int":
                return f"uint{v.type.width}({ref})"
            return ref
        if isinstance(v, _Bool):
            return cond_text(v.true, ops)
        if isinstance(v, _Dynamic):
            raise ValueError(v.why)
        return literal(v)

    def compute(self, t: CType, text: str, ops: Operands, pos: _Pos) -> _Val:
        """A CALC of ``text``: a condition on its event for a bool, else the value."""
        try:
            classical.prepare(str(t), ops.reads, text, len(ops.inputs))
        except classical.ClassicalError as exc:
            why = f"a run-time value QMK cannot type: {exc}"
            raise self.fail("unsupported", pos, why) from None
        events = self.builder.calc(
            str(t), t.width, text, reads=ops.reads, inputs=ops.inputs, where=self.where(pos)
        )
        if t.kind == "bool":
            (event,) = events
            return _Bool(true=conditions.equals([event], 1), false=conditions.equals([event], 0))
        return _Runtime(type=t, events=tuple(events))

    def runtime_op(
        self, inst: Any, pos: _Pos, template: str, values: list[_Val], unsigned: bool
    ) -> _Val:
        """``template`` (``{0}``, ``{1}``: the operands) computed at run time, as the
        instruction's type."""
        for v in values:
            if isinstance(v, _Dynamic):
                return v
        t = self.ctype(inst.type, pos)
        ops = Operands()
        texts = [self.operand(v, ops, unsigned) for v in values]
        return self.compute(t, f"{cast_name(t)}({template.format(*texts)})", ops, pos)

    def merge(self, acc: _Val | None, v: _Val, when: _DNF, pos: _Pos) -> _Val | None:
        """``acc`` so far, and ``v`` where ``when`` holds (disjoint from acc's part)."""
        if not when:
            return acc
        if isinstance(v, _Bool):
            part = _Bool(true=_and(when, v.true), false=_and(when, v.false))
            if acc is None:
                return part
            if isinstance(acc, _Bool):
                return _Bool(true=_or(acc.true, part.true), false=_or(acc.false, part.false))
        elif not isinstance(v, _Runtime) and (
            acc is None or (not isinstance(acc, _Bool | _Runtime) and acc == v)
        ):
            return v
        return _Dynamic(why=f"`{pos.text}` depends on a measurement")

    def branch(
        self,
        inst: Any,
        pos: _Pos,
        here: _DNF,
        edges: dict[tuple[Any, Any], _DNF],
        cond: dict[Any, _DNF],
        block: Any,
    ) -> None:
        ops = list(inst.operands)
        if len(ops) == 1:
            targets = [(ops[0], here)]
        else:
            c = self.boolean(ops[0], pos)
            # LLVM stores a conditional branch as [condition, false target, true target].
            targets = [(ops[2], _and(here, c.true)), (ops[1], _and(here, c.false))]
        for target, edge in targets:
            self.check_size(edge, pos)
            edges[(block, target)] = _or(edges.get((block, target), _FALSE), edge)
            cond[target] = _or(cond.get(target, _FALSE), edge)
            self.check_size(cond[target], pos)

    def check_size(self, dnf: _DNF, pos: _Pos) -> None:
        if len(dnf) > MAX_TERMS:
            raise self.fail(
                "unsupported",
                pos,
                f"the path condition needs more than {MAX_TERMS} guard terms",
            )

    def icmp(self, inst: Any, pos: _Pos) -> _Val:
        a = self.value(inst.operands[0], pos)
        b = self.value(inst.operands[1], pos)
        pred = inst.predicate
        P = self.q.IntPredicate
        if isinstance(a, _Bool) or isinstance(b, _Bool):
            if pred not in (P.EQ, P.NE):
                return _Dynamic(why=f"`{pos.text}` orders booleans")
            ba, bb = self.as_bool(a, pos), self.as_bool(b, pos)
            differ = ba.xor(bb)
            return differ if pred == P.NE else differ.negate()
        if isinstance(a, _Runtime) or isinstance(b, _Runtime):
            symbol, unsigned = _ICMP[str(pred).rsplit(".", 1)[-1]]
            return self.runtime_op(inst, pos, f"({{0}} {symbol} {{1}})", [a, b], unsigned)
        if isinstance(a, int) and isinstance(b, int):
            table = {
                P.EQ: a == b,
                P.NE: a != b,
                P.SGT: a > b,
                P.SGE: a >= b,
                P.SLT: a < b,
                P.SLE: a <= b,
                P.UGT: a > b,
                P.UGE: a >= b,
                P.ULT: a < b,
                P.ULE: a <= b,
            }
            return _Bool.const(table[pred])
        return _Dynamic(why=f"`{pos.text}` depends on a measurement")

    def fcmp(self, inst: Any, pos: _Pos) -> _Val:
        """A float comparison: folded on constants, computed at run time otherwise."""
        a = self.value(inst.operands[0], pos)
        b = self.value(inst.operands[1], pos)
        name = str(inst.predicate).rsplit(".", 1)[-1]
        if name in ("TRUE", "FALSE"):
            return _Bool.const(name == "TRUE")
        nan = "({0} != {0} or {1} != {1})"
        if name in ("ORD", "UNO"):
            template = nan if name == "UNO" else f"(not {nan})"
        elif name[0] == "O":
            template = f"(not {nan} and {{0}} {_FCMP[name[1:]]} {{1}})"
        else:
            template = f"({nan} or {{0}} {_FCMP[name[1:]]} {{1}})"
        if isinstance(a, int | float) and isinstance(b, int | float):  # constants: folded
            holds = classical.compile_expr(template.format("v0", "v1"), (classical.FLOAT,) * 2)
            return _Bool.const(bool(holds.fn([float(a), float(b)])))
        for v in (a, b):
            if isinstance(v, _Dynamic):
                return v
        ops = Operands()
        texts = [f"float64({self.operand(v, ops)})" for v in (a, b)]
        return self.compute(classical.BOOL, f"bool({template.format(*texts)})", ops, pos)

    def binary(self, inst: Any, pos: _Pos) -> _Val:
        a = self.value(inst.operands[0], pos)
        b = self.value(inst.operands[1], pos)
        kind = _opcode_name(inst.opcode)
        if (isinstance(a, _Runtime) or isinstance(b, _Runtime)) and kind in _RUNTIME_BINARY:
            symbol, unsigned = _RUNTIME_BINARY[kind]
            return self.runtime_op(inst, pos, f"({{0}} {symbol} {{1}})", [a, b], unsigned)
        if isinstance(a, _Bool) or isinstance(b, _Bool):
            ba, bb = self.as_bool(a, pos), self.as_bool(b, pos)
            kind = _opcode_name(inst.opcode)
            if kind == "and":
                return ba.and_(bb)
            if kind == "or":
                return ba.or_(bb)
            if kind == "xor":
                return ba.xor(bb)
            return _Dynamic(why=f"`{pos.text}` does arithmetic on a measurement")
        if isinstance(a, _Dynamic):
            return a
        if isinstance(b, _Dynamic):
            return b
        try:
            return _BINARY[_opcode_name(inst.opcode)](a, b)
        except (ZeroDivisionError, OverflowError, ValueError):
            return _Dynamic(why=f"`{pos.text}` has no value (division by zero or overflow)")

    def as_bool(self, v: _Val, pos: _Pos) -> _Bool:
        if isinstance(v, _Bool):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            return _Bool.const(v != 0)
        raise self.fail("unsupported", pos, "a condition that is not a boolean QMK can follow")

    def value(self, operand: Any, pos: _Pos) -> _Val:
        q = self.q
        if isinstance(operand, q.IntConstant):
            if getattr(operand.type, "width", None) == 1:
                return _Bool.const(bool(operand.value & 1))
            return int(operand.value)
        if isinstance(operand, q.FloatConstant):
            return float(operand.value)
        if operand in self.values:
            return self.values[operand]
        return _Dynamic(why=f"operand `{str(operand).strip()}` is not a constant")

    def boolean(self, operand: Any, pos: _Pos) -> _Bool:
        v = self.value(operand, pos)
        if isinstance(v, _Dynamic):
            raise self.fail("unsupported", pos, f"cannot branch on this value: {v.why}")
        return self.as_bool(v, pos)

    # -- calls

    def call(self, inst: Any, pos: _Pos, here: _DNF) -> None:
        callee = inst.callee.name
        args = list(inst.args)
        if callee in _IGNORED_CALLS:
            return
        if callee in _READ_RESULT:
            rid = self.result(args[0], pos)
            event = self.results.get(rid)
            if event is None:  # a result nothing wrote reads Zero
                self.values[inst] = _Bool.const(False)
            else:
                self.values[inst] = _Bool(
                    true=conditions.equals([event], 1),
                    false=conditions.equals([event], 0),
                )
            return
        if callee == "__quantum__rt__result_record_output":
            self.recorded = True
            self.records.append(self.results.get(self.result(args[0], pos)))
            return
        if callee == "__quantum__rt__bool_record_output":
            self.recorded = True
            self.records.append(self.recorded_bool(args[0], pos))
            return
        if callee == "__quantum__rt__int_record_output":
            self.recorded = True
            self.records.append(self.recorded_int(args[0], pos))
            return
        if callee in _STRUCTURE_RECORDS:
            self.recorded = True
            return
        if not callee.startswith("__quantum__qis__"):
            if callee.startswith("__quantum__rt__qubit_") or callee.startswith(
                "__quantum__rt__array_"
            ):
                raise self.fail(
                    "unsupported",
                    pos,
                    f"{callee}: dynamic qubit allocation is not supported (use static qubit ids)",
                )
            kind = "QIR runtime call" if callee.startswith("__quantum__") else "call"
            raise self.fail("unsupported", pos, f"{kind} @{callee} is not supported")
        key = callee[len("__quantum__qis__") :]
        if not here:  # a block no execution reaches
            return
        if key in _MEASURES:
            self.measure(args, pos, here, reset=_MEASURES[key])
        elif key == "reset__body":
            qubit = self.qubit(args, 0, 1, pos, callee)
            for guard in self.guards(here):
                self.builder.reset(qubit, guard=guard, where=self.where(pos))
        elif key == "barrier__body":
            self.builder.fence(where=self.where(pos))
        elif key in QIR_GATES:
            self.gate(key, args, pos, here, callee)
        else:
            raise self.fail("unsupported", pos, f"QIR gate @{callee} is not supported")

    def guards(self, here: _DNF) -> list[Any]:
        return [guard_of(_term_key(term)) for term in sorted(here, key=_term_key)]

    def gate(self, key: str, args: list[Any], pos: _Pos, here: _DNF, callee: str) -> None:
        gate_name = QIR_GATES[key]
        n_qubits, n_angles = decompose.arity(gate_name)
        if len(args) != n_angles + n_qubits:
            raise self.fail(
                "arity",
                pos,
                f"@{callee} takes {n_angles} angle(s) and {n_qubits} qubit(s), "
                f"got {len(args)} arguments",
            )
        angles = []
        for arg in args[:n_angles]:
            v = self.value(arg, pos)
            if isinstance(v, _Bool) or not isinstance(v, int | float):
                why = v.why if isinstance(v, _Dynamic) else "not a number"
                raise self.fail("bad-value", pos, f"the angle of @{callee} is not constant: {why}")
            if not math.isfinite(v):
                raise self.fail("bad-value", pos, f"the angle of @{callee} is {v}")
            angles.append(float(v))
        qubits = [self.qubit(args, n_angles + i, n_qubits, pos, callee) for i in range(n_qubits)]
        if len(set(qubits)) != len(qubits):
            raise self.fail("bad-value", pos, f"@{callee} names the same qubit twice")
        cached = (gate_name, *angles)
        steps = self.steps.get(cached) if 0.0 not in angles else None
        if steps is None:
            steps = decompose.lower_gate(gate_name, angles).ops  # exact up to a global phase
            if 0.0 not in angles:  # -0.0 == 0.0: such keys would merge two angles
                self.steps[cached] = steps
        for guard in self.guards(here):
            for gate, local, params in steps:
                qs = [qubits[i] for i in local]
                self.builder.gate(gate, qs, params, guard=guard, where=self.where(pos))

    def measure(self, args: list[Any], pos: _Pos, here: _DNF, *, reset: bool) -> None:
        if len(args) != 2:
            raise self.fail("arity", pos, f"a measurement takes a qubit and a result, got {args}")
        qubit = self.qubit(args, 0, 2, pos, "measurement")
        rid = self.result(args[1], pos)
        if len(here) != 1:  # reached along several paths: one event says whether
            ops = Operands()
            reached = self.compute(classical.BOOL, f"bool({cond_text(here, ops)})", ops, pos)
            assert isinstance(reached, _Bool)
            here = reached.true
        (term,) = here
        guard = guard_of(_term_key(term))
        event = self.builder.measure(qubit, guard=guard, where=self.where(pos))
        old = self.results.get(rid)
        if term and old is not None:  # where it does not run, the result keeps its value
            ops = Operands()
            bit = classical.make_type("bit", 1)
            new, was = ops.ref(bit, (event,)), ops.ref(bit, (old,))
            text = f"bit1({new} if {cond_text(here, ops)} else {was})"
            event = self.builder.calc("bit[1]", 1, text, reads=ops.reads, inputs=ops.inputs)[0]
        self.results[rid] = event
        if reset:
            self.builder.reset(qubit, guard=guard, where=self.where(pos))

    def qubit(self, args: list[Any], i: int, n: int, pos: _Pos, callee: str) -> str:
        if i >= len(args):
            raise self.fail("arity", pos, f"{callee} takes {n} qubit(s)")
        qid = _ptr_id(self.q, args[i], self.ptr_ids)
        if qid is None:
            raise self.fail(
                "unsupported",
                pos,
                "a qubit that is not a static id (dynamic qubit allocation is not supported)",
            )
        return self.qubits[qid]

    def result(self, arg: Any, pos: _Pos) -> int:
        rid = _ptr_id(self.q, arg, self.ptr_ids)
        if rid is None:
            raise self.fail(
                "unsupported", pos, "a result that is not a static id (dynamic results)"
            )
        return int(rid)

    def recorded_bool(self, arg: Any, pos: _Pos) -> str | None:
        """The event a recorded boolean reads: a result as it is, or a CALC of a
        condition computed from results."""
        v = self.value(arg, pos)
        if isinstance(v, _Bool):
            if v.true == _FALSE:
                return None
            if len(v.true) == 1:
                (term,) = v.true
                if len(term) == 1:
                    ((event, value),) = term.items()
                    if value == 1 and v.false == conditions.equals([event], 0):
                        return event
            ops = Operands()
            computed = self.compute(classical.BOOL, f"bool({cond_text(v.true, ops)})", ops, pos)
            assert isinstance(computed, _Bool)
            return next(iter(computed.true[0]))
        why = v.why if isinstance(v, _Dynamic) else "not a boolean"
        raise self.fail("unsupported", pos, f"a recorded boolean QMK cannot compute: {why}")

    def recorded_int(self, arg: Any, pos: _Pos) -> tuple[str, ...]:
        """The events (least significant first) of a recorded 64-bit integer."""
        v = self.value(arg, pos)
        if isinstance(v, _Bool | float | _Dynamic):
            why = v.why if isinstance(v, _Dynamic) else "not an integer"
            raise self.fail("unsupported", pos, f"a recorded integer QMK cannot compute: {why}")
        t = classical.make_type("int", 64)
        ops = Operands()
        computed = self.compute(t, f"int64({self.operand(v, ops)})", ops, pos)
        assert isinstance(computed, _Runtime)
        return computed.events


def _is_ptr(value: Any) -> bool:
    return type(value.type).__name__ == "PointerType"


#: The most qubits a QIR program may name (the QVM verifier's own limit).
_MAX_QUBITS = Limits().max_qubits or 1_000_000

_STATIC_ID = re.compile(r"null|inttoptr \(i64 -?\d+ to [^()]+\)")


def _ptr_id(qis: Any, value: Any, cache: dict[Any, int | None] | None = None) -> int | None:
    """The static id of a pointer (``null`` or ``inttoptr (i64 N to ...)``), else None.

    pyqir's ``ptr_id`` crashes the process (SIGSEGV) on any other constant, such as an
    ``inttoptr`` of an ``i63`` or an ``i91``, so only those two forms reach it.
    ``cache`` keeps the answers by value: LLVM constants are unique, and printing one
    to read its form is slow.
    """
    if cache is not None:
        try:
            return cache[value]
        except KeyError:
            found = cache[value] = _ptr_id(qis, value)
            return found
    if not _is_ptr(value):
        return None
    _, _, operand = str(value).partition(" ")
    if not _STATIC_ID.fullmatch(operand):
        return None
    result: int | None = qis.ptr_id(value)
    return result


def _opcode_name(op: Any) -> str:
    return str(op).rsplit(".", 1)[-1].lower()


#: LLVM binary instructions QMK folds when both operands are constants (by opcode name).
_BINARY: Mapping[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "sdiv": lambda a, b: int(a / b),
    "udiv": lambda a, b: a // b,
    "srem": lambda a, b: int(math.fmod(a, b)),
    "urem": lambda a, b: a % b,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
    "shl": lambda a, b: a << b,
    "ashr": lambda a, b: a >> b,
    "lshr": lambda a, b: a >> b,
    "fadd": lambda a, b: float(a) + float(b),
    "fsub": lambda a, b: float(a) - float(b),
    "fmul": lambda a, b: float(a) * float(b),
    "fdiv": lambda a, b: float(a) / float(b),
}
