"""Every typed value that crosses a process, a wire or the disk has a golden JSON file it
reads back unchanged: a worker's outcomes (qmk.kernel.records.outcome), the run request and its
parts (qmk.execution.request), a stored job row (qmk.kernel.storage.store); the syscall replies
have theirs in tests/abi/golden (tests/abi/test_replies.py). A renamed or retyped field
fails here before it fails a reader of yesterday's data."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import msgspec
import pytest

GOLDEN = Path(__file__).parent / "support" / "golden"

#: The modules whose every struct has a golden file here.
MODULES = ("qmk.kernel.records.outcome", "qmk.execution.request", "qmk.kernel.storage.store")


def _structs() -> dict[str, type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, msgspec.Struct)
                and value.__module__ == name
                and not attr.startswith("_")
            ):
                found[attr] = value
    return found


STRUCTS = _structs()


def test_the_modules_hold_the_structs_named_here() -> None:
    assert {"Done", "Ran", "Failed", "Yielded", "RunRequest", "Policy", "JobRow"} <= set(STRUCTS)


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_every_struct_reads_its_golden_json_back_unchanged(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    assert path.exists(), f"{name} has no golden file: write {path}"
    text = path.read_bytes()
    value = msgspec.json.decode(text, type=STRUCTS[name])
    assert msgspec.json.decode(msgspec.json.encode(value)) == msgspec.json.decode(text)


def test_no_golden_file_is_left_without_its_struct() -> None:
    assert {path.stem for path in GOLDEN.glob("*.json")} == set(STRUCTS)


def test_a_workers_outcome_crosses_the_line_as_plain_data_and_reads_back_as_its_form() -> None:
    from qmk.kernel.records.outcome import OUTCOMES, Outcome, decode, encode

    for tag, cls in OUTCOMES.items():
        value = msgspec.json.decode((GOLDEN / f"{cls.__name__}.json").read_bytes(), type=Outcome)
        plain = encode(value)
        assert plain["kind"] == tag and decode(plain) == value
        assert all(
            type(v) in (dict, list, str, int, float, bool, bytes, type(None))
            for v in plain.values()
        )
    with pytest.raises(ValueError):
        decode({"ok": True, "result": {}})  # yesterday's dict answer is no outcome
