"""Every msgspec struct of ``src/qmk`` has a golden JSON file, the JSON of a realistic example
of it (:mod:`support.golden`): each file reads back as its struct unchanged, and equals its
example's JSON, so a change of a struct's JSON shape (a field renamed, retyped, added or
dropped) fails here until the file is written again on purpose (``QMK_GOLDEN=update``)
and the diff is read, before it fails a reader of yesterday's data (a stored row, a worker
of the release before, a client's reply).

Every module of ``qmk`` is imported to find them; one that needs an extra not installed is
left out, and ``test_every_module_of_qmk_is_walked`` says which (a skip naming them)."""

from __future__ import annotations

import msgspec
import pytest

from support import golden

STRUCTS, SKIPPED, BROKEN = golden.structs()
EXAMPLES = golden.examples()


def test_every_module_of_qmk_is_walked() -> None:
    assert not BROKEN, f"modules of qmk that do not import: {BROKEN}"
    if SKIPPED:
        left = ", ".join(f"{module} (needs {lacks})" for module, lacks in sorted(SKIPPED.items()))
        pytest.skip(f"structs of these modules not checked, an extra is missing: {left}")


def test_the_walk_finds_the_structs_of_every_room() -> None:
    rooms = {golden.room_of(cls) for cls in STRUCTS.values()}
    assert {"abi", "devices", "execution", "kernel", "qec", "qvm", "workflows"} <= rooms
    for name in ("qmk.kernel.records.outcome.Done", "qmk.kernel.config.ConfigFile"):
        assert name in STRUCTS, name
    assert "qmk.abi.replies.Reply" not in STRUCTS  # a base with no fields of its own


def test_no_two_structs_of_one_room_share_a_name() -> None:
    seen: dict[str, str] = {}
    for name, cls in STRUCTS.items():
        key = str(golden.path_of(cls))
        assert key not in seen, f"{name} and {seen[key]} would share {key}: rename one"
        seen[key] = name


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_every_struct_has_an_example_and_a_golden_file_of_its_json(name: str) -> None:
    cls = STRUCTS[name]
    example = EXAMPLES.get(cls)
    room = golden.room_of(cls) or "top"
    assert example is not None, f"{name} has no example: add one to tests/support/golden/{room}.py"
    path = golden.path_of(cls)
    text = golden.text_of(example)
    if golden.updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    assert path.exists(), (
        f"{name} has no golden file: write {path} with {golden.UPDATE_VARIABLE}=update"
    )
    stored = path.read_text(encoding="utf-8")
    assert stored == text, (
        f"{name}'s JSON is not its golden file's {path}: if the change is meant, write it "
        f"again with {golden.UPDATE_VARIABLE}=update and read the diff"
    )
    read = golden.decode(stored, cls)
    assert golden.text_of(read) == stored  # decoded and encoded again: the same JSON
    assert read == example


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_every_example_sets_fields_away_from_their_defaults(name: str) -> None:
    cls = STRUCTS[name]
    example = EXAMPLES.get(cls)
    if example is None:
        pytest.fail(f"{name} has no example")
    defaults = {
        field.name: field.default
        if field.default is not msgspec.NODEFAULT
        else field.default_factory()
        for field in msgspec.structs.fields(cls)
        if field.default is not msgspec.NODEFAULT or field.default_factory is not msgspec.NODEFAULT
    }
    if len(defaults) > 1:  # (one alone may be what every real value has: Again's notes)
        changed = [key for key, value in defaults.items() if getattr(example, key) != value]
        assert changed, f"{name}'s example leaves every field at its default"


def test_no_example_or_golden_file_is_left_without_its_struct() -> None:
    if SKIPPED:
        pytest.skip("some modules were not walked (an extra is missing)")
    classes = set(STRUCTS.values())
    assert set(EXAMPLES) <= classes, set(EXAMPLES) - classes
    files = {path for cls in classes for path in [golden.path_of(cls)]}
    found = {path for path in golden.TESTS.glob("**/golden/*.json")}
    assert found <= files, sorted(str(path) for path in found - files)


def test_a_changed_shape_fails_against_the_golden_file() -> None:
    """What the check catches: a renamed field, a number turned text, a field dropped."""
    from qmk.kernel.records.outcome import Failure

    stored = golden.path_of(Failure).read_text(encoding="utf-8")

    class Renamed(msgspec.Struct, frozen=True, kw_only=True):
        code: str
        title: str
        message: str

    with pytest.raises(msgspec.ValidationError):  # "name" is required no more: "title" is
        golden.decode(stored, Renamed)

    class Dropped(msgspec.Struct, frozen=True, kw_only=True):
        code: str
        message: str

    assert golden.text_of(golden.decode(stored, Dropped)) != stored


def test_a_workers_outcome_crosses_the_line_as_plain_data_and_reads_back_as_its_form() -> None:
    from qmk.kernel.records.outcome import OUTCOMES, Outcome, decode, encode, pack

    for tag, cls in OUTCOMES.items():
        value = msgspec.json.decode(golden.path_of(cls).read_bytes(), type=Outcome)
        plain = encode(value)
        assert plain["kind"] == tag and decode(plain) == value
        packed = pack(value)  # what a worker sends: its MessagePack, read back as its form
        assert isinstance(packed, bytes) and msgspec.msgpack.decode(packed)["kind"] == tag
        assert decode(packed) == value and type(decode(packed)) is cls
        assert all(
            type(v) in (dict, list, str, int, float, bool, bytes, type(None))
            for v in plain.values()
        )
    with pytest.raises(ValueError):
        decode({"ok": True, "result": {}})  # yesterday's dict answer is no outcome
    with pytest.raises(ValueError):
        decode(msgspec.msgpack.encode({"ok": True}))  # nor its MessagePack
    with pytest.raises(ValueError):
        decode(b"\xc1")  # nor bytes that are no MessagePack


def test_an_outcome_past_what_messagepack_holds_crosses_as_its_plain_data() -> None:
    from qmk.kernel.records.outcome import Ran, decode, pack

    for value in (2**70, 1 + 2j):  # an integer past 64 bits, a complex number
        wide = Ran(result={"counts": {"1": 1}, "value": value})
        crossed = pack(wide)
        assert isinstance(crossed, dict) and crossed["kind"] == "ran" and decode(crossed) == wide
