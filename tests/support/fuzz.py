"""The fuzz targets, their settings and strategies, shared by tests/fuzz (hypothesis) and
``make fuzz`` (hypothesis with many examples, and atheris where it installs).

A target takes bytes and feeds them to one reader of untrusted input: the JSON-RPC core
(framing and dispatch), the QVM JSON loader and the verifier, the assembler, the
OpenQASM and QIR front-ends, and ``qmk validate`` on a file. It returns when the reader
accepted the input or refused it the way QMK refuses things: a :class:`QMKError` with a
code, in one line (on the command line: an exit status of 1 or 2 and one coded line on
stderr, never a traceback). Anything else (another exception, a malformed reply, a
traceback) fails the target, and becomes a regression test in tests/fuzz.

:data:`FUZZ` is the hypothesis settings: a few examples with derandomized (fixed) seeds
in the normal suite; ``QMK_FUZZ_EXAMPLES=N`` (what ``make fuzz`` sets) runs N examples
with random seeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from qmk.abi.jsonrpc import Caller, RpcCore
from qmk.abi.methods import METHODS
from qmk.errors import QMKError
from qmk.qvm.ops import OPS
from support.paths import EXAMPLES

#: Examples per fuzz test: a short run unless ``QMK_FUZZ_EXAMPLES`` asks for a long one.
EXAMPLES_PER_TEST = int(os.environ.get("QMK_FUZZ_EXAMPLES", "30"))
LONG_RUN = "QMK_FUZZ_EXAMPLES" in os.environ

#: The settings of every fuzz test (seeds are fixed in the normal suite).
FUZZ = settings(
    max_examples=EXAMPLES_PER_TEST,
    derandomize=not LONG_RUN,
    database=None if not LONG_RUN else settings.default.database,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

# ----------------------------------------------------------------------------- the contract

_CODE = re.compile(r"^Q[A-Z]\d{3,5} [a-z0-9-]+: ")
_CODED = re.compile(r"\bQ[A-Z]\d{3,5} [a-z0-9-]+")
_TALLY = re.compile(r": \d+ errors?$")


def coded(call: Callable[[], Any]) -> Any:
    """Run ``call``; a QMKError with a code and a one-line message is a fine refusal.

    Raises:
        AssertionError: the refusal has no code, or its message has more than one line.
        Any other exception ``call`` raises (a crash: the fuzzer's finding).
    """
    try:
        return call()
    except QMKError as exc:
        text = str(exc)
        if not _CODE.match(text) or "\n" in text:
            raise AssertionError(f"a refusal without a code or in several lines: {text!r}") from exc
        return None


# ----------------------------------------------------------------------------- targets


class AnyMethod:
    """A target for the JSON-RPC core that answers every method of the table with {}."""

    def __getattr__(self, name: str) -> Any:
        if name not in METHODS:
            raise AttributeError(name)

        async def answer(**params: Any) -> dict[str, Any]:
            return {}

        return answer


_CORE = RpcCore(AnyMethod(), max_depth=16)


def _check_reply(item: Any) -> None:
    assert isinstance(item, dict) and item.get("jsonrpc") == "2.0" and "id" in item, item
    assert ("result" in item) != ("error" in item), item
    if "error" in item:
        error = item["error"]
        assert isinstance(error["code"], int) and isinstance(error["message"], str), item
        assert error["data"]["name"] and error["data"]["code"], item
        assert "Traceback" not in error["message"], item
        assert error["code"] != -32603, item  # the target never fails: no internal error


def jsonrpc(data: bytes) -> None:
    """One line through :class:`RpcCore`: no reply, or one line of valid replies."""
    reply = asyncio.run(_CORE.handle_line(data, Caller()))
    if reply is None:
        return
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1, reply
    message = json.loads(reply)
    for item in message if isinstance(message, list) else [message]:
        _check_reply(item)


def qvm_json(data: bytes) -> None:
    """The QVM JSON loader, then the verifier on what it loads."""
    from qmk.qvm import graph as graph_io
    from qmk.qvm.verify import verify

    loaded = coded(lambda: graph_io.loads(data, source="fuzz.qvm.json"))
    if loaded is not None:
        coded(lambda: verify(loaded))


def qvm_asm(data: bytes) -> None:
    """The assembler (no includes), then the verifier on what it assembles."""
    from qmk.qvm.asm import assemble
    from qmk.qvm.verify import verify

    text = data.decode("utf-8", "replace")
    assembled = coded(lambda: assemble(text, source="fuzz.qvm.asm"))
    if assembled is not None:
        coded(lambda: verify(assembled))


def qasm(data: bytes) -> None:
    """The OpenQASM 2/3 front-end (the version read from the header)."""
    from qmk.frontends.qasm import from_qasm

    coded(lambda: from_qasm(data.decode("utf-8", "replace"), name="fuzz.qasm"))


def qir(data: bytes) -> None:
    """The QIR front-end, on LLVM text or bitcode."""
    from qmk.frontends.qir import from_qir

    coded(lambda: from_qir(data, name="fuzz.ll"))


_SUFFIXES = (".qvm.json", ".qvm.asm", ".qasm", ".ll")


def cli_validate(data: bytes) -> None:
    """``qmk validate FILE`` in-process: exit 0, 1 or 2, and coded one-line errors only.

    The first byte picks the file's extension, so one corpus reaches every reader.
    """
    from qmk.cli import main

    suffix = _SUFFIXES[data[0] % len(_SUFFIXES)] if data else ".qvm.json"
    stray = io.StringIO()  # what a library prints past the command's own streams
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(stray):
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data[1:])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stray):
            status = main(["validate", str(path)], stdout=out, stderr=err)
    assert status in (0, 1, 2), (status, err.getvalue())
    assert not stray.getvalue(), f"printed past the command: {stray.getvalue()!r}"
    assert "Traceback" not in err.getvalue(), err.getvalue()
    for line in err.getvalue().splitlines():  # errors, findings "FILE: error: QV107 ...",
        assert _CODED.search(line) or _TALLY.search(line), line  # and "FILE: 2 errors"


#: Every fuzz target by name (``make fuzz`` runs each with atheris too).
TARGETS: dict[str, Callable[[bytes], None]] = {
    "jsonrpc": jsonrpc,
    "qvm-json": qvm_json,
    "qvm-asm": qvm_asm,
    "qasm": qasm,
    "qir": qir,
    "cli-validate": cli_validate,
}

#: Seed inputs of each target: the example programs (and requests for the wire).
SEEDS: dict[str, list[bytes]] = {
    "jsonrpc": [
        json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "q_status", "params": ["s", "j"]}
        ).encode(),
        json.dumps(
            [{"jsonrpc": "2.0", "id": "a", "method": "q_submit", "params": {"graph": {}}}]
        ).encode(),
    ],
    "qvm-json": [p.read_bytes() for p in sorted(EXAMPLES.glob("*.qvm.json"))],
    "qvm-asm": [p.read_bytes() for p in sorted(EXAMPLES.glob("*.qvm.asm"))],
    "qasm": [p.read_bytes() for p in sorted(EXAMPLES.glob("*.qasm"))],
    "qir": [p.read_bytes() for p in sorted(EXAMPLES.glob("*.ll"))],
    "cli-validate": [b"\x00" + p.read_bytes() for p in sorted(EXAMPLES.glob("*.qvm.json"))],
}


# ----------------------------------------------------------------------------- strategies

#: Numbers as written on the wire, beyond what a double or a 64-bit integer holds.
WILD_NUMBERS = (
    "1e400",
    "-1e400",
    "1" + "0" * 400,
    "-" + "9" * 25,
    "18446744073709551616",
    "18446744073709551615",
    "-9223372036854775808",
    "1e-400",
    "0.1e309",
    "4.9e-324",
    "-0",
    "1E+2",
)

#: Fragments that parsers of every kind trip over.
TOKENS = tuple(
    t.encode()
    for t in (
        *WILD_NUMBERS,
        "NaN",
        "Infinity",
        "null",
        "true",
        "[",
        "]",
        "{",
        "}",
        '"',
        "\\",
        "\\u0000",
        "\\ud800",
        "\n",
        "\r\n",
        ",",
        ":",
        ";",
        "=",
        "==",
        "pi",
        "**",
        "/0",
        "(",
        ")",
        "->",
        "ALLOC_LQ",
        "FENCE_EPOCH",
        "MEASURE_BELL",
        "COND_PAULI",
        "when",
        "ev:",
        "vq:",
        "ch:",
        "out:",
        ".include",
        ".caps",
        "qreg",
        "creg",
        "qubit[",
        "bit[",
        "measure",
        "if (",
        "gate",
        "reset",
        "barrier",
        "OPENQASM 2.0;",
        "OPENQASM 3;",
        'include "qelib1.inc";',
        "%Qubit*",
        "%Result*",
        "call void",
        "inttoptr (i64 ",
        "define void @main()",
        "@__quantum__qis__h__body",
        "@__quantum__qis__mz__body",
        "@__quantum__rt__result_record_output",
        "#0",
        "attributes",
        "\xff",
        "\x00",
    )
)


def json_text(value: Any) -> str:
    return json.dumps(value)


@st.composite
def raw_json(draw: st.DrawFn, depth: int = 4) -> str:
    """JSON text whose numbers may be any of :data:`WILD_NUMBERS`, and keys duplicated."""
    kind = draw(st.integers(0, 7 if depth > 0 else 3))
    if kind == 0:
        return draw(st.sampled_from(WILD_NUMBERS))
    if kind == 1:
        return json_text(draw(st.one_of(st.none(), st.booleans(), st.integers(), st.floats())))
    if kind in (2, 3):
        return json_text(draw(st.text(max_size=12)))
    if kind in (4, 5):
        items = draw(st.lists(raw_json(depth - 1), max_size=4))
        return "[" + ",".join(items) + "]"
    keys = draw(st.lists(st.text(max_size=6), max_size=4))
    values = [draw(raw_json(depth - 1)) for _ in keys]
    return "{" + ",".join(f"{json_text(k)}:{v}" for k, v in zip(keys, values, strict=True)) + "}"


_PARAM_NAMES = sorted({p.name for spec in METHODS.values() for p in spec.params})


@st.composite
def request_text(draw: st.DrawFn) -> str:
    """One JSON-RPC request (or something close to one) as text."""
    fields = []
    if draw(st.booleans()):
        fields.append('"jsonrpc":' + draw(st.sampled_from(['"2.0"', '"1.0"', "2", "null"])))
    if draw(st.integers(0, 4)):
        ids = st.one_of(
            st.sampled_from(["1", '"a"', "null", "2.5", "true", "[]", "{}"]),
            st.sampled_from(WILD_NUMBERS),
        )
        fields.append('"id":' + draw(ids))
    method = draw(st.one_of(st.sampled_from(sorted(METHODS)), st.text(max_size=8)))
    fields.append('"method":' + json_text(method))
    if draw(st.integers(0, 4)):
        if draw(st.booleans()):
            names = draw(st.lists(st.sampled_from(_PARAM_NAMES), max_size=5, unique=True))
            values = [draw(raw_json(3)) for _ in names]
            fields.append(
                '"params":{'
                + ",".join(f"{json_text(n)}:{v}" for n, v in zip(names, values, strict=True))
                + "}"
            )
        else:
            items = draw(st.lists(raw_json(3), max_size=5))
            fields.append('"params":[' + ",".join(items) + "]")
    order = draw(st.permutations(fields))
    return "{" + ",".join(order) + "}"


@st.composite
def wire_line(draw: st.DrawFn) -> bytes:
    """A line for the JSON-RPC core: a request, a batch, any JSON, or any bytes."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return draw(raw_json()).encode()
    if kind == 2:
        requests = draw(st.lists(request_text(), max_size=6))
        return ("[" + ",".join(requests) + "]").encode()
    return draw(request_text()).encode()


# ----------------------------------------------------------------------------- programs

_HANDLES = ("q0", "q1", "q2", "a", "b")
_CHANNELS = ("c0", "c1")
_EVENTS = ("m0", "m1", "x", "z")


@st.composite
def _arg_value(draw: st.DrawFn) -> Any:
    return draw(
        st.one_of(
            st.integers(-3, 5),
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from(["X", "Z", "XZ", "pi", "logical:surface_code(d=3)", "", "auto"]),
            st.none(),
            st.lists(st.integers(0, 3), max_size=2),
            st.dictionaries(st.sampled_from(["fidelity", "n", "x"]), st.floats(0, 2), max_size=2),
        )
    )


@st.composite
def _node(draw: st.DrawFn, index: int) -> dict[str, Any]:
    op = draw(st.one_of(st.sampled_from(sorted(OPS)), st.sampled_from(["NOPE", "", "h"])))
    spec = OPS.get(op)
    node: dict[str, Any] = {"id": draw(st.sampled_from([f"n{index}", "dup", ""])), "op": op}
    arg_names = [a.name for a in spec.args] if spec else []
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from([*arg_names, "bogus"]), max_size=3, unique=True))
        node["args"] = {name: draw(_arg_value()) for name in names}
    for field, pool in (("vqs", _HANDLES), ("chs", _CHANNELS), ("inputs", _EVENTS)):
        if draw(st.booleans()):
            node[field] = draw(st.lists(st.sampled_from(pool), max_size=3))
    if draw(st.integers(0, 3)) == 0:
        node["produces"] = draw(st.lists(st.sampled_from(_EVENTS), max_size=2))
    if draw(st.integers(0, 5)) == 0:
        node["guard"] = {"event": draw(st.sampled_from(_EVENTS)), "equals": draw(st.integers(0, 2))}
    return node


