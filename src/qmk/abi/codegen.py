"""Python source generated from the method table, checked in and drift-checked.

Two modules and a schema are rendered from :data:`qmk.abi.methods.METHODS`:

- :mod:`qmk.abi.protocol`: :class:`~qmk.abi.protocol.KernelSyscalls`, the
  ``typing.Protocol`` a kernel serving the table satisfies. ``qmk.kernel._contract``
  makes mypy check :class:`qmk.kernel.service.Kernel` against it, so a syscall whose
  params, types or defaults drift from the table fails ``make lint``.
- :mod:`qmk.abi.calls`: :class:`~qmk.abi.calls.AsyncSyscallMethods`, one typed coroutine
  per syscall that returns the method's reply struct (:mod:`qmk.abi.replies`), the base
  of :class:`qmk.client.AsyncClient`; and :class:`~qmk.abi.calls.SyscallMethods`, the
  same methods made blocking (:mod:`qmk.abi.blocking`), the base of the blocking clients
  (:class:`qmk.client.Client`, the gRPC client).
- ``kernel.proto``: the gRPC service ``qmk.v1.Kernel`` (:mod:`qmk.abi.proto`), which
  ``qmk serve --grpc`` serves (:mod:`qmk.grpc`).

The rendered text is already in ``ruff format`` style (one param a line, trailing
commas), so the files pass the linters as they are written. One command checks or
refreshes all three (``make docs`` runs ``--write``, ``make test`` runs ``--check``)::

    python -m qmk.abi.codegen --check   # exit 1, one line per stale file
    python -m qmk.abi.codegen --write   # regenerate them in place

>>> from qmk.abi.methods import METHODS
>>> annotation(METHODS["q_submit"].param("graph"), client=True)
'Mapping[str, Any] | SupportsJson'
>>> annotation(METHODS["q_submit"].param("seed"), client=False)
'int | None'
>>> print(signature(METHODS["q_wait"], client=True))
def q_wait(
    self,
    job_id: str,
    timeout_ms: int = 30000,
    *,
    session_id: str | None = None,
) -> replies.Job:
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qmk.abi.methods import METHODS, JsonType, MethodSpec, ParamSpec
from qmk.abi.proto import render as render_proto

#: The package folder the generated modules live in.
HERE = Path(__file__).resolve().parent

#: The command that regenerates the files, for drift messages.
REGENERATE = "python -m qmk.abi.codegen --write"

_WIDTH = 100
_SCALARS = {
    JsonType.STRING: "str",
    JsonType.INTEGER: "int",
    JsonType.NUMBER: "float",
    JsonType.BOOLEAN: "bool",
    JsonType.NULL: "None",
}
_HEADER = '''"""{summary}

GENERATED from :data:`qmk.abi.methods.METHODS` by ``{command}``
(:mod:`qmk.abi.codegen`): do not edit; change the table and regenerate.
{more}"""

from __future__ import annotations
'''


def _python_type(kind: JsonType, items: JsonType | None, *, client: bool) -> str:
    if kind is JsonType.OBJECT:
        return "Mapping[str, Any] | SupportsJson" if client else "Mapping[str, Any]"
    if kind is JsonType.ARRAY:
        inner = "Any" if items is None else _python_type(items, None, client=client)
        return f"Sequence[{inner}]"
    return _SCALARS[kind]


def annotation(param: ParamSpec, *, client: bool) -> str:
    """The Python annotation of ``param``: the kernel's view (decoded JSON) or the
    client's (which also takes objects with ``to_json()``, such as a QVM ``Graph``)."""
    return " | ".join(_python_type(kind, param.items, client=client) for kind in param.types)


def literal(value: Any) -> str:
    """``value`` (a table default) as Python source in ruff's style.

    >>> literal("a"), literal(()), literal([1, 2.5]), literal(None)
    ('"a"', '()', '[1, 2.5]', 'None')
    """
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise TypeError(f"a table default must be JSON-like, got {type(value).__name__}")


def _client_default(param: ParamSpec) -> str:
    # the client's default is the JSON value it sends (a tuple goes out as an array); it
    # is passed straight to the encoder and never mutated
    return literal(param.json_default) + ","


