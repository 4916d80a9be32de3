"""The error registry: one entry per code, every class's codes registered, no literal codes
at raising sites, and the exception tree drawn in qmk/errors.py true to the classes."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import qmk
from qmk import errors
from qmk.docgen.errors import load_families, render_tree
from qmk.errors import (
    FAMILIES,
    REGISTRY,
    ErrorCode,
    QMKError,
    Registry,
    Severity,
    warning,
    warning_line,
)

SRC = Path(qmk.__file__).resolve().parent
ROOT = SRC.parents[1]
CODE = re.compile(r"\bQ[A-Z][0-9]{3,5}\b")


def _import_everything() -> list[type[QMKError]]:
    """Import every module of qmk (so every class and registration exists); every class."""
    for info in pkgutil.walk_packages(qmk.__path__, "qmk."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: list[type[QMKError]] = []
    todo: list[type[QMKError]] = [QMKError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(sub for sub in cls.__subclasses__() if sub.__module__.startswith("qmk."))
    return found


CLASSES = _import_everything()
ENTRIES = list(REGISTRY)


def test_the_family_modules_alone_register_every_code():
    # every module of qmk is imported above; the families' own modules account for all codes
    assert {e.family.module for e in ENTRIES} == {f.module for f in FAMILIES.values()}
    for entry in ENTRIES:
        assert entry.exception.__module__ == entry.family.module, entry.code
    load_families()
    assert len(REGISTRY) == len(ENTRIES)


def test_codes_are_unique_and_names_unique_within_each_family():
    codes = [e.code for e in ENTRIES]
    assert len(codes) == len(set(codes))
    for prefix in FAMILIES:
        names = [e.name for e in REGISTRY.family(prefix).values()]
        assert names and len(names) == len(set(names)), prefix


@pytest.mark.parametrize("cls", [c for c in CLASSES if c is not QMKError], ids=lambda c: c.__name__)
def test_a_name_picks_one_code_among_those_a_class_carries(cls: type[QMKError]):
    below = [e for e in ENTRIES if issubclass(e.exception, cls)]
    assert below, f"{cls.__name__} carries no registered code, nor do its subclasses"
    for entry in below:
        assert REGISTRY.named(cls, entry.name) is entry


# Verifier findings are built by the verifier, from its findings (tests/qvm/test_verify.py);
# a warning of another family is never raised (test_a_warning_is_a_notice_never_an_error).
@pytest.mark.parametrize(
    "entry",
    [e for e in ENTRIES if e.code[:2] != "QV" and e.severity is not Severity.WARNING],
    ids=lambda e: e.code,
)
def test_every_code_is_built_by_name_with_its_class_and_exit_status(entry: ErrorCode):
    error = entry.exception.of(entry.name, "what went wrong", where="here")
    assert type(error) is entry.exception
    assert (error.code, error.name, error.message) == (entry.code, entry.name, "what went wrong")
    assert error.details == {"where": "here"} and error.exit_status == entry.exit_status
    assert str(error) == f"{entry.code} {entry.name}: what went wrong"


def _carries_one_code(cls: type[QMKError]) -> bool:
    """Built from a message alone (``cls(message, **details)``): the class fixes the code."""
    return next(iter(inspect.signature(cls).parameters)) == "message"


@pytest.mark.parametrize(
    "cls", [c for c in CLASSES if _carries_one_code(c)], ids=lambda c: c.__name__
)
def test_classes_that_carry_one_code_carry_a_registered_one(cls: type[QMKError]):
    error = cls("because")  # type: ignore[call-arg]
    entry = REGISTRY[error.code]
    assert entry.exception is cls and entry.name == error.name


@pytest.mark.parametrize(
    "entry",
    [e for e in ENTRIES if e.code[:2] != "QV" and e.severity is Severity.WARNING],
    ids=lambda e: e.code,
)
def test_a_warning_is_a_notice_never_an_error(entry: ErrorCode):
    notice = warning(entry.exception, entry.name, "this changed nothing")
    assert notice == {"code": entry.code, "name": entry.name, "message": "this changed nothing"}
    assert warning_line("prog.qasm", notice) == (
        f"prog.qasm: warning: {entry.code} {entry.name}: this changed nothing\n"
    )
    with pytest.raises(ValueError, match="not a warning"):
        error = next(e for e in ENTRIES if e.exception is entry.exception and not e.severity)
        warning(entry.exception, error.name, "an error is no warning")


def test_exit_statuses_keep_their_published_values():
    expected = {
        "QF": 2,
        "QA": 2,
        "QC": 2,
        "QL": 2,
        "QE": 2,
        "QD": 2,
        "QP": 2,
        "QM": 2,
        "QW": 2,
        "QS": 1,
        "QT": 1,
        "QI": 1,
    }
    for entry in ENTRIES:
        family = entry.code[:2]
        if entry.severity is Severity.WARNING:
            assert entry.exit_status == 0, entry.code
        elif family == "QV":
            assert entry.exit_status == (0 if entry.severity is Severity.WARNING else 1)
        elif family == "QK":
            # the kernel's own refusals to start (config, data dir) exit 2, as an
            # unreadable machine workload does (QK502, every unreadable input); job ends 1
            unreadable = entry.code < "QK200" or entry.code == "QK502"
            assert entry.exit_status == (2 if unreadable else 1), entry.code
        elif family == "QR":
            assert entry.exit_status == (3 if entry.code == "QR32603" else 2), entry.code
        else:
            assert entry.exit_status == expected[family], entry.code


def test_the_wire_tables_map_each_rpc_code_to_the_class_registered_with_it():
    from qmk.abi.errors import RPC_ERRORS, rpc_error
    from qmk.errors import SYSCALL_ERRORS, syscall_error

    assert sorted(SYSCALL_ERRORS) == list(range(1001, 1013))
    assert sorted(RPC_ERRORS) == [-32700, -32603, -32602, -32601, -32600]
    for table, rebuild in ((SYSCALL_ERRORS, syscall_error), (RPC_ERRORS, rpc_error)):
        for rpc_code, cls in table.items():
            entry = next(e for e in ENTRIES if e.exception is cls)
            assert entry.rpc_code == rpc_code
            assert type(rebuild(rpc_code, f"{entry.code} {entry.name}: m", {})) is cls


def test_an_unknown_name_is_a_lookup_error_that_lists_the_known_ones():
    from qmk.engines.base import EngineError

    with pytest.raises(LookupError, match=r"no code named 'engine-lost'.*engine-unknown"):
        EngineError.of("engine-lost", "x")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"code": "QX001"}, "not a code of a family"),
        ({"code": "QF1"}, "not a code of a family"),
        ({"name": "Not_A_Slug"}, "not a lower-case slug"),
        ({"summary": "two\nlines"}, "summary must be one non-empty line"),
        ({"fix": ""}, "fix must be one non-empty line"),
        ({"exception": ValueError}, "must be a QMKError subclass"),
    ],
)
def test_a_malformed_entry_is_refused(fields: dict[str, object], problem: str):
    good = {"code": "QF901", "name": "x", "summary": "s", "fix": "f", "exception": QMKError}
    with pytest.raises(ValueError, match=problem):
        ErrorCode(**{**good, **fields})  # type: ignore[arg-type]


def test_a_registry_refuses_a_repeated_code_or_a_repeated_name_in_a_family():
    registry = Registry()
    entry = ErrorCode(code="QF901", name="x", summary="s", fix="f", exception=QMKError)
    registry.add(entry)
    with pytest.raises(ValueError, match="QF901 is registered twice"):
        registry.add(entry)
    with pytest.raises(ValueError, match="share the name 'x'"):
        registry.add(ErrorCode(code="QF902", name="x", summary="s", fix="f", exception=QMKError))
    registry.add(ErrorCode(code="QA901", name="x", summary="s", fix="f", exception=QMKError))


# --------------------------------------------------------------------------- the source


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_code_named_in_the_source_or_the_docs_is_registered():
    texts = [*_sources(), ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    unknown = {
        f"{path.relative_to(ROOT)}: {code}"
        for path in texts
        for code in CODE.findall(path.read_text(encoding="utf-8"))
        if code not in REGISTRY
    }
    assert not unknown


@functools.cache
def _walked() -> dict[Path, tuple[list[tuple[int, str]], list[tuple[int, str, object]]]]:
    """Each source file's string constants that are codes, and its ``Class.of(NAME, ...)``
    and ``Class.at(NAME, ...)`` calls (line, class, first argument): one parse of the
    source for the two tests below."""
    found = {}
    for path in _sources():
        literals, calls = [], []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and CODE.fullmatch(text):
                literals.append((node.lineno, text))
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("of", "at")
                and isinstance(node.func.value, ast.Name)
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                calls.append((node.lineno, node.func.value.id, node.args[0].value))
        found[path] = (literals, calls)
    return found


def test_no_code_is_written_as_a_literal_outside_its_familys_module():
    declaring = {
        (SRC.parent / (f.module.replace(".", "/") + ".py")).resolve() for f in FAMILIES.values()
    }
    literals = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path, (found, _) in _walked().items()
        if path.resolve() not in declaring
        for line, text in found
    ]
    assert not literals, "raise by name (Class.of('slug', ...)), not by code: " + str(literals)


def test_every_name_raised_with_of_or_at_in_the_source_is_registered_for_its_class():
    classes = {cls.__name__: cls for cls in CLASSES}
    calls = 0
    for path, (_, found) in _walked().items():
        for line, owner, name in found:
            if owner in classes:
                assert REGISTRY.named(classes[owner], name), f"{path}:{line}"
                calls += 1
    assert calls > 100  # the walk sees the raising sites


def test_the_tree_drawn_in_qmk_errors_is_the_tree_of_classes():
    doc = errors.__doc__ or ""
    start = doc.index("    QMKError ")
    drawn = doc[start : doc.index("\n\n", start)]
    assert drawn == "\n".join(f"    {line}" for line in render_tree().splitlines()), (
        "redraw it: python -c 'from qmk.docgen.errors import render_tree; print(render_tree())'"
    )
    named = set(re.findall(r"\+-- (\w+)", drawn)) | {"QMKError"}
    assert named == {cls.__name__ for cls in CLASSES}
