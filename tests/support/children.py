"""The processes a test starts end with the test run that started them.

A real ``qmk serve`` (held at a worker gate, it would wait forever), a Dask scheduler
or worker, a model server: a test that fails before its teardown still stops them (its
fixtures' finalizers do), but a pytest that is killed runs no finalizer (``timeout``
sends SIGTERM, a CI runner SIGKILL). :func:`die_with_us` is the ``preexec_fn`` of every
such start: the child asks Linux to SIGKILL it when the thread that started it ends
(``prctl(PR_SET_PDEATHSIG)``, which ``exec`` keeps), and ends at once when that process
ended before the request took hold. Its own children follow as they do when it crashes
(a server's workers see their pool's socket close; a Dask worker sees its nanny's pipe
close). Start such processes from the main thread: the signal follows the thread that
forked, and a worker thread ends long before the test run does.

>>> import subprocess, sys
>>> subprocess.run([sys.executable, "-c", "pass"], preexec_fn=die_with_us()).returncode
0
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
#: ``prctl`` of the C library, bound in the parent (the child only calls it: no loader
#: lock taken between ``fork`` and ``exec``); None off Linux, where no such request exists.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_us(*then: Callable[[], object]) -> Callable[[], None]:
    """A ``preexec_fn`` (``subprocess.Popen``) that has the child SIGKILLed when this
    process's main thread ends, then runs ``then`` (e.g. an rlimit) in the child.

    Raises:
        RuntimeError: called off the main thread (the child would die with that thread).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("start a test's process from the main thread (PR_SET_PDEATHSIG)")
    parent = os.getpid()

    def preexec() -> None:
        if _PRCTL is not None:
            if _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
            if os.getppid() != parent:  # the test run ended before the request held
                os._exit(1)
        for step in then:
            step()

    return preexec


def reap(proc: subprocess.Popen[Any], timeout_s: float) -> int:
    """The exit status of ``proc``, told to stop already; if it has not exited within
    ``timeout_s``, SIGKILL it (nothing outlives a failed stop) and raise.

    Raises:
        AssertionError: it did not exit within ``timeout_s``.
    """
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args!r} did not exit within {timeout_s} s: killed") from None


def terminate(proc: subprocess.Popen[Any], timeout_s: float) -> int:
    """SIGTERM ``proc`` (unless it has ended) and :func:`reap` it.

    Raises:
        AssertionError: it did not exit within ``timeout_s`` of the SIGTERM.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return reap(proc, timeout_s)
