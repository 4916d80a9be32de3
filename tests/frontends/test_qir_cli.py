"""`qmk run` on QIR files: .ll and .bc by extension, malformed files exit 2 in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import qmk
from support.paths import EXAMPLES

pyqir = pytest.importorskip("pyqir")

EXAMPLE = EXAMPLES / "bell.ll"
LOOP = """
define void @main() #0 {
entry:
  br label %loop
loop:
  call void @__quantum__qis__mz__body(ptr null, ptr null)
  %r = call i1 @__quantum__rt__read_result(ptr null)
  br i1 %r, label %loop, label %done
done:
  ret void
}
declare void @__quantum__qis__mz__body(ptr, ptr)
declare i1 @__quantum__rt__read_result(ptr)
attributes #0 = { "entry_point" "required_num_qubits"="1" "required_num_results"="1" }
"""


def test_example_bell_ll_runs_by_extension_with_qsharp_style_keys() -> None:
    status, out, _ = qmk(
        "run", str(EXAMPLE), "--shots", "400", "--seed", "7", "--no-noise", "--json"
    )
    assert status == 0
    counts = json.loads(out)["counts"]
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 400


def test_bitcode_file_runs_by_extension(tmp_path: Path) -> None:
    bc = tmp_path / "bell.bc"
    bc.write_bytes(pyqir.Module.from_ir(pyqir.Context(), EXAMPLE.read_text()).bitcode)
    status, out, _ = qmk("run", str(bc), "--shots", "300", "--seed", "7", "--no-noise", "--json")
    assert status == 0
    assert set(json.loads(out)["counts"]) == {"00", "11"}


@pytest.mark.parametrize(
    ("file", "content", "code", "where"),
    [
        ("syntax.ll", "define void @main() {\nentry:\n  cal void @f()\n}\n", "QL101", ":3: "),
        ("loop.ll", LOOP, "QL104", ":8: "),
        ("truncated.bc", None, "QL105", "bitcode"),
        (
            "unknown.ll",
            EXAMPLE.read_text().replace("__qis__h__body", "__qis__foo__body"),
            "QL104",
            "@__quantum__qis__foo__body",
        ),
    ],
)
def test_malformed_qir_exits_2_with_one_line_naming_the_spot(
    tmp_path: Path, file: str, content: str | None, code: str, where: str
) -> None:
    path = tmp_path / file
    if content is None:
        bits = pyqir.Module.from_ir(pyqir.Context(), EXAMPLE.read_text()).bitcode
        path.write_bytes(bits[: len(bits) // 3])
    else:
        path.write_text(content)
    status, _, err = qmk("run", str(path))
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert code in lines[0] and where in lines[0]
