"""A run's result draws its counts (RunResult.plot, matplotlib) and shows itself in a
notebook (RunResult._repr_html_): the bars are the counts, the table every outcome it
names, escaped."""

from __future__ import annotations

import html
import re
import sys
from dataclasses import replace

import pytest

from qmk.execution.result import PackedRows, RunResult
from qmk.execution.runs import run
from qmk.qvm.generate import uniform_graph


@pytest.fixture(scope="module")
def result() -> RunResult:
    # 3 qubits in uniform superposition: 8 outcomes of unequal counts, seeded
    return run(uniform_graph(3), shots=2000, seed=11, noise=False)


@pytest.fixture
def axes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    yield ax
    plt.close(figure)


def _bars(ax) -> dict[str, float]:
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    return dict(zip(labels, (bar.get_height() for bar in ax.patches), strict=True))


def test_the_plot_draws_one_bar_per_outcome_as_high_as_its_count(result: RunResult, axes):
    assert result.plot(axes) is axes
    assert _bars(axes) == dict(result.counts)
    assert [tick.get_text() for tick in axes.get_xticklabels()] == sorted(result.counts)


def test_the_plot_of_the_top_outcomes_draws_the_most_frequent_only(result: RunResult, axes):
    result.plot(axes, top=3)
    most = dict(result.ranked(3))
    assert _bars(axes) == most and len(most) == 3
    assert min(most.values()) >= max(v for k, v in result.counts.items() if k not in most)
    assert "3 most frequent of 8 outcomes" in axes.get_title()


def test_the_plot_without_an_axes_draws_a_new_figure(result: RunResult):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = result.plot()
    try:
        assert sum(bar.get_height() for bar in ax.patches) == result.shots
    finally:
        plt.close(ax.figure)


def test_the_notebook_table_shows_every_outcome_with_its_count_and_the_run(result: RunResult):
    page = result._repr_html_()
    for key, count in result.counts.items():
        assert re.search(rf"<code>{key}</code></td><td[^>]*>{count}</td>", page), key
    assert f"{result.shots} shots, seed {result.seed}" in page
    assert f"<code>{result.engine}</code>" in page
    assert "logical cycles" in page and "injected logical errors" in page


def test_the_notebook_table_shows_the_most_frequent_and_counts_the_rest(result: RunResult):
    many = replace(result, counts={f"{i:06b}": 100 - i for i in range(40)}, shots=3220)
    page = many._repr_html_()
    shown = re.findall(r"<code>([01]{6})</code>", page)
    assert shown == [f"{i:06b}" for i in range(RunResult.HTML_OUTCOMES)]
    assert f"... {40 - RunResult.HTML_OUTCOMES} more outcomes" in page


def test_the_notebook_table_escapes_what_it_shows(result: RunResult):
    odd = replace(result, counts={"<b>&x": 3, "": 1}, events=("m<0>",), shots=4)
    page = odd._repr_html_()
    assert "<b>&x" not in page and "m<0>" not in page
    assert html.escape("<b>&x") in page and html.escape("m<0>") in page
    assert "<code>(empty)</code>" in page


def test_the_plot_without_matplotlib_is_one_coded_line_naming_the_extra(
    result: RunResult, monkeypatch: pytest.MonkeyPatch
):
    from qmk.qec.errors import QECError

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # as if not installed
    with pytest.raises(QECError) as caught:
        result.plot()
    assert caught.value.code == "QC103"
    assert "quantum-microkernel[plot]" in str(caught.value) and "\n" not in str(caught.value)


def _counted(rows: list[list[int]]) -> dict[str, int]:
    from collections import Counter

    return dict(sorted(Counter("".join(map(str, row)) for row in rows).items()))


