"""The OpenQASM lowerer's scope: what a program has declared, and its constant values.

The lowering of :mod:`qmk.frontends.qasm` is one walk over one scope, written as a
stack of classes, each adding one part of the walk on top of the ones below:

1. :class:`Scope` here: the state, operands and constant expressions;
2. :class:`~qmk.frontends.qasm_classical.Classical`: conditions, run-time values,
   control flow, measurement into bits;
3. :class:`~qmk.frontends.qasm_gates.Gates`: gates, their definitions and the
   scanner's fast lane;
4. the lowerer itself: statements, declarations, defs.

A part calls only those below it, except through the three methods :class:`Scope`
names for the parts above it: :meth:`Scope.statement`, :meth:`Scope.pure_call`, and
:meth:`Scope.typed_value` (a constant expression that reads classical variables is
valued by their types, as at run time).

>>> describe("WhileLoop"), MATH_FUNCTIONS["ln"](1.0), sorted(BUILTINS[3])
('while loop', 0.0, ['U', 'gphase'])
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qmk.frontends import conditions, decompose, qasm_scan
from qmk.frontends.builder import Emitted, ProgramBuilder, gate_emitter
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm_library import MATH_CONSTANTS, Step
from qmk.frontends.qasm_runtime import DEFAULT_LOOP_CAP, KINDS, Loop, Value
from qmk.qvm import classical
from qmk.qvm.classical import CType
from qmk.qvm.expr_core import ARITHMETIC, BITWISE, COMPARISONS, Walker, functions

#: The built-in functions of one argument of constant expressions (the core's).
MATH_FUNCTIONS = functions(
    "sin",
    "cos",
    "tan",
    "exp",
    "sqrt",
    "floor",
    arcsin="asin",
    arccos="acos",
    arctan="atan",
    ln="log",
    ceiling="ceil",
)
#: The gates an OpenQASM version builds in, by version.
BUILTINS = {2: frozenset({"U", "CX"}), 3: frozenset({"U", "gphase"})}
Cond = conditions.Cond


def subexpressions(expr: Any, *, indices: bool) -> Iterator[Any]:
    """``expr`` and the expressions it reads, each once: through operators, casts and
    calls' arguments, and (``indices``) the collection an index reads (not the index)."""
    from openqasm3 import ast

    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.UnaryExpression):
            stack.append(node.expression)
        elif isinstance(node, ast.BinaryExpression):
            stack += [node.lhs, node.rhs]
        elif isinstance(node, ast.Cast):
            stack.append(node.argument)
        elif isinstance(node, ast.FunctionCall):
            stack += node.arguments
        elif indices and isinstance(node, ast.IndexExpression):
            stack.append(node.collection)
        elif indices and isinstance(node, ast.IndexedIdentifier):
            stack.append(node.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateDef:
    """A user gate: parameter names, qubit names, body statements."""

    name: str
    params: tuple[str, ...]
    qubits: tuple[str, ...]
    body: tuple[Any, ...]
    line: int


class Scope(ABC):
    """What the walk has seen so far (registers, the event each bit last got, constants
    and inputs, gate and def definitions, run-time variables, open loops and blocks),
    the operands that read it and the constant expressions it values.

    The walk's top (the lowerer) gives the two methods a part below it calls back:
    :meth:`statement` (a loop or branch body is lowered statement by statement) and
    :meth:`pure_call` (a def called inside a constant expression).
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
        self.folds = 0  # for loops read folded into REPEAT rows so far (qasm_fold)
        # unrolled_sums[k]: the nodes the builder's first k rows unroll to (under a cap)
        self.unrolled_sums: list[int] = [0]
        self.name = name
        self.version = version
        self.params = params
        self.builder = ProgramBuilder(profile=profile, source=name, description=name)
        #: ``emit(rows, line)``: checked gate rows written at a line of this source
        self.emit = gate_emitter(self.builder.nodes, f"{name}:")
        self.qregs: dict[str, list[str]] = {}
        self.cregs: dict[str, list[int]] = {}
        self.bits: list[str | None] = []
        self.values: dict[str, float | int | bool] = {}
        self.gates: dict[str, GateDef] = {}
        self.standard: set[str] = set(BUILTINS[version])
        self.opaque: dict[str, tuple[int, int]] = {}
        self.stretches: set[str] = set()
        self.scalars: set[str] = set()  # bit registers declared as a scalar ``bit b;``
        self.consts: set[str] = set()  # the values declared ``const`` (visible in defs)
        self.subroutines: dict[str, Any] = {}  # def name -> its SubroutineDefinition
        self.calling: list[str] = []  # the defs being inlined, outermost first
        self.call_events = 0  # the first event the last inlined call measured
        self.inputs: set[str] = set()  # the ``input`` names declared
        self.widths: dict[str, int] = {}  # declared widths of int[n]/uint[n] variables
        # when each name was declared (result keys follow it), and the int/uint variables
        # that hold results: a measurement wrote into them, or they were declared output
        self.stamps: dict[str, int] = {}
        self.next_stamp = 0
        self.results: set[str] = set()
        # run-time classical values: variables whose value is computed at run time, the
        # declared type of every classical variable, the loops being lowered (innermost
        # last), the iteration cap of the next while loops, and constant bits' events
        self.runtime: dict[str, Value] = {}
        self.types: dict[str, CType] = {}
        # the declared type of every named classical value: the variables (types), and
        # the consts, inputs and def arguments (a value read in an expression by its type)
        self.typed: dict[str, CType] = {}
        self.loops: list[Loop] = []
        self.loop_cap = DEFAULT_LOOP_CAP
        self.constant_bits: dict[int, str] = {}
        self.scopes: list[set[str]] = []  # the names each open block declared
        # a run-time variable's constant where a condition holds (store), and what each
        # event compact() made stands for
        self.assumed: dict[str, tuple[Cond, Any]] = {}
        self.implied: dict[str, Cond] = {}
        self.source_lines: list[str] = []  # the source, for the words a statement starts with
        self.line: int | None = None
        # (name, operand count, parameters) -> the lowered gate and its node plan; emptied
        # whenever a gate definition or include changes what a name means
        self.plans: dict[tuple[Any, ...], tuple[decompose.Lowered, list[Step]]] = {}
        # a gate call's text -> its nodes (op, qubits, angle), for calls on single qubits
        self.resolved: dict[str, list[Emitted]] = {}

    @abstractmethod
    def statement(self, st: Any, cond: Cond) -> None:
        """Lower one statement of the AST under ``cond``."""

    @abstractmethod
    def pure_call(self, fc: Any) -> Any:
        """The value of a def called inside an expression (it may not touch qubits)."""

    @abstractmethod
    def typed_value(self, expr: Any) -> Any:
        """The value of a constant expression that reads classical variables, by their
        types' rules (:meth:`reads_typed`), as a constant is held."""

    def reads_typed(self, expr: Any) -> bool:
        """Whether ``expr`` reads a typed classical value known before the run (a
        variable, a ``const``, an ``input``, a def's argument, a cast, a bit string;
        outside an index). Such an expression is valued by the types, as it is at run
        time: an angle wraps modulo a turn, a uint[4] at 16, ``angle[2](1.0)`` is pi/2."""
        from openqasm3 import ast

        for node in subexpressions(expr, indices=False):
            if isinstance(node, ast.Identifier):
                if node.name in self.typed and node.name in self.values:
                    return True
            elif isinstance(node, ast.BitstringLiteral):  # a bit[n]
                return True
            elif isinstance(node, ast.Cast) and type(node.type).__name__ in KINDS:
                return True  # a value of its type: angle[4](pi/2)
        return False

    # ------------------------------------------------------------------ helpers

    def error(self, kind: str, message: str, line: int | None = None) -> FrontendError:
        return FrontendError.at(kind, self.name, line if line is not None else self.line, message)

    def where(self) -> str:
        return f"{self.name}:{self.line}"

    def declared(self, name: str) -> bool:
        return (
            name in self.qregs or name in self.cregs or name in self.values or name in self.runtime
        )

    def declare(self, name: str) -> None:
        if self.declared(name) or name in self.gates:
            raise self.error("bad-value", f"{name!r} is already declared")
        if self.scopes:
            self.scopes[-1].add(name)
        self.stamp(name)

    def stamp(self, name: str) -> None:
        """``name`` is declared now: its place in the result keys' declaration order."""
        self.stamps[name] = self.next_stamp
        self.next_stamp += 1

    def add_bits(self, name: str, size: int) -> None:
        """A bit register ``name`` of ``size`` bits that nothing wrote yet."""
        self.stamp(name)
        self.cregs[name] = list(range(len(self.bits), len(self.bits) + size))
        self.bits.extend([None] * size)

    # ------------------------------------------------------------------ operands

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
            raise self.error("unsupported", f"{describe(type(operand).__name__)} as a qubit")
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
                    positions.extend(self.range_of(part, len(items)))
                else:
                    positions.append(self.integer(part, "an index"))
        return [self.pick(items, p, name) for p in positions]

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

    def angle_of(self, expr: qasm_scan.Expr) -> float:
        value = float(self.value_of(expr))
        if not math.isfinite(value):
            raise self.error("bad-value", f"a gate parameter evaluates to {value}")
        return value

    def evaluate(self, expr: Any, scope: Mapping[str, Any] | None = None) -> Any:
        """A constant expression's value (:class:`_Folder`'s walk of it)."""
        return _Folder(self, scope or {}).walk(expr)

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

    def bit_of(self, expr: Any, scope: Mapping[str, Any]) -> int:
        """``x[i]`` of a constant integer ``x``: its bit ``i`` (bit 0 least significant;
        a negative ``i`` counts from the top of a sized ``int[n]``/``uint[n]``)."""
        from openqasm3 import ast

        base = expr.collection
        value = self.evaluate(base, scope)
        name = base.name if isinstance(base, ast.Identifier) else "a value"
        t = self.typed.get(name) if name not in scope else None
        if t is not None and t.kind in ("angle", "int", "uint"):
            value = classical.cast(classical.FLOAT, t, value) if t.kind == "angle" else value
            value = int(classical.wrap(classical.make_type("uint", t.width), value))
        elif isinstance(value, bool) or not isinstance(value, int):
            raise self.error("unsupported", f"indexing {name}, which is not an integer")
        index = expr.index
        if isinstance(index, ast.DiscreteSet) or len(index) != 1:
            raise self.error("unsupported", f"indexing {name} by anything but one integer")
        (position,) = index
        if isinstance(position, ast.RangeDefinition):
            raise self.error("unsupported", f"a range of the bits of {name}")
        i = self.integer(position, "an index", scope)
        width = self.widths.get(name) if isinstance(base, ast.Identifier) else None
        width = t.width if t is not None else width
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
        if name in MATH_CONSTANTS:
            return MATH_CONSTANTS[name]
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

    def arith(self, op: str, a: Any, b: Any) -> Any:
        """``a op b`` for the binary operators of constant expressions: the expression
        core's (:mod:`qmk.qvm.expr_core`), but ``/`` of two integers that divide exactly
        is an integer, ``&&``/``||`` give bools and the bitwise operators take integers."""
        try:
            if op == "/" and isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
                return a // b if a % b == 0 else a / b
            if op in _NUMERIC:
                return _NUMERIC[op](a, b)
            if op == "&&":
                return bool(a) and bool(b)
            if op == "||":
                return bool(a) or bool(b)
            if op in BITWISE:
                return BITWISE[op](int(a), int(b))
        except ZeroDivisionError:
            raise self.error("bad-value", "division by zero") from None
        except OverflowError:
            raise self.error("bad-value", "a constant expression overflows") from None
        raise self.error("unsupported", f"operator {op}")

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

    def ctype(self, type_: Any) -> CType:
        """An AST scalar type as a :class:`~qmk.qvm.classical.CType`."""
        kind = KINDS.get(type(type_).__name__)
        if kind is None:
            raise self.error("unsupported", f"{describe(type(type_).__name__)} values")
        size = getattr(type_, "size", None)
        width = classical.DEFAULT_WIDTH[kind] if size is None else self.integer(size, "a width")
        try:
            return classical.make_type(kind, width)
        except classical.ClassicalError as exc:
            raise self.error("bad-value", str(exc)) from None


#: OpenQASM's arithmetic and comparisons of constants (``//`` is none of its operators).
_NUMERIC = {
    **{op: f for op, f in ARITHMETIC.items() if op != "//"},
    **COMPARISONS,
}


class _Folder(Walker[Any]):
    """One constant expression of the reference parser's tree, valued in the lowerer's
    scope (and ``scope``: a gate's parameters) with the expression core's operators,
    constants and functions."""

    def __init__(self, lowerer: Scope, scope: Mapping[str, Any]) -> None:
        self.lowerer = lowerer
        self.scope = scope

    def refuse(self, node: Any) -> FrontendError:
        if type(node).__name__ == "DurationLiteral":
            return self.lowerer.error("unsupported", "durations")
        kind = describe(type(node).__name__)
        return self.lowerer.error("unsupported", f"{kind} in a constant expression")

    def literal(self, node: Any) -> Any:
        return node.value

    on_IntegerLiteral = on_FloatLiteral = on_BooleanLiteral = on_BitstringLiteral = literal

    def on_Identifier(self, node: Any) -> Any:
        return self.lowerer.name_value(node.name, self.scope)

    def typed(self, node: Any) -> bool:
        """Whether ``node`` reads a classical variable: valued by its type's rules
        (outside a gate's body, whose parameters are plain numbers)."""
        return not self.scope and self.lowerer.reads_typed(node)

    def on_UnaryExpression(self, node: Any) -> Any:
        if self.typed(node):
            return self.lowerer.typed_value(node)
        value = self.walk(node.expression)
        op = node.op.name
        if op == "-":
            return -value
        if op == "!":
            return not value
        return ~int(value)

    def on_BinaryExpression(self, node: Any) -> Any:
        if self.typed(node):
            return self.lowerer.typed_value(node)
        a = self.walk(node.lhs)
        b = self.walk(node.rhs)
        return self.lowerer.arith(node.op.name, a, b)

    def on_FunctionCall(self, node: Any) -> Any:
        lowerer = self.lowerer
        name = node.name.name
        if name in lowerer.subroutines:
            return lowerer.pure_call(node)
        if self.typed(node) or (name in classical.BIT_FUNCTIONS and not self.scope):
            return lowerer.typed_value(node)
        args = [self.walk(a) for a in node.arguments]
        if name in MATH_FUNCTIONS and len(args) == 1:
            try:
                return MATH_FUNCTIONS[name](args[0])
            except (ValueError, OverflowError):
                raise lowerer.error("bad-value", f"{name}({args[0]}) is undefined") from None
        if name == "mod" and len(args) == 2:
            return math.fmod(args[0], args[1])
        if name == "pow" and len(args) == 2:
            return args[0] ** args[1]
        raise lowerer.error("undefined", f"function {name} with {len(args)} argument(s)")

    def on_Cast(self, node: Any) -> Any:
        if self.typed(node):
            return self.lowerer.typed_value(node)
        value = self.walk(node.argument)
        type_name = type(node.type).__name__
        if type_name in ("IntType", "UintType", "BitType"):
            return int(value)
        if type_name == "BoolType":
            return bool(value)
        return float(value)

    def on_IndexExpression(self, node: Any) -> Any:
        return self.lowerer.bit_of(node, self.scope)


def describe(kind: str) -> str:
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
