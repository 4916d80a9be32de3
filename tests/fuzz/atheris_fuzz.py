"""Coverage-guided fuzzing of one target of :mod:`support.fuzz` with atheris (``make fuzz``).

Usage::

    python tests/fuzz/atheris_fuzz.py TARGET [libFuzzer options, e.g. -runs=20000]

TARGET is one of ``support.fuzz.TARGETS`` (jsonrpc, qvm-json, qvm-asm, qasm, qir,
cli-validate). The corpus starts from the target's seeds (the example programs) in
``.fuzz/corpus/TARGET``; a crash is written to ``.fuzz/`` and ends the run with a
traceback and a nonzero status. Turn it into a regression test (an ``@example`` in
tests/fuzz) and fix it. Not collected by pytest: atheris is optional (the ``fuzz``
extra) and has wheels for Linux only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent

with atheris.instrument_imports(include=["qmk"]):
    import qmk.abi.jsonrpc
    import qmk.cli
    import qmk.frontends.qasm
    import qmk.frontends.qir
    import qmk.qvm.asm
    import qmk.qvm.graph
    import qmk.qvm.verify  # noqa: F401  (instrumented for the targets below)

sys.path.insert(0, str(TESTS))  # support.fuzz, as pytest's pythonpath has it
from support.fuzz import SEEDS, TARGETS  # noqa: E402


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} TARGET [libFuzzer options]; targets: {', '.join(TARGETS)}")
    name = argv[1]
    corpus = ROOT / ".fuzz" / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(SEEDS[name]):
        (corpus / f"seed-{index}").write_bytes(seed)
    options = [f"-artifact_prefix={ROOT / '.fuzz'}/{name}-", *argv[2:], str(corpus)]
    atheris.Setup([argv[0], *options], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