def signature(spec: MethodSpec, *, client: bool) -> str:
    """The ``def`` line of ``spec``'s method: for the client (positional params in table
    order, ``session_id`` last and keyword-only, defaulting to the client's session) or
    for the kernel's Protocol (every param keyword-only, as the server calls them)."""
    lines = ["self,"]
    if client:
        for param in spec.params:
            if param.name == "session_id":
                continue
            head = f"{param.name}: {annotation(param, client=True)}"
            lines.append(f"{head}," if param.required else f"{head} = {_client_default(param)}")
        if spec.needs_session:
            lines += ["*,", "session_id: str | None = None,"]
    else:
        lines.append("*,")
        for param in spec.params:
            head = f"{param.name}: {annotation(param, client=False)}"
            lines.append(f"{head}," if param.required else f"{head} = {literal(param.default)},")
    result = f"replies.{spec.reply.__name__}"  # the method's reply struct, on both sides
    body = "".join(f"\n    {line}" for line in lines)
    return f"def {spec.name}({body}\n) -> {result}:"


def _wrap(text: str, indent: str, hanging: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        _WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + hanging,
        break_long_words=False,
        break_on_hyphens=False,
    )


def docstring(spec: MethodSpec) -> list[str]:
    """The docstring of ``spec``'s client method, as lines indented for a method body."""
    pad = " " * 8
    summary = spec.doc[:1].upper() + spec.doc[1:] + "."
    lines = _wrap('"""' + summary, pad)
    lines += ["", *_wrap(f"Returns: {spec.returns}.", pad, "    "), ""]
    params = [p for p in spec.params if p.name != "session_id"]
    if params or spec.needs_session:
        lines.append(f"{pad}Args:")
    for p in params:
        default = "" if p.required else f" (default {json.dumps(p.json_default)})"
        lines += _wrap(f"{p.name}: {p.type_text()}; {p.doc}{default}", pad + "    ", "    ")
    if spec.needs_session:
        lines += _wrap(
            "session_id: the session to use; None: the client's own", pad + "    ", "    "
        )
    lines.append(f'{pad}"""')
    return lines


#: The longest line ruff format keeps (``[tool.ruff] line-length``).
LINE_LENGTH = 100


def _method(spec: MethodSpec, *, client: bool) -> list[str]:
    """``spec``'s coroutine: the kernel's (a signature only) or a client's, which awaits
    ``_call`` and decodes the reply struct."""
    lines = [textwrap.indent(signature(spec, client=client), "    ")]
    lines[0] = lines[0].replace("    def ", "    async def ", 1)
    # The kernel's Protocol is for mypy's check only: the method's words live once, in
    # the clients' docstrings (qmk.abi.calls) and docs/qsyscall.md.
    if not client:
        return [lines[0] + " ..."]
    lines += docstring(spec)
    call = "await self._call("
    given = ", ".join(f'"{p.name}": {p.name}' for p in spec.params)
    one_line = f"        reply = {call}{json.dumps(spec.name)}, {{{given}}})"
    args_line = f"            {json.dumps(spec.name)}, {{{given}}}"
    if len(one_line) <= LINE_LENGTH:  # ruff format keeps a call that fits as it is
        lines.append(one_line)
    elif len(args_line) <= LINE_LENGTH:  # its arguments on one line: kept as well
        lines += [f"        reply = {call}", args_line, "        )"]
    else:  # exploded, with trailing commas: ruff format keeps it as it is
        lines += [f"        reply = {call}", f"            {json.dumps(spec.name)},"]
        lines.append("            {")
        lines += [f'                "{p.name}": {p.name},' for p in spec.params]
        lines += ["            },", "        )"]
    lines.append(f"        return replies.{spec.reply.__name__}.from_json(reply)")
    return lines


def _typing_imports(text: str, *names: str) -> str:
    abc = [name for name in ("Mapping", "Sequence") if f"{name}[" in text]
    lines = [f"from collections.abc import {', '.join(abc)}"] if abc else []
    lines.append(f"from typing import {', '.join(names)}")
    return "\n".join(lines) + "\n"


def _module(
    summary: str,
    more: str,
    *,
    typing: Sequence[str],
    extra: str,
    head: str,
    name: str,
    client: bool,
    then: tuple[str, str] | None = None,
) -> str:
    """A generated module: its docstring, imports, ``head`` (up to the class's first
    method), one method per syscall (coroutines, for a client awaiting ``_call``) and
    ``__all__``; with ``then``, a second class (its head and name) whose methods are the
    blocking forms of the first's (:func:`qmk.abi.blocking.blocking`)."""
    methods = "\n\n".join("\n".join(_method(spec, client=client)) for spec in METHODS.values())
    body = f"{head}\n{methods}\n"
    names = [name]
    if then is not None:
        blocking = "\n".join(f"    {n} = blocking({name}.{n})" for n in METHODS)
        body += f"{then[0]}\n{blocking}\n"
        names.append(then[1])
    body += f"\n\n__all__ = [{', '.join(json.dumps(n) for n in sorted(names))}]\n"
    docstring = _HEADER.format(summary=summary, command=REGENERATE, more=more)
    return docstring + "\n" + _typing_imports(body, *typing) + extra + body


