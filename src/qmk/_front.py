"""``qmk.run``: a program, from its text, its file or its graph, run in-process.

This is the user's door to the in-process machine. It reads the program, in any
language QMK reads, and runs it with the parameters a user sets, as every in-process run
goes (:func:`qmk.execution.runs.run`: one run request, the target's compile and run).
What only the kernel's workers set stays behind it: a control that stops the run at its
fences, a saved state to resume from, a part of the shots, a machine-wide calibration.

A ``str`` source is program text when it holds a line break or reads as a program
(:func:`sniff`), and a file's path otherwise; ``format=`` names its language where the
text or the file's extension does not say it. It is loaded on first use of ``qmk.run``,
so that ``import qmk`` stays light.

Every run goes through a target (:mod:`qmk.execution.target`), each with its own
``target_options``, which it checks. The gate-level logical machine is the default. A
stim circuit gets stim's own (``stim``: stim's samplers, its detectors and
observables). ``target="lattice-surgery"`` and ``target="neutral-atom"`` pick the
others; the device takes a QVM program compiled onto a preset, or a device job (its
wire form, as data, JSON text or a ``.json`` file). The parameters become one run
request (:meth:`qmk.execution.request.RunRequest.build`, whose keywords they are),
which the target compiles and runs.

>>> result = run('''OPENQASM 2.0;
... include "qelib1.inc";
... qreg q[2]; creg c[2];
... h q[0]; cx q[0], q[1];
... measure q -> c;''', shots=400, seed=7, noise=False)
>>> sorted(result.counts), result.shots
(['00', '11'], 400)
>>> run("examples/bell.qasm", shots=400, seed=7, noise=False).counts == result.counts
True
>>> surgery = run("examples/bell.qasm", target="lattice-surgery", shots=400, seed=7,
...               noise=False, target_options={"block": "compact"})
>>> sorted(surgery.counts), surgery.target
(['00', '11'], 'lattice-surgery')
>>> atoms = run("examples/bell.qasm", target="neutral-atom", shots=400, seed=7,
...             target_options={"preset": "ideal_small_array"})
>>> sorted(atoms.counts), atoms.telemetry.qubit_params
(['00', '11'], 'ideal_small_array')
>>> flips = run("X_ERROR(0.1) 0\\nM 0\\nDETECTOR rec[-1]", shots=1000, seed=7)
>>> flips.target, flips.detectors.shape, 50 < int(flips.detectors.sum()) < 150
('stim', (1000, 1), True)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qmk import defaults
from qmk.errors import closest
from qmk.frontends.text import PROGRAM_FORMATS, lower_text, sniff

if TYPE_CHECKING:
    from qmk.engines.state_io import QuantumState
    from qmk.execution.result import RunResult
    from qmk.frontends.errors import FrontendError
    from qmk.qec.logical import Calibration
    from qmk.qec.noise import NoiseModel
    from qmk.qec.params import QubitParams
    from qmk.qec.physics import PhysicsConfig
    from qmk.qvm.graph import Graph
    from qmk.qvm.limits import Limits
    from qmk.qvm.verify import VerifiedProgram

#: What ``format=`` takes (:data:`qmk.frontends.text.PROGRAM_FORMATS`).
FORMATS: tuple[str, ...] = PROGRAM_FORMATS

#: The name program text goes by in the messages of the errors it raises.
TEXT = "<text>"

# a file name with an extension QMK reads by (qmk.frontends.format_of)
_PATH = re.compile(r"\.(?:json|asm|qasm[23]?|ll|bc|stim)\Z", re.IGNORECASE)
# LLVM bitcode: its magic, bare or in its wrapper
_BITCODE = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")


def run(
    source: str | bytes | os.PathLike[str] | Graph | VerifiedProgram | Mapping[str, Any],
    *,
    format: str | None = None,
    shots: int = defaults.SHOTS,
    seed: int | None = None,
    engine: str | None = defaults.ENGINE,
    noise: bool | NoiseModel | None = None,
    qubit: str | QubitParams = defaults.QUBIT,
    profile: str = defaults.PROFILE,
    inputs: Mapping[str, float] | None = None,
    engine_options: Mapping[str, Any] | None = None,
    calibration: Calibration | str | os.PathLike[str] | None = None,
    initial_state: QuantumState | str | os.PathLike[str] | None = None,
    final_state: bool | str = False,
    limits: Limits | None = None,
    physics: PhysicsConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    target: str | None = None,
    target_options: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run a program for ``shots`` shots on the simulated fault-tolerant machine, in this
    process, and return its counts, every shot's outcomes and its telemetry.

    Args:
        source: the program. It may be its text (OpenQASM 2 or 3, QVM JSON, QVM assembly,
            QIR as LLVM IR), QIR bitcode as bytes, or a file's path, whose extension names
            its language (``.qasm``, ``.json``, ``.asm``, ``.ll``, ``.bc``, ``.stim``). It
            may be a QVM graph (:class:`~qmk.qvm.graph.Graph`, or its JSON as a mapping), a
            verified program or a ``stim.Circuit``. For a target whose programs are not QVM
            graphs (``neutral-atom``), it may be one of its own (a device job: a mapping,
            JSON text or a ``.json`` file).
        format: the language of text or of a file whose extension does not say it: one
            of :data:`FORMATS` (``qasm`` reads OpenQASM's version from its header); None:
            from the text itself (:func:`sniff`) or the file's extension.
        shots: how many shots (1 to :data:`qmk.defaults.MAX_SHOTS`).
        seed: the seed of every random choice (below :data:`qmk.defaults.SEED_BOUND`); None
            draws one (``result.seed`` says which).
        engine: an engine of :data:`qmk.defaults.ENGINES` (``qmk engines`` lists those
            installed here); None lets QMK choose the cheapest that runs the program exactly.
        noise: inject logical errors from each qubit's code profile and the qubit
            parameters (True), none (False), or with a noise model's physical error
            rates in place of the qubit's (:mod:`qmk.qec.noise`, e.g. ``Depolarizing(p=1e-3)``).
            None: the target's default, on (a stim circuit's own noise on ``stim``)
            but off for a QVM program on ``stim``, which has no noise to give it.
        qubit: the physical qubit parameter set: a name of :mod:`qmk.qec.params` or
            :class:`~qmk.qec.params.QubitParams`.
        profile: the code profile of qubits that name none, e.g. ``logical:surface_code(d=9)``.
        inputs: values of an OpenQASM 3 program's ``input`` declarations, by name.
        engine_options: keyword arguments for the engine; ``dtype`` (``complex64`` or
            ``complex128``, :data:`qmk.defaults.PRECISION_DTYPES`) asks for a precision.
        calibration: a fitted (a, p*) from ``qmk qec calibrate`` (the object or its JSON
            file) for the profiles of its family and instruction set. At least one qubit
            of the program must have one of them.
        initial_state: a quantum state (:mod:`qmk.engines.state_io`) or its JSON file: the
            qubits of the program's opening ALLOC_LQ nodes start in it.
        final_state: True (the engine's own kind), ``"amplitudes"`` or ``"stabilizers"``:
            also return the program's final state as ``result.final_state`` (a program
            that measures nothing, run with ``noise=False``).
        limits: size limits for the program (:class:`~qmk.qvm.limits.Limits`).
        physics: the machine as one physics file (:mod:`qmk.qec.physics`: the
            original design's ``qec_scheme``, ``error_budget`` and ``decoder``). It may
            be the value, its JSON data, JSON text or a file's path. It sets ``profile``,
            the error rates (``noise`` stays True) and the timing of ``qubit``, its base.
        target: what runs it (:data:`qmk.execution.target.TARGETS`). None picks
            ``stim`` for a stim circuit (stim's own samplers: the circuit's noise, its
            detectors and observables), and ``logical`` for any other program.
            ``logical`` is the gate-level machine: trajectories and the batch sampler.
            ``lattice-surgery`` runs Pauli product measurements on a patch layout with
            its T factories; its ``profile`` names the code and distance, its ``qubit``
            the physical qubits. ``neutral-atom`` is the device's emulator, on a preset's
            physics. A target refuses a parameter it cannot honour (``QM102``): the device
            takes no engine, qubit set, profile, noise model, calibration or state.
        target_options: the target's own options, as a kernel job's ``policy`` gives
            them. Lattice surgery's: ``block`` (``compact``, ``intermediate``, ``fast``).
            The device's: ``preset`` (a shipped preset or a profile file), ``backend``,
            ``strict_timing``, ``routing`` and ``configuration``. Stim's: ``detectors``
            (a shot is its detection events and observable flips) and ``decode``
            (matching's logical error rate per observable). The logical machine takes
            none.

    Returns:
        The :class:`~qmk.execution.result.RunResult`: ``counts``, ``memory``,
        ``telemetry``, ``plot()``; ``target`` says which ran it; a stim circuit's
        ``detectors`` and ``observables``.

    Raises:
        QMKError: before any simulation, each one line with a stable code. An unknown
            target (``TargetError`` QM101); shots or seed out of range (``EngineError``
            QE105); a program that does not read or lower (``FrontendError``,
            ``FormatError``) or does not verify (``VerificationError``). An option or
            setting its target cannot honour (``TargetError`` QM102, or the target's own
            code: a device job the device refuses is ``QD``). An engine that cannot run
            it (``EngineError``), or unknown QEC names (``QECError``).
    """
    from qmk.execution import runs
    from qmk.execution import target as targets

    stim_source = _stim_source(source, format)
    named = target if target is not None else defaults.TARGET if stim_source is None else "stim"
    entry = targets.spec(named)  # QM101 before any reading
    own: Any = None
    if entry.program == "stim-circuit":
        own = stim_source
    elif entry.program != "qvm":
        own = _own_program(source, format)
    if own is not None:  # the target's own program (a stim circuit, a device job)
        if inputs:
            what = "stim circuits" if entry.program == "stim-circuit" else f"a {named} job"
            raise _error("unsupported", f"inputs= are for OpenQASM 3 programs, not {what}")
        program: Any = own
    else:
        program = read(source, format=format, limits=limits, inputs=inputs)
    given: dict[str, Any] = {} if noise is None else {"noise": noise}  # None: the target's
    return runs.run(
        program,
        own=own is not None,
        limits=limits,
        initial_state=initial_state,
        final_state=final_state,
        target=entry.name,
        target_options=target_options,
        shots=shots,
        seed=seed,
        engine=engine,
        **given,
        qubit=qubit,
        profile=profile,
        engine_options=engine_options,
        calibration=calibration,
        physics=physics,
    )


