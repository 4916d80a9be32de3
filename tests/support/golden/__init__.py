"""Golden JSON files: one per msgspec struct of ``src/qmk``, and its example.

Every struct of the package (each ``msgspec.Struct`` subclass a module of ``qmk`` defines,
but the private bases, ``_Name``, and a base with no fields of its own that others
extend) has:

- an **example**: a realistic value of it, most fields away from their defaults, built in
  Python in this package, one module per room (:mod:`support.golden.kernel`, ...), listed
  in that module's ``EXAMPLES``;
- a **golden file**, ``tests/<room>/golden/<Name>.json``, where ``room`` is the struct's
  room (the package under ``qmk`` its module is in: ``qmk.kernel.storage.store.JobRow``
  is ``tests/kernel/golden/JobRow.json``; a module at the top of ``qmk``,
  ``tests/golden``): the example's JSON (:func:`text_of`).

``tests/test_golden.py`` holds each file to its example and to itself read back (decoded
as its struct and encoded again), so a change of a struct's JSON (a field renamed,
retyped, added to its example or dropped) fails until the file is written again on
purpose::

    QMK_GOLDEN=update python -m pytest -p no:cacheprovider tests/test_golden.py

which writes every golden file from its example (and says which it wrote); a normal run
never writes one. Read the diff before committing it: it is the change of the JSON that
readers of yesterday's data will see.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import msgspec

import qmk

#: The variable that turns the update mode on (its value: ``update``).
UPDATE_VARIABLE = "QMK_GOLDEN"
#: The tests' root: each room's golden files are in ``<room>/golden`` under it.
TESTS = Path(__file__).resolve().parents[2]
#: The modules of the example values, one per room.
ROOMS = ("abi", "devices", "engines", "execution", "kernel", "qec", "qvm", "workflows")


def updating() -> bool:
    """Whether this run writes the golden files (``QMK_GOLDEN=update``)."""
    return os.environ.get(UPDATE_VARIABLE) == "update"


def _enc(value: Any) -> Any:
    """What msgspec does not encode itself, as the code that holds it reads it: a
    read-only mapping (a config's tenants) as its dict, a path as its text."""
    if isinstance(value, MappingProxyType):
        return dict(value)
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"no JSON for {type(value).__name__}")


def _dec(kind: Any, value: Any) -> Any:
    if kind is Path:
        return Path(value)
    raise NotImplementedError(f"no {kind} from JSON")


def text_of(value: msgspec.Struct) -> str:
    """``value``'s JSON as its golden file holds it: indented by one, keys in field
    order, non-ASCII kept, a newline at the end."""
    return (
        json.dumps(msgspec.to_builtins(value, enc_hook=_enc), indent=1, ensure_ascii=False) + "\n"
    )


def decode(text: str, cls: type[msgspec.Struct]) -> msgspec.Struct:
    """The value of ``cls`` a golden file's ``text`` holds (strictly: no int for a float)."""
    value: msgspec.Struct = msgspec.json.decode(text.encode(), type=cls, dec_hook=_dec)
    return value


def room_of(cls: type) -> str:
    """The room of a struct: the package under ``qmk`` its module is in ("" at the top)."""
    parts = cls.__module__.split(".")
    return parts[1] if len(parts) > 2 else ""


def path_of(cls: type) -> Path:
    """Where ``cls``'s golden file is."""
    room = room_of(cls)
    return (TESTS / room if room else TESTS) / "golden" / f"{cls.__name__}.json"


def _modules() -> Iterator[tuple[str, ModuleType | BaseException]]:
    """Every module of ``qmk`` (its ``__main__`` modules left out: they run), or what
    importing it raised."""
    names = [info.name for info in pkgutil.walk_packages(qmk.__path__, "qmk.", onerror=None)]
    for name in sorted(names):
        if name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            yield name, importlib.import_module(name)
        except Exception as exc:  # judged by the caller: a missing extra, or a break
            yield name, exc


def missing_extra(exc: BaseException) -> str | None:
    """The package whose absence ``exc`` is (a third party's, an extra not installed),
    else None."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] != "qmk":
        return exc.name
    return None


def structs() -> tuple[dict[str, type[msgspec.Struct]], dict[str, str], dict[str, BaseException]]:
    """Every struct of the package by ``module.Name``; the modules left out for a missing
    extra (module -> the package it lacks); the modules that failed to import otherwise."""
    found: dict[str, type[msgspec.Struct]] = {}
    skipped: dict[str, str] = {}
    broken: dict[str, BaseException] = {}
    for name, module in _modules():
        if isinstance(module, BaseException):
            lacks = missing_extra(module)
            if lacks is None:
                broken[name] = module
            else:
                skipped[name] = lacks
            continue
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, msgspec.Struct)
                and value.__module__ == name
                and not attr.startswith("_")
            ):
                found[f"{name}.{attr}"] = value
    bases = {
        key
        for key, cls in found.items()
        if not _own_fields(cls) and any(o is not cls and issubclass(o, cls) for o in found.values())
    }
    return {k: v for k, v in found.items() if k not in bases}, skipped, broken


def _own_fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    inherited = {
        f
        for base in cls.__mro__[1:]
        if isinstance(base, type)
        and issubclass(base, msgspec.Struct)
        and base is not msgspec.Struct
        for f in base.__struct_fields__
    }
    return tuple(f for f in cls.__struct_fields__ if f not in inherited)


def examples() -> dict[type[msgspec.Struct], msgspec.Struct]:
    """Every example value, by its struct.

    Raises:
        AssertionError: two examples of one struct.
    """
    out: dict[type[msgspec.Struct], msgspec.Struct] = {}
    for room in ROOMS:
        module = importlib.import_module(f"support.golden.{room}")
        for value in module.EXAMPLES:
            assert type(value) not in out, f"two examples of {type(value).__name__}"
            out[type(value)] = value
    return out


__all__ = [
    "ROOMS",
    "UPDATE_VARIABLE",
    "decode",
    "examples",
    "missing_extra",
    "path_of",
    "room_of",
    "structs",
    "text_of",
    "updating",
]
