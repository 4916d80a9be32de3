"""The kernel process's entry (``python -m qmk.serve``) and ``qmk serve``, which becomes it.

``qmk serve`` replaces its process with the entry (one process id), so the kernel holds
no command line; what a served kernel loads is checked by ``tests/kernel/test_trusted_core.py``.
Here: the entry takes ``qmk serve``'s options and answers a usage mistake as ``qmk`` does.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

from qmk import serve as kernel_entry
from qmk.cli import main as qmk_main
from qmk.serve.options import parser
from support.kernel import config_toml


def test_the_entry_takes_the_options_of_qmk_serve() -> None:
    entry = {o for a in parser()._actions for o in a.option_strings}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # argparse prints its help there
        assert qmk_main(["serve", "--help"]) == 0
    help_text = out.getvalue()
    assert entry - {"-h", "--help"}, entry
    for option in entry:
        assert option in help_text, option


def test_a_usage_mistake_at_the_entry_is_one_coded_line_with_exit_status_2() -> None:
    err = io.StringIO()
    status = kernel_entry.main(
        ["--data-dir", "d", "--config", "k.toml", "--sockt", "s"], stderr=err
    )
    assert status == 2
    assert err.getvalue().startswith("QW011 bad-option: qmk serve: unrecognized arguments: --sockt")
    assert err.getvalue().count("\n") == 1


def test_qmk_serve_becomes_the_entry_in_its_own_process() -> None:
    # a config that does not exist: the entry's error, said by the process qmk serve became
    done = subprocess.run(
        [sys.executable, "-m", "qmk", "serve", "--socket", "s", "--data-dir", "d"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "QW011 bad-option: qmk serve: the following arguments are required: --config "
        "(see qmk serve --help)\n"
    )


def test_a_machine_physics_the_qec_layer_refuses_stops_qmk_serve_with_the_key_named(
    tmp_path: Path,
) -> None:
    # the kernel reads its config without the QEC layer: its planner checks the physics
    # as it derives the machine, and the entry says the same one coded line, exit 2
    config = tmp_path / "k.toml"
    config.write_text(config_toml(machine={"noise_model": "hot(p=1)"}))
    where = ["--socket", str(tmp_path / "k.sock"), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(
        [sys.executable, "-m", "qmk.serve", "--config", str(config), *where],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    # (after the workers' warnings of this host, if any)
    said = done.stderr.splitlines()[-1]
    assert said.startswith("QK101 bad-config: machine.noise_model: "), done.stderr
    assert "unknown model 'hot'" in said
