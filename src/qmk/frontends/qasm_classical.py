"""The OpenQASM lowerer's classical part: conditions, run-time values, control flow.

On top of :class:`~qmk.frontends.qasm_scope.Scope`:

- a condition (``if``, ``while``, ``switch``) becomes exclusive conjunctions of event
  tests (guards);
- a value known only at run time (``int n = int(c);``) becomes ``CALC`` nodes;
- loops are unrolled (``for`` over constant ranges, ``while`` up to its cap), and
  ``break`` and ``continue`` become conditions on what follows;
- a measurement writes a new event into a bit.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from qmk.frontends import conditions
from qmk.frontends.builder import guard_of
from qmk.frontends.errors import FrontendError, too_many_nodes
from qmk.frontends.folding import fold_pass
from qmk.frontends.qasm_fold import foldable
from qmk.frontends.qasm_runtime import (
    FUNCTIONS,
    MAX_LOOP_CAP,
    OPERATORS,
    UNARY,
    Loop,
    Operands,
    Value,
    cast_name,
    cond_text,
    literal,
)
from qmk.frontends.qasm_scope import (
    MATH_CONSTANTS,
    Cond,
    Scope,
    describe,
    subexpressions,
)
from qmk.qvm import classical
from qmk.qvm.classical import CType
from qmk.qvm.fold import unrolled_nodes
from qmk.qvm.graph import CALL, REPEAT


class Classical(Scope):
    """The walk's statements and blocks, and its classical part (see the module)."""

    # ------------------------------------------------------------------ statements

    def statements(self, statements: Iterable[Any], cond: Cond) -> None:
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

    def block(self, statements: Iterable[Any], cond: Cond) -> None:
        """A block's statements in a scope of their own: what they declare ends with it."""
        self.scopes.append(set())
        try:
            self.statements(statements, cond)
        finally:
            for name in self.scopes.pop():
                tables = (self.values, self.runtime, self.cregs, self.types, self.typed)
                for table in (*tables, self.assumed):
                    table.pop(name, None)
                self.scalars.discard(name)
                self.results.discard(name)

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

    # ------------------------------------------------------------------ run-time values

    def is_runtime(self, expr: Any) -> bool:
        """Whether ``expr`` reads a value known only at run time (bits, or a variable
        computed from them)."""
        from openqasm3 import ast

        return any(
            isinstance(node, ast.Identifier)
            and (node.name in self.runtime or node.name in self.cregs)
            for node in subexpressions(expr, indices=True)
        )

    def text(self, expr: Any, ops: Operands) -> str:
        """``expr`` as CALC expression text, the run-time values it reads in ``ops``."""
        from openqasm3 import ast

        if not self.is_runtime(expr) and not self.reads_typed(expr):
            try:
                return literal(self.evaluate(expr))
            except ValueError as exc:
                raise self.error("bad-value", str(exc)) from None
        if isinstance(expr, ast.Identifier) and expr.name in self.runtime:
            value = self.runtime[expr.name]
            return ops.ref(value.type, value.events)
        if isinstance(expr, ast.BitstringLiteral):  # "0101": a bit[4]
            return f"bit{expr.width}({expr.value})"
        if isinstance(expr, ast.Identifier) and expr.name in self.typed:  # as its type holds it
            return f"{cast_name(self.typed[expr.name])}({literal(self.values[expr.name])})"
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
        raise self.error("unsupported", f"{describe(type(expr).__name__)} in a run-time expression")

    def typed_value(self, expr: Any) -> Any:
        """A constant expression that reads classical variables, valued as a ``CALC``
        would value it at run time (:mod:`qmk.qvm.classical`), held as a constant is."""
        ops = Operands()
        text = self.text(expr, ops)
        try:
            compiled = classical.compile_expr(text, ())
            value = compiled.fn([])
        except classical.ClassicalError as exc:  # a fault too: a division by zero
            raise self.error("bad-value", f"{exc}") from None
        if compiled.type.kind == "angle":
            return float(classical.cast(compiled.type, classical.FLOAT, value))
        return value

    def call_text(self, fc: Any, ops: Operands) -> str:
        name, args = fc.name.name, [self.text(a, ops) for a in fc.arguments]
        if name in classical.BIT_FUNCTIONS:
            return f"{name}({', '.join(args)})"
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

    def compact(self, cond: Cond) -> Cond:
        """``cond`` as one event test when it has more than one term or many literals (so
        guards stay short and conditions stay small as loops unroll)."""
        if len(cond) <= 1 and all(len(term) <= 2 for term in cond):
            return cond
        ops = Operands()
        (event,) = self.calc(classical.BOOL, cond_text(cond, ops), ops)
        self.implied[event] = cond
        return [{event: 1}]

    def runtime_condition(self, expr: Any) -> Cond:
        """A condition on values known only at run time: one bool computed by a CALC."""
        from openqasm3 import ast

        if isinstance(expr, ast.Identifier) and expr.name in self.runtime:
            value = self.runtime[expr.name]
            if value.type.kind in ("bool", "bit") and value.type.width == 1:
                return [{value.events[0]: 1}]
        ops = Operands()
        (event,) = self.calc(classical.BOOL, f"bool({self.text(expr, ops)})", ops)
        return [{event: 1}]

    def assignment(self, st: Any, cond: Cond) -> None:
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
            self.measure_to(self.qubits([rhs.qubit]), target_expr, cond)
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
            constant = shown in self.values or shown in MATH_CONSTANTS
            if isinstance(target, ast.Identifier) and constant:
                raise self.error("bad-value", f"{shown} is a constant: it cannot be assigned")
            if isinstance(target, ast.IndexedIdentifier) and shown in self.types:
                raise self.error("unsupported", f"assigning one bit of {shown}, an integer")
            raise self.error("undefined", f"{shown} is not a declared variable")
        self.store(target.name, rhs, cond)

    def store(self, name: str, rhs: Any, cond: Cond) -> None:
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
    def assuming(self, context: Cond) -> Iterator[None]:
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

    def holds_under(self, context: Cond, pred: Cond) -> bool:
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
        """A constant stored as a variable of type ``t``: integers wrap to its width, a
        float[32] rounds to single precision, an angle to the nearest of its ``2**n``
        values in ``[0, 2 pi)`` (held as its radians)."""
        if t.kind == "bool":
            return bool(value)
        if t.kind == "angle":
            try:
                k = classical.cast(classical.FLOAT, t, float(value))
            except classical.ClassicalFault as exc:
                raise self.error("bad-value", f"{name}: {exc}") from None
            return float(classical.cast(t, classical.FLOAT, k))
        if t.kind == "float":
            return float(classical.wrap(t, float(value)))
        if isinstance(value, float) and not value.is_integer():
            return classical.cast(classical.FLOAT, t, value)
        return classical.wrap(t, int(value))

    def store_bits(self, slots: list[int], rhs: Any, cond: Cond) -> None:
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

    def measure(self, st: Any, cond: Cond) -> None:
        qubits = self.qubits([st.measure.qubit])
        if st.target is None:
            for q in qubits:
                self.measure_into([q], None, cond)
            return
        self.measure_to(qubits, st.target, cond)

    def measure_to(self, qubits: list[str], target: Any, cond: Cond) -> None:
        """Measure ``qubits`` into ``target``: bits of a bit register, or bits of an
        ``int``/``uint``/``angle`` variable (``c[0]``, ``c[1:2]``), as the specification's
        iterative phase estimation writes ``measure q -> c[0]`` into an ``angle[n]``; or
        the whole of an ``int[n]``/``uint[n]`` (``c = measure q;``), bit k from qubit k.
        An ``int``/``uint`` measured into holds results: its bits are a group of the
        result keys, as a bit register's (:meth:`finish`)."""
        from openqasm3 import ast

        base = target.collection if isinstance(target, ast.IndexExpression) else target
        base = base.name if isinstance(base, ast.IndexedIdentifier) else base
        name = getattr(base, "name", None)
        if name in self.cregs or name not in self.types:
            self.measure_into(qubits, self.bit_slots(target), cond)
            return
        t = self.types[name]
        if t.kind not in ("int", "uint", "angle"):
            raise self.error(
                "unsupported", f"measuring into {name} (a {t.kind}): measure into a bit register"
            )
        if isinstance(target, ast.Identifier) and t.kind == "angle":
            raise self.error(
                "bad-value",
                f"measuring into the whole of {name} (angle[{t.width}]): an angle is not "
                f"bits; measure into its bits ({name}[0] = measure q[0];) or a bit register",
            )
        if isinstance(target, ast.Identifier):
            positions = list(range(t.width))
        else:
            indices = [target.index] if isinstance(target, ast.IndexExpression) else target.indices
            positions = self.select(list(range(t.width)), indices, name)
        if len(positions) != len(qubits):
            raise self.error(
                "arity", f"measuring {len(qubits)} qubit(s) into {len(positions)} bit(s)"
            )
        if t.kind != "angle":
            self.results.add(name)
        if not cond:
            return
        cond = self.compact(cond) if len(cond) > 1 else cond
        if cond == [{}] and sorted(positions) == list(range(t.width)):
            events = [""] * t.width  # every bit measured: its old value is never read
        else:
            events = list(self.variable_events(name))
        guard = guard_of(list(cond[0].items()))
        bit = classical.make_type("bit", 1)
        for k, q in zip(positions, qubits, strict=True):
            event = self.builder.measure(q, guard=guard, where=self.where())
            if cond != [{}]:
                # the bit keeps its old value where the measurement did not run
                ops = Operands()
                new, was = ops.ref(bit, (event,)), ops.ref(bit, (events[k],))
                (event,) = self.calc(bit, f"({new} if {cond_text(cond, ops)} else {was})", ops)
            events[k] = event
        self.values.pop(name, None)
        self.assumed.pop(name, None)
        self.runtime[name] = Value(t, tuple(events))

    def variable_events(self, name: str) -> tuple[str, ...]:
        """The events holding variable ``name``'s bits (least significant first); a value
        known before the run is written into events by a CALC first."""
        held = self.runtime.get(name)
        if held is not None:
            return held.events
        t = self.types[name]
        value = self.values[name]
        known = float(value) if t.kind == "angle" else value  # an angle casts from a float
        return tuple(self.calc(t, f"{cast_name(t)}({literal(known)})", Operands()))

    def measure_into(self, qubits: list[str], slots: list[int] | None, cond: Cond) -> None:
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

    # ------------------------------------------------------------------ loops and switch

    def for_loop(self, st: Any, cond: Cond) -> None:
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
        block = st.block if isinstance(st.block, list) else [st.block]
        self.charge_passes(passes)  # folded or not, a cap bounds the work a loop stands for
        if passes > 1 and cond == [{}] and foldable(block, var):
            self.values[var] = values[0]  # named nowhere in the body: a pass is every pass
            before = len(self.builder.nodes)
            try:
                self.block(block, cond)
            finally:
                self.values.pop(var, None)
            self.folds += 1
            per_pass = self.unrolled_to(len(self.builder.nodes)) - self.unrolled_to(before)
            if fold_pass(self.builder.nodes, before, passes, self.folds):
                self.check_folded(before, passes, per_pass)
                return
            values = values[1:]  # the pass wrote more than gates: the others are unrolled
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

    def unrolled_to(self, end: int) -> int:
        """How many nodes the builder's first ``end`` rows unroll to, from a running
        prefix sum: each row is counted once, when first asked about, so many folded loops
        cost time linear in the program (a fold rewrites only the rows after its start)."""
        if self.max_nodes is None:
            return 0
        sums = self.unrolled_sums
        if end >= len(sums):
            for node in self.builder.nodes[len(sums) - 1 : end]:
                folded = node.op in (REPEAT, CALL)
                size = unrolled_nodes((node,), tuple(self.builder.blocks.values())) if folded else 1
                sums.append(sums[-1] + size)
        return sums[end]

    def check_folded(self, before: int, passes: int, per_pass: int) -> None:
        """Refuse a loop just read folded, into the REPEAT row at ``before`` of ``passes``
        turns of ``per_pass`` nodes, whose unrolled program would pass the cap."""
        if self.max_nodes is None:
            return
        sums = self.unrolled_sums
        del sums[before + 1 :]  # the pass's rows are now the one REPEAT row
        sums.append(sums[before] + per_pass * passes)
        total = sums[-1]
        if total > self.max_nodes:
            raise too_many_nodes(
                self.where(),
                f"a for loop of {passes} passes of {per_pass} nodes each",
                total,
                self.max_nodes,
            )

    def while_loop(self, st: Any, cond: Cond) -> None:
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

    def iteration(self, block: list[Any], run: Cond, loop: Loop) -> Cond:
        """One iteration of a loop's body under ``run``; where the loop goes on."""
        loop.broke, loop.stops = [], []
        self.block(block, run)
        return self.compact(self.conjoin(run, self.negate(loop.broke)))

    def overrun(self, run: Cond, what: str, cap: int) -> None:
        message = f"the {what} at line {self.line} ran past its iteration cap of {cap}"
        if run == [{}]:
            raise self.error(
                "loop-cap",
                f"this {what} runs past its iteration cap of {cap} in every run: bound it, or "
                "raise the cap with 'pragma qmk loop_cap N' before it",
            )
        for terms in run:
            self.builder.halt(message, guard=guard_of(list(terms.items())), where=self.where())

    def switch(self, st: Any, cond: Cond) -> None:
        """``switch``: each case runs where the target equals one of its values and no
        case before it matched; ``default`` where none did."""
        from openqasm3 import ast

        taken: Cond = []
        seen: set[int] = set()
        for values, body in st.cases:
            here: Cond = []
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

    def loop_exit(self, st: Any, cond: Cond) -> None:
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

    # ------------------------------------------------------------------ conditions

    def condition(self, expr: Any) -> Cond:
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

    def equals(self, slots: list[int], value: int) -> Cond:
        """Bits ``slots`` (bit 0 first) spell ``value``."""
        return conditions.equals([self.bits[s] for s in slots], value)

    def negate(self, cond: Cond) -> Cond:
        try:
            return conditions.negate(cond)
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None

    def conjoin(self, a: Cond, b: Cond) -> Cond:
        try:
            return conditions.conjoin(a, b)
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None

    def disjoin(self, a: Cond, b: Cond) -> Cond:
        try:
            return conditions.disjoin(a, b)
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None
