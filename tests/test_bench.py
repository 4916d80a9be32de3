"""The benchmarks in ``bench/`` are not run by the suite (CI never gates on a timing), but
each must still start: a name qmk no longer has stops a bench at its import."""

from __future__ import annotations

import subprocess
import sys

from support.paths import ROOT

BENCH = ROOT / "bench"

#: Imports every bench script as ``python bench/NAME.py`` would (its folder first on the
#: path, for ``_common``), in one process: their shared imports are paid once.
IMPORT_ALL = """
import importlib, pathlib, sys
sys.path.insert(0, sys.argv[1])
names = sorted(p.stem for p in pathlib.Path(sys.argv[1]).glob("*.py") if p.stem != "_common")
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_bench_script_imports_against_todays_qmk():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, str(BENCH)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == len(list(BENCH.glob("*.py"))) - 1
