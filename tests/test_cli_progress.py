"""Progress bars on a terminal only, and ``qmk run --plot``."""

from __future__ import annotations

import io
import re

import pytest

from qmk.cli import main
from qmk.commands.progress import progress_bar, shown
from qmk.experiments.memory import threshold_scan
from support.cli import qmk
from support.paths import EXAMPLES


def _untimed(text: str) -> list[str]:
    """The lines of a run's report but its wall times."""
    return [re.sub(r"\d+\.\d+ s\b", "T s", line) for line in text.splitlines()]


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_and_never_elsewhere():
    assert shown(Terminal(), quiet=False)
    assert not shown(Terminal(), quiet=True)
    assert not shown(io.StringIO(), quiet=False)
    screen = Terminal()
    with progress_bar(3, "jobs", screen) as update:
        for done in range(1, 4):
            update(done, f"job {done}")
    assert "jobs" in screen.getvalue()
    quiet = io.StringIO()
    with progress_bar(3, "jobs", quiet) as update:
        update(1, "job 1")
    assert quiet.getvalue() == ""


def test_qmk_run_draws_a_spinner_on_a_terminal_and_prints_the_same_result():
    args = ["run", str(EXAMPLES / "bell.qasm"), "--shots", "200", "--seed", "3"]
    plain_out, plain_err = io.StringIO(), io.StringIO()
    assert main(args, stdout=plain_out, stderr=plain_err) == 0
    tty_out, tty_err = io.StringIO(), Terminal()
    assert main(args, stdout=tty_out, stderr=tty_err) == 0
    assert _untimed(tty_out.getvalue()) == _untimed(plain_out.getvalue())
    assert plain_err.getvalue() == "" and "running" in tty_err.getvalue()
    quiet = Terminal()
    assert main([*args, "--quiet"], stdout=io.StringIO(), stderr=quiet) == 0
    assert quiet.getvalue() == ""


def test_qmk_run_plot_writes_the_histogram(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bell.png"
    status, _, err = qmk("run", str(EXAMPLES / "bell.qasm"), "--shots", "100", "--plot", str(png))
    assert status == 0, err
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_device_run_plots_its_counts_as_every_target_does(tmp_path):
    png = tmp_path / "x.png"
    status, _, err = qmk(
        "run", str(EXAMPLES / "bell.qasm"), "--device", "ideal_small_array", "--plot", str(png)
    )
    assert status == 0, err
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_threshold_scan_reports_each_point_it_ends():
    seen: list[tuple[int, int]] = []
    threshold_scan(
        "surface_code", distances=[3], ps=[0.001, 0.002], shots=50, seed=1,
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert seen == [(1, 2), (2, 2)]
