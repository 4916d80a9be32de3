"""Bloqade as a peer: the same programs run in Bloqade's own simulators, in Bloqade's own
environment, for the tests and benchmarks that compare QMK's device with it.

Bloqade (``bloqade-circuit`` 0.15.4 and ``bloqade-analog``) pins ``numpy<=2.2.6`` and
``pydantic<2.11``, so it cannot share QMK's test environment: ``make test`` and
``make bench`` build a second one, ``.venv-bloqade`` (QMK with its ``bloqade`` extra), and
this module talks to it over a pipe.

Two halves:

- **the peer** (``python -m qmk.devices.neutral_atom.bloqade_peer``, run inside Bloqade's
  environment): reads one JSON request a line on stdin and answers one JSON line. The
  requests:

  - ``{"op": "versions"}``;
  - ``{"op": "analog", "job": JOB}``: an analog wire job, one ``Evolve``. The answer is
    Bloqade's emulator's exact final probabilities through ``run_callback``, keyed as
    QMK keys outcomes (1 = Rydberg, atom 0 leftmost);
  - ``{"op": "analog_run", "job": JOB, "shots": N, "seed": S}``: Bloqade's ``run(N)``,
    numpy's global generator seeded with ``S`` when given. The answer is its counts,
    flipped to QMK's bits, and the seconds it took;
  - ``{"op": "kernel", "file": F, "name": K}``: kernel ``K``, a ``qasm2`` method, of the
    Python file ``F``, whose ``KERNELS`` dict names them. The answer is its OpenQASM 2
    as QMK's :func:`.bloqade.kernel_qasm` emits it, and PyQrack's exact probabilities
    keyed as ``qmk.run`` keys ``measure q -> c`` of it (``c[0]`` rightmost).

  A request it cannot serve is answered ``{"error": "..."}``.
- **the client** (:class:`BloqadePeer`, in QMK's environment): starts the peer, sends
  requests, reads answers; :func:`peer_python` finds the environment and says why not.

Both sides integrate with ``rtol`` 1e-10 and ``atol`` 1e-12 (QMK's analog tolerances), in
the full 2^n space (Bloqade's ``blockade_radius`` 0).
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

#: Where ``make`` builds Bloqade's environment, from the repository root.
VENV = ".venv-bloqade"
#: The environment variable that names another interpreter with Bloqade.
PYTHON_ENV = "QMK_BLOQADE_PYTHON"
#: The integrator tolerances both sides use.
RTOL, ATOL = 1e-10, 1e-12
#: Rb 70S C6 (rad/us um^6): the only one Bloqade's emulator has.
C6 = 2 * 3.141592653589793 * 862690.0

_SRC = Path(__file__).resolve().parents[3]


def peer_python() -> tuple[Path | None, str]:
    """The interpreter of Bloqade's environment, or None and why there is none.

    ``$QMK_BLOQADE_PYTHON``, else ``.venv-bloqade/bin/python`` at the root of the
    checkout this module is in (``make test`` builds it there)."""
    named = os.environ.get(PYTHON_ENV)
    if named:
        path = Path(named)
        return (path, "") if path.exists() else (None, f"${PYTHON_ENV} {named} does not exist")
    path = _SRC.parent / VENV / "bin" / "python"
    if path.exists():
        return path, ""
    return None, (
        f"no Bloqade environment at {path.parent.parent} (make test builds it: "
        "python -m venv .venv-bloqade; .venv-bloqade/bin/pip install -e '.[bloqade]'), "
        f"and no ${PYTHON_ENV}"
    )


class PeerError(RuntimeError):
    """The peer could not start, or refused a request."""


class BloqadePeer:
    """The peer process, started on entry and closed on exit.

    >>> import shutil
    >>> with BloqadePeer(Path(sys.executable)) as peer:  # doctest: +SKIP
    ...     peer.ask({"op": "versions"})["bloqade-analog"]
    '0.16.9'
    """

    def __init__(self, python: Path, *, timeout_s: float = 600.0) -> None:
        self.python = python
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> BloqadePeer:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(_SRC), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        # one thread each side: the comparison is of the simulators, not of the BLAS pools
        env.setdefault("OMP_NUM_THREADS", "1")
        self._proc = subprocess.Popen(
            [str(self.python), "-m", "qmk.devices.neutral_atom.bloqade_peer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(_SRC.parent),
        )
        return self

    def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """One request's answer.

        Raises:
            PeerError: the peer died, or answered ``{"error": ...}``.
        """
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            raise PeerError(f"the Bloqade peer exited: {self._stderr()}") from None
        line = proc.stdout.readline()
        if not line:
            raise PeerError(f"the Bloqade peer exited: {self._stderr()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise PeerError(str(answer["error"]))
        return answer

    def _stderr(self) -> str:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "(no exit)"
        return proc.stderr.read()[-2000:]

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self._proc = None


# --------------------------------------------------------------------------- the peer


def _points(job: Mapping[str, Any]) -> list[tuple[float, float]]:
    positions = job["hardware"]["positions"]
    out = []
    for p in positions:
        if isinstance(p, (int, float)):
            out.append((float(p), 0.0))
        else:
            out.append((float(p[0]), float(p[1]) if len(p) > 1 else 0.0))
    return out


def _wave(points: Sequence[Sequence[float]], end_ns: float) -> tuple[list[float], list[float]]:
    """A QMK waveform (``[[t_ns, v], ...]``) as Bloqade's piecewise-linear durations (us)
    and values, held flat to ``end_ns`` past its last point."""
    pts = [(float(t), float(v)) for t, v in points]
    if pts[-1][0] < end_ns:
        pts.append((end_ns, pts[-1][1]))
    durations = [(b[0] - a[0]) * 1e-3 for a, b in itertools.pairwise(pts)]
    return durations, [v for _, v in pts]


def analog_program(job: Mapping[str, Any]) -> Any:
    """A QMK analog wire job (one ``Evolve``, hardware positions, Rb C6) as a Bloqade
    analog program (``bloqade.analog`` builder).

    Raises:
        PeerError: a job of another shape (more than one Evolve, another C6).
    """
    from bloqade.analog import start

    c6 = job.get("hardware", {}).get("c6")
    if c6 is not None and abs(float(c6) - C6) > 1e-6 * C6:
        raise PeerError(f"Bloqade's emulator has Rb C6 only ({C6}); the job has {c6}")
    evolves = [ins for ins in job["program"] if ins.get("op") == "Evolve"]
    if len(evolves) != 1:
        raise PeerError(f"the peer runs jobs of one Evolve; this one has {len(evolves)}")
    ev = evolves[0]
    end = float(ev["duration"])
    builder = start.add_position(_points(job)).rydberg
    om_d, om_v = _wave(ev["omega"], end)
    de_d, de_v = _wave(ev["delta"], end)
    program = builder.rabi.amplitude.uniform.piecewise_linear(om_d, om_v)
    if float(ev.get("phase", 0.0)):
        program = program.phase.uniform.constant(float(ev["phase"]), end * 1e-3)
    program = program.detuning.uniform.piecewise_linear(de_d, de_v)
    local = ev.get("local_delta")
    if local:
        lo_d, lo_v = _wave(local["delta"], end)
        program = program.location(list(local["atoms"]), list(local["scale"])).piecewise_linear(
            lo_d, lo_v
        )
    return program


def _key(fock: str) -> str:
    """Bloqade's ``|rg..>`` (atom 0 first) as QMK's outcome key (1 = Rydberg)."""
    return "".join("1" if c == "r" else "0" for c in fock.strip("|>"))


def _analog(job: Mapping[str, Any]) -> dict[str, Any]:
    import numpy as np

    def callback(register: Any, *_: Any) -> dict[str, float]:
        space = register.space
        probs = np.abs(np.asarray(register.data)) ** 2
        return {
            _key(space.index_to_fock_state(i)): float(probs[i])
            for i in range(space.size)
            if probs[i] > 0.0
        }

    began = time.perf_counter()
    (probs,) = analog_program(job).bloqade.python().run_callback(callback, atol=ATOL, rtol=RTOL)
    return {"probabilities": probs, "seconds": time.perf_counter() - began}


def _analog_run(job: Mapping[str, Any], shots: int, seed: int | None) -> dict[str, Any]:
    program = analog_program(job).bloqade.python()
    if seed is not None:
        import numpy as np

        # bloqade-analog draws its shots from numpy's global generator (Space.sample)
        np.random.seed(seed)
    began = time.perf_counter()
    batch = program.run(shots, atol=ATOL, rtol=RTOL)
    seconds = time.perf_counter() - began
    (counts,) = batch.report().counts()
    # Bloqade's bitstrings read a Rydberg atom as 0 (ejected), QuEra's convention
    flipped = {"".join("1" if c == "0" else "0" for c in k): int(v) for k, v in counts.items()}
    return {"counts": flipped, "seconds": seconds}


def _kernel(file: str, name: str) -> dict[str, Any]:
    import importlib.util

    import numpy as np
    from bloqade.pyqrack import StackMemorySimulator

    from qmk.devices.neutral_atom.bloqade import kernel_qasm

    spec = importlib.util.spec_from_file_location("_peer_kernels", file)
    if spec is None or spec.loader is None:
        raise PeerError(f"no Python file {file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kernel = module.KERNELS[name]
    text = kernel_qasm(kernel)
    state = np.asarray(StackMemorySimulator(min_qubits=1).state_vector(kernel))
    n = state.size.bit_length() - 1
    probs = np.abs(state) ** 2
    # PyQrack's index: bit i is qubit i; qmk.run's key of ``measure q -> c``: c[0]
    # rightmost (as OpenQASM and Qiskit write a register), so the index's binary form
    out = {format(i, f"0{n}b"): float(probs[i]) for i in range(state.size) if probs[i] > 1e-15}
    return {"qasm": text, "n_qubits": n, "probabilities": out}


def _versions() -> dict[str, Any]:
    from importlib.metadata import version

    # both import here, or the environment lacks them
    importlib.import_module("bloqade.analog")
    importlib.import_module("bloqade.qasm2")

    return {
        name: version(name)
        for name in ("bloqade-analog", "bloqade-circuit", "numpy", "scipy", "pyqrack-cpu")
    }


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    """Answer requests, one JSON line each, until stdin closes."""
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "versions":
                answer = _versions()
            elif op == "analog":
                answer = _analog(request["job"])
            elif op == "analog_run":
                seed = request.get("seed")
                answer = _analog_run(
                    request["job"], int(request["shots"]), None if seed is None else int(seed)
                )
            elif op == "kernel":
                answer = _kernel(str(request["file"]), str(request["name"]))
            else:
                answer = {"error": f"no op {op!r}"}
        except Exception as exc:  # the client reports it: the peer stays up
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)


__all__ = ["ATOL", "RTOL", "BloqadePeer", "PeerError", "analog_program", "peer_python", "serve"]
