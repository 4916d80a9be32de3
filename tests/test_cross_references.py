"""Every cross-reference a docstring or comment of ``src/qmk`` makes to a name of QMK
(``:func:`qmk.kernel.admit.faults.adjust```, ``:mod:`~qmk.kernel.storage.results```, or a
sibling module's ``:mod:`.dask_jobs```) names something that is there: a module moved or a
function renamed leaves none pointing at where it was."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from support.paths import SRC

#: A role's target that is a name of QMK: ``qmk.``-qualified, or relative (``.sibling``).
_REFERENCE = re.compile(
    r":(?:func|class|meth|data|mod|attr|exc|obj|const):`~?(qmk(?:\.\w+)+|\.\w+(?:\.\w+)*)`"
)


def _module_of(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files() -> list[Path]:
    return [
        path
        for path in sorted(SRC.rglob("*.py"))
        if _REFERENCE.search(path.read_text(encoding="utf-8"))
    ]


def _member(owner: Any, name: str) -> Any:
    """``owner.name``; on a class also a field it declares without a default (None)."""
    if hasattr(owner, name):
        return getattr(owner, name)
    if isinstance(owner, type) and any(
        name in vars(k).get("__annotations__", {}) for k in owner.__mro__
    ):
        return None
    raise AttributeError(name)


def _resolves(target: str) -> bool:
    """Whether ``target`` (``qmk.a.b.Name.attr``) is a module or a member of its longest
    module prefix."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a prefix that is not a package
            found = False
        if not found:
            continue
        owner: Any = importlib.import_module(name)
        try:
            for attribute in parts[end:]:
                owner = _member(owner, attribute)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("path", _files(), ids=lambda path: path.relative_to(SRC).as_posix())
def test_every_cross_reference_to_qmk_names_what_is_there(path: Path) -> None:
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = {
        package + target if target.startswith(".") else target
        for target in _REFERENCE.findall(path.read_text(encoding="utf-8"))
    }
    try:
        missing = sorted(target for target in targets if not _resolves(target))
    except ModuleNotFoundError as exc:  # an optional dependency of a module referred to
        if (exc.name or "qmk").split(".")[0] == "qmk":
            raise
        pytest.skip(f"{module} refers to a module that needs {exc.name}")
    assert missing == [], f"{module} refers to names that are not there"


def test_a_reference_to_a_moved_module_is_found() -> None:
    assert _resolves("qmk.kernel.storage.results.Results")
    assert _resolves("qmk.kernel.records.stored.RESULT_MARK_EVERY")
    assert not _resolves("qmk.kernel.results")  # the flat path the kernel's split removed
    assert not _resolves("qmk.kernel.records.jobs.RESULT_MARK_EVERY")
    assert not _resolves("qmk.kernel.running.cache")  # :mod:`.cache` from running/
