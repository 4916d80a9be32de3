"""What a plain ``qmk run`` loads: the parser of ``qmk run`` imports the module options'
module (:mod:`qmk.commands.teleport`) and the run reads its file through
:mod:`qmk.frontends`; neither loads the graph model (:mod:`qmk.qvm.graph`), which a
run with no module options does not need from them (issue 76: 24-60 ms a run)."""

from __future__ import annotations

import subprocess
import sys

from support.paths import ROOT


def test_the_module_options_and_the_frontends_entry_load_no_graph_model():
    probe = (
        "import sys\n"
        "import qmk.commands.teleport, qmk.frontends\n"
        "print('qmk.qvm.graph' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert done.stdout.strip() == "False", done.stderr