def render_protocol() -> str:
    """The source of :mod:`qmk.abi.protocol`."""
    return _module(
        "The qSyscall methods as a Protocol: what a kernel serving them provides.",
        "\nThe server calls every method with every param by keyword, defaults filled in\n"
        "from the table. :class:`qmk.kernel.service.Kernel` satisfies the Protocol, which\n"
        "mypy checks in :mod:`qmk.kernel._contract`: a param, type or default that drifts\n"
        "from the table fails ``make lint`` (default values are compared by\n"
        "``tests/abi/test_codegen.py``: mypy checks that a default exists, not its value).\n",
        typing=("Any", "Protocol"),
        extra="\nfrom qmk.abi import replies\n",
        head="\n\nclass KernelSyscalls(Protocol):\n"
        '    """Every qSyscall method as the coroutine a kernel provides for it."""\n',
        name="KernelSyscalls",
        client=False,
    )


_CLASS_DOC = (
    "    Params are checked against the table before anything is sent; ``session_id``\n"
    "    None means the client's own session. Each method gives the method's reply\n"
    "    struct (:mod:`qmk.abi.replies`), decoded from the JSON object of the reply:\n"
    "    the method table, one method a row, rendered from it.\n"
    '    """\n\n'
)


def render_calls() -> str:
    """The source of :mod:`qmk.abi.calls`."""
    return _module(
        "Every qSyscall method as a typed Python method of the clients.",
        "\n:class:`AsyncSyscallMethods` is :class:`qmk.client.AsyncClient`'s, one coroutine a\n"
        "method; :class:`SyscallMethods` the blocking clients' (:class:`qmk.client.Client`,\n"
        "the gRPC client), the same methods run to their end (:mod:`qmk.abi.blocking`). The\n"
        "replies are typed (:mod:`qmk.abi.replies`). Each client implements ``_call`` over\n"
        "its transport, giving the reply's JSON object.\n",
        typing=("Any",),
        extra="\nfrom qmk.abi import replies\nfrom qmk.abi.blocking import blocking\n"
        "from qmk.abi.methods import SupportsJson\n",
        head="\n\nclass AsyncSyscallMethods:\n"
        '    """One coroutine per qSyscall method; a subclass sends the call in\n'
        "    :meth:`_call`.\n\n"
        + _CLASS_DOC
        + "    async def _call(self, method: str, params: dict[str, Any]) -> Any:\n"
        '        """Send ``method`` with ``params``; the reply\'s JSON object."""\n'
        "        raise NotImplementedError\n",
        name="AsyncSyscallMethods",
        client=True,
        then=(
            "\n\nclass SyscallMethods:\n"
            '    """One method per qSyscall method; a subclass sends the call in :meth:`_call`.\n\n'
            + _CLASS_DOC
            + "    def _call(self, method: str, params: dict[str, Any]) -> Any:\n"
            '        """Send ``method`` with ``params``; the reply\'s JSON object."""\n'
            "        raise NotImplementedError\n",
            "SyscallMethods",
        ),
    )


#: Each generated module's file name in :data:`HERE`, with its renderer.
FILES: dict[str, Callable[[], str]] = {
    "protocol.py": render_protocol,
    "calls.py": render_calls,
    # the gRPC schema (qmk.abi.proto): what `qmk serve --grpc` serves, for protoc users
    "kernel.proto": lambda: render_proto(REGENERATE),
}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qmk.abi.codegen (--check | --write) [--dir DIR]``.

    Returns:
        0; 1 when ``--check`` finds a file out of date (one line each on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="python -m qmk.abi.codegen",
        description="Check or regenerate the Python modules rendered from the method table.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    mode.add_argument("--write", action="store_true", help="regenerate the files in place")
    parser.add_argument("--dir", type=Path, default=HERE, help="where the files live (qmk/abi)")
    options = parser.parse_args(argv)
    status = 0
    for name, render in FILES.items():
        path, text = options.dir / name, render()
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if options.write:
            path.write_text(text, encoding="utf-8")
            print(f"{path}: regenerated")
        else:
            what = "missing" if current is None else "out of date with the method table"
            print(f"{path}: {what}; run {REGENERATE}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