def _stim_source(source: Any, format: str | None) -> Any:
    """``source`` where it is a stim circuit (a ``stim.Circuit``, its text known by sight
    or by ``format="stim"``, a ``.stim`` file or a file ``format="stim"`` names, its JSON
    data ``{"stim": TEXT}``), as the stim target reads it; None for any other source."""
    import sys

    stim = sys.modules.get("stim")  # a stim.Circuit means stim is imported
    if stim is not None and isinstance(source, stim.Circuit):
        return source
    if isinstance(source, Mapping):
        return source if isinstance(source.get("stim"), str) else None
    if format not in (None, "stim") or not isinstance(source, str | os.PathLike):
        return None
    if isinstance(source, str) and _is_text(source, format):
        return source if (format or sniff(source)) == "stim" else None
    path = os.fspath(source)
    if path.lower().endswith(".stim"):
        return path
    return _bytes(path).decode("utf-8", errors="replace") if format == "stim" else None


def _own_program(source: Any, format: str | None) -> Mapping[str, Any] | None:
    """The JSON data of ``source`` where it is a program of a target that reads its own
    (a device job's wire form).

    That is a mapping, JSON text or a ``.json`` file holding an object that is no QVM
    graph (whose ``program`` is not an object of nodes). None for any other source, which
    the front-ends read; a JSON file or text that does not parse goes there too, so their
    errors say why."""
    if format not in (None, "qvm-json"):
        return None
    data: Any = None
    if isinstance(source, Mapping):
        try:  # its digest is of its JSON text
            data = json.loads(json.dumps(source, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise _error("unreadable", f"the program is not plain JSON data: {exc}") from None
    elif isinstance(source, str) and source.lstrip().startswith("{"):
        data = _json(source)
    elif isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith(".json"):
        data = _json(_bytes(os.fspath(source))) if os.path.isfile(source) else None
    if not isinstance(data, Mapping) or isinstance(data.get("program"), Mapping):
        return None
    return data


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def read(
    source: Any,
    *,
    format: str | None = None,
    limits: Limits | None = None,
    inputs: Mapping[str, float] | None = None,
) -> Any:
    """The program ``source`` is, as :func:`run` reads it: a graph (or a verified program,
    or QVM JSON data, as given) for the executor.

    Raises:
        FrontendError: ``QL108 unknown-format`` for a format QMK does not know, or text
            whose language neither it nor ``format`` says; the front-ends' own errors for
            a program that does not lower. FormatError: QVM JSON that does not read.
    """
    from qmk.qvm.graph import Graph
    from qmk.qvm.verify import VerifiedProgram

    if format is not None and format not in FORMATS:
        raise _unknown_format(format)
    if isinstance(source, Graph | VerifiedProgram | Mapping):
        if format not in (None, "qvm-json") or inputs:
            given = "format=" if format not in (None, "qvm-json") else "inputs="
            raise _error("unsupported", f"{given} is for program text or a file, not a graph")
        return source
    if isinstance(source, str | bytes) and not source.strip():
        # "" is neither a program nor a file's path (as a path it is the current directory)
        raise _error("unreadable", "the program is empty: give its text or a file's path")
    if isinstance(source, bytes):
        if format in (None, "qir") and source.startswith(_BITCODE):
            return _lower(source, "qir", TEXT, limits=limits, inputs=inputs)
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            message = f"program bytes are not UTF-8 text (byte {exc.start})"
            raise _error("unreadable", message) from None
        return _text(source, format, limits=limits, inputs=inputs)
    if isinstance(source, str) and _is_text(source, format):
        return _text(source, format, limits=limits, inputs=inputs)
    if not isinstance(source, str | os.PathLike):
        raise _error(
            "unsupported",
            f"a program is text, bytes, a path, a Graph or QVM JSON data, not "
            f"{type(source).__name__}",
        )
    return _file(os.fspath(source), format, limits=limits, inputs=inputs)


def _is_text(source: str, format: str | None) -> bool:
    """Whether a ``str`` source is program text rather than a file's path.

    It is text when it has a line break, or when it names no file and reads as a program.
    That is by sight, or by ``format`` when it does not look like a path (one word ending
    in an extension QMK reads)."""
    if "\n" in source:
        return True
    if os.path.isfile(source):
        return False
    if sniff(source) is not None:
        return True
    looks_like_path = not re.search(r"\s", source.strip()) and bool(_PATH.search(source))
    return format is not None and not looks_like_path


def _text(
    text: str, format: str | None, *, limits: Limits | None, inputs: Mapping[str, float] | None
) -> Graph:
    kind = format or sniff(text)
    if kind is None:
        raise _error(
            "unknown-format",
            "cannot tell the language of the program text (QMK knows an OPENQASM header, "
            f"a JSON object, LLVM IR and QVM assembly by sight); pass format= one of "
            f"{', '.join(FORMATS)}",
        )
    return _lower(text, kind, TEXT, limits=limits, inputs=inputs)


def _file(
    path: str, format: str | None, *, limits: Limits | None, inputs: Mapping[str, float] | None
) -> Graph:
    from qmk.frontends import FORMATS as READ_FORMATS
    from qmk.frontends import FrontendError, format_of, read_program

    if format is None:
        try:
            format_of(path)
        except FrontendError:  # an extension QMK does not know: the text may say
            data = _bytes(path)
            if data.startswith(_BITCODE):
                return _lower(data, "qir", path, limits=limits, inputs=inputs)
            text = data.decode("utf-8", errors="replace")
            kind = sniff(text)
            if kind is None:
                raise _error(
                    "unknown-format",
                    f"{path}: cannot tell the program's language from the extension or the "
                    f"text; pass format= one of {', '.join(FORMATS)}",
                ) from None
            return _lower(text, kind, path, limits=limits, inputs=inputs)
    if format is None or format in READ_FORMATS:
        return read_program(path, format=format, limits=limits, params=inputs or None)
    # "qasm" for a file whose extension is not .qasm: OpenQASM, its version from its header
    return _lower(_bytes(path).decode("utf-8"), format, path, limits=limits, inputs=inputs)


def _lower(
    program: str | bytes,
    kind: str,
    name: str,
    *,
    limits: Limits | None,
    inputs: Mapping[str, float] | None,
) -> Graph:
    """Program text (or QIR bitcode) in language ``kind`` as a QVM graph."""
    if inputs and kind not in ("qasm", "qasm3"):
        raise _error(
            "unsupported",
            f"{name}: inputs= are for OpenQASM 3 programs' input declarations, not {kind}",
        )
    base = None if name == TEXT else Path(name).parent
    return lower_text(program, kind, name, limits=limits, params=inputs, base_dir=base)


def _bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _error("unreadable", f"{path}: cannot read: {exc.strerror or exc}") from None


def _unknown_format(format: str) -> FrontendError:
    close = closest(str(format), FORMATS)
    hint = f"; did you mean {close!r}?" if close else ";"
    return _error("unknown-format", f"unknown format {format!r}{hint} known: {', '.join(FORMATS)}")


def _error(name: str, message: str) -> FrontendError:
    from qmk.frontends.errors import FrontendError

    return FrontendError.of(name, message)


__all__ = ["FORMATS", "read", "run"]
