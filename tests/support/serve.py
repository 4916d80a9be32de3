"""``python -m support.serve [HOOKS] -- [qmk serve options]``: a real ``qmk serve`` whose
workers run the tests' hooks.

The server is the very code of ``qmk serve`` (:func:`qmk.serve.serve`, its options
parsed by the kernel entry's own parser): a real process, a real socket, real
confined workers. Only its pool differs, through the command's public seam
``pool_factory``: the kernel's own pool made a :class:`support.pools.GatedPool` with the
hooks given here (``--gate FIFO``, ``--pause-gate FIFO``, ``--stall FIFO``, ``--probe
module:function``: :class:`support.pools.Hooks`); ``--clock FILE`` runs its kernel on a
:class:`support.clocks.ShiftedClock` whose time the test moves, ``--machine-clock
FIFO@RATE`` its shared machine on a :class:`support.clocks.HeldMachineClock` the test
releases. Run it with ``tests/`` on
``PYTHONPATH``; :meth:`support.kernel.ServerProcess.start` (``hooks=``) does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qmk import serve as kernel_entry
from qmk.errors import QMKError
from qmk.serve.options import parser
from support.clocks import HeldMachineClock, ShiftedClock
from support.pools import Hooks


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; its exit status (a coded error is one line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    ours = argparse.ArgumentParser(prog="python -m support.serve")
    for name in ("--gate", "--pause-gate", "--stall", "--probe", "--clock", "--machine-clock"):
        ours.add_argument(name)
    given = ours.parse_args(argv[:split])
    hooks = Hooks(
        gate=given.gate,
        pause_gate=given.pause_gate,
        stall=given.stall,
        probe=None if given.probe is None else Hooks.load_probe(given.probe),
    )
    args = parser().parse_args(argv[split + 1 :])
    try:
        clock = None if given.clock is None else ShiftedClock(given.clock)
        held = given.machine_clock
        return kernel_entry.serve(
            args,
            sys.stdout,
            sys.stderr,
            pool_factory=hooks.factory(),
            clock=clock,
            machine_clock=None if held is None else HeldMachineClock.parse(held),
        )
    except QMKError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