@pytest.mark.parametrize("width", [0, 1, 7, 64, 65, 1000, 4200])
def test_counts_are_every_distinct_row_with_how_often_it_came(width: int) -> None:
    import numpy as np

    from qmk.execution.result import keyed_counts

    rng = np.random.default_rng(width)
    # GHZ-like rows (all 0 or all 1) with a few bits flipped: in the top bit of every
    # 64-bit word, in pairs of words, and (past 4,096 bits) words 64 apart swapped, the
    # rows a weak hash of the packed words would take for one another
    rows = np.repeat(rng.integers(0, 2, 3000, dtype=np.uint8)[:, None], width, axis=1)
    for r in range(1, 3000, 3):
        for word in rng.integers(0, max(width // 64, 1), 2):
            bit = min(64 * int(word) + 63 - 7, width - 1) if width else None
            if bit is not None:
                rows[r, bit] ^= 1
    if width > 64 * 65:
        rows[::5, :64], rows[::5, 64 * 64 : 64 * 65] = (
            rows[::5, 64 * 64 : 64 * 65].copy(),
            rows[::5, :64].copy(),
        )
    assert keyed_counts(rows, None) == _counted(rows.tolist())
    packed = PackedRows(np.packbits(rows, axis=1, bitorder="little"), width)
    assert keyed_counts(packed, None) == _counted(rows.tolist())
    assert np.array_equal(packed.unpack(), rows)


@pytest.mark.parametrize("width", range(1, 10))
def test_packed_rows_of_a_byte_or_less_are_counted_as_their_unpacked_rows(width: int) -> None:
    """Rows of at most 8 bits are counted by their byte (a tally, not a hash): the same
    counts as the rows unpacked, with and without a layout that merges outcomes."""
    import numpy as np

    from qmk.execution.result import keyed_counts
    from qmk.qvm.output import OutputLayout

    rng = np.random.default_rng(100 + width)
    for shots in (1, 5, 100, 3000):
        rows = (rng.random((shots, width)) < 0.3).astype(np.uint8)
        packed = PackedRows(np.packbits(rows, axis=1, bitorder="little"), width)
        assert keyed_counts(packed, None) == keyed_counts(rows, None) == _counted(rows.tolist())
        events = [f"e{i}" for i in range(width)]
        # the events but the last, reversed, and a constant 0: rows differing only in
        # the last event add up; then a group of every event as a signed integer
        groups = [[*events[: width - 1][::-1], None], {"int": events, "signed": True}]
        layout = OutputLayout.from_json({"groups": groups}, events=events)
        assert keyed_counts(packed, layout) == keyed_counts(rows, layout)
        merged = OutputLayout.from_json({"groups": groups[:1]}, events=events)
        assert keyed_counts(packed, merged) == keyed_counts(rows, merged)


def test_packed_rows_of_the_wrong_byte_width_are_refused() -> None:
    import numpy as np

    with pytest.raises(ValueError, match="9 bits have 2 bytes"):
        PackedRows(np.zeros((3, 1), dtype=np.uint8), 9)


def test_a_stabilizer_run_keeps_its_bits_packed_and_unpacks_them_once_on_first_use() -> None:
    """GHZ on 50 qubits (a last byte of 2 bits) with the default logical noise: the
    batch sampler's rows stay packed; the counts match the unpacked bits, and bits and
    memory agree with them."""
    import numpy as np

    from support.kernel import ghz_graph

    result = run(ghz_graph(50), shots=20_000, seed=7, engine="stabilizer")
    assert isinstance(result.shot_bits, PackedRows)
    bits = result.bits
    assert bits is result.bits  # unpacked once
    assert bits.shape == (20_000, 50) and bits.dtype == np.uint8
    assert result.counts == _counted(bits.tolist())
    assert len(result.counts) > 2  # the logical noise flipped some bits
    assert result.memory == ["".join(map(str, row)) for row in bits.tolist()]


def test_a_result_with_packed_bits_pickles_and_its_copy_unpacks_alike() -> None:
    import pickle

    import numpy as np

    from support.kernel import ghz_graph

    result = run(ghz_graph(5), shots=300, seed=3, engine="stabilizer")
    copy = pickle.loads(pickle.dumps(result))
    assert copy.counts == result.counts
    assert np.array_equal(copy.bits, result.bits)


def test_counts_laid_out_add_up_rows_that_the_layout_makes_alike() -> None:
    import numpy as np

    from qmk.execution.result import keyed_counts
    from qmk.qvm.output import OutputLayout

    rows = np.array([[0, 1, 0], [1, 1, 0], [0, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=np.uint8)
    # two groups: events 2 and 0, then a constant 0; event 1 is not shown, so rows 0,
    # 3 and 4 (which differ in it only) are one outcome
    layout = OutputLayout(columns=(2, 0, None), widths=(2, 1))
    assert keyed_counts(rows, layout) == {"00 0": 3, "01 0": 1, "10 0": 1}