@st.composite
def qvm_graph(draw: st.DrawFn) -> bytes:
    """A graph-shaped QVM JSON document built from the op table, often invalid."""
    nodes = [draw(_node(i)) for i in range(draw(st.integers(0, 10)))]
    document: dict[str, Any] = {
        "version": draw(st.sampled_from(["0.1", "0.2", "9", ""])),
        "program": {"nodes": nodes},
        "resources": {
            "vqs": draw(st.lists(st.sampled_from(_HANDLES), max_size=5)),
            "chs": draw(st.lists(st.sampled_from(_CHANNELS), max_size=2)),
            "events": draw(st.lists(st.sampled_from(_EVENTS), max_size=4)),
        },
        "caps": draw(st.lists(st.sampled_from(["CAP_ALLOC", "CAP_LINK", "CAP_X"]), max_size=3)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(document)), max_size=1)):
        del document[key]
    return json.dumps(document).encode()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed after a few edits: spans deleted, duplicated or overwritten, tokens inserted."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.integers(0, 4))
        if kind == 0:
            del data[at : at + draw(st.integers(1, 24))]
        elif kind == 1:
            data[at:at] = draw(st.binary(min_size=1, max_size=6))
        elif kind == 2 and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == 3:
            data[at:at] = data[at : at + draw(st.integers(1, 80))]
        else:
            data[at:at] = draw(st.sampled_from(TOKENS))
    return bytes(data)


@st.composite
def token_soup(draw: st.DrawFn) -> bytes:
    """Tokens and spaces strung together, line by line."""
    lines = draw(st.lists(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6), max_size=12))
    return b"\n".join(b" ".join(line) for line in lines)
