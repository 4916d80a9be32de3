"""Benchmark: a corpus of OpenQASM files run end to end by QMK and by Qiskit + Aer.

Issue 16's corpus goal, tried as a new user would: every ``.qasm``/``.qasm3`` file under
``--corpus`` (public corpora nobody here wrote: QASMBench small and medium, Qiskit's test
``.qasm`` files, the OpenQASM 3 specification's examples; fetch them yourself, they are
not part of this repository) is run

- by QMK: ``qmk.frontends.read_program`` (read, lower) and ``qmk.execution.runs.run``
  (verify, plan, simulate; logical noise off, ``--shots`` shots, seed ``--seed``);
- by Qiskit + Aer: ``QuantumCircuit.from_qasm_file`` (``qiskit.qasm2`` with the legacy
  custom instructions) or ``qiskit.qasm3.load`` by the file's ``OPENQASM`` header, then
  ``transpile(circuit, AerSimulator())`` and ``AerSimulator().run(..., shots,
  seed_simulator)``;

side by side, each side in a worker process of its own (its imports are paid once, not
per file; a crash or a run past ``--timeout`` is recorded and the worker restarted).

Per file it records, for each side: accepted, refused (QMK's error code; Qiskit's
exception class) or crashed (an exception that is not a coded error: a bug), the time
(read, run, total; wall seconds), and, where both ran, their agreement:

- the total variation distance (TVD) of the two count histograms, keys compared with
  the spaces between registers removed (QMK writes Qiskit's key layout; a spacing
  difference is reported apart). Two samples of ``N`` shots of one distribution have
  ``E[TVD] <= sum_i sqrt(p_i / (2N))`` (Jensen on each outcome's difference) and TVD
  concentrates within ``3/sqrt(N)`` of its mean with probability ``1 - e^-9``
  (McDiarmid: one shot moves it by at most 1/N), so the bound is
  ``sum_i sqrt(pbar_i / (2N)) + 3/sqrt(N)`` with ``pbar`` the pooled frequencies;
- where the outcomes are too many for the TVD to say anything (its bound reaches 1),
  each bit's marginal: ``|p_qmk - p_aer| <= sqrt(ln(2B/1e-4) / N)`` for B bits (Hoeffding).

A file exceeding either bound is flagged ``DISAGREE``: a wrong answer is a bug of the
first order. Files of more than ``--max-qubits`` qubits that are not Clifford (no
statevector holds them here) are read by both sides (timed) and not simulated by either:
``skipped``, stated. Totals are over the files both sides accepted (and over all files);
the ratio is QMK / (Qiskit + Aer). Prints a table and writes
``bench/results/corpus.json``. Not a test: nothing fails on a timing.

    python bench/bench_corpus.py --corpus /work/corpus
    python bench/bench_corpus.py --corpus /work/corpus --limit 20 --match qasmbench/small

Issue 33's second corpus (MQT Bench, QASMBench large, pyqasm's, Bloqade's, Braket's and
pytket's test programs) is another folder given the same way: docs/frontends.md says
what it held and what came out.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "corpus.json"
HEADER = re.compile(r"^\s*OPENQASM\s+(\d+)", re.MULTILINE)


def qasm_version(path: str) -> int:
    """The major version of the file's ``OPENQASM`` header (3 without one)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read(4096)
    text = re.sub(r"//[^\n]*", "", text)
    found = HEADER.search(text)
    return int(found.group(1)) if found else 3


# ------------------------------------------------------------------ the two sides


def _qmk_side() -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    from qmk import defaults
    from qmk.errors import QMKError
    from qmk.execution.plan import build_plan
    from qmk.execution.runs import run
    from qmk.frontends import read_program
    from qmk.qvm.verify import verify

    def side(job: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        start = time.perf_counter()
        try:
            graph = read_program(job["path"])
        except QMKError as exc:
            out["read_s"] = time.perf_counter() - start
            return {**out, "status": "refused", "code": exc.code, "message": str(exc)[:400]}
        out["read_s"] = time.perf_counter() - start
        out["qubits"] = qubits = len(graph.resources.vqs)
        out["nodes"] = len(graph.nodes)
        if qubits > job["max_qubits"]:  # not timed: the question a user asks is "can it run?"
            try:
                plan = build_plan(
                    verify(graph),
                    noise=False,
                    qubit=defaults.QUBIT,
                    default_profile=defaults.PROFILE,
                )
                clifford = plan.clifford
            except QMKError:
                clifford = False
            if not clifford or job["skip"]:
                return {**out, "status": "skipped", "total_s": out["read_s"]}
        if job["skip"]:
            return {**out, "status": "skipped", "total_s": out["read_s"]}
        start = time.perf_counter()
        try:
            result = run(graph, shots=job["shots"], seed=job["seed"], noise=False)
        except QMKError as exc:
            out["run_s"] = time.perf_counter() - start
            return {**out, "status": "refused", "code": exc.code, "message": str(exc)[:400]}
        out["run_s"] = time.perf_counter() - start
        out["total_s"] = out["read_s"] + out["run_s"]
        out["engine"] = result.engine
        out["counts"] = dict(result.counts)
        return {**out, "status": "ok"}

    return side


def _qiskit_side() -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    from qiskit import QuantumCircuit, qasm2, qasm3, transpile
    from qiskit_aer import AerSimulator

    simulator = AerSimulator()
    clifford_names = {
        "h", "s", "sdg", "x", "y", "z", "cx", "cz", "cy", "swap", "id", "sx", "sxdg",
        "measure", "barrier", "reset",
    }  # fmt: skip

    def side(job: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        start = time.perf_counter()
        try:
            if qasm_version(job["path"]) == 2:
                circuit = QuantumCircuit.from_qasm_file(job["path"])
            else:
                circuit = qasm3.load(job["path"])
        except Exception as exc:  # Qiskit's readers raise several classes
            refusal = {"status": "refused", "code": type(exc).__name__, "message": str(exc)[:400]}
            # the legacy reader refuses a file that redefines one of its gates (a user
            # "gate cu c,t"): the spec's reader takes it, and its answer checks QMK's
            try:
                if qasm_version(job["path"]) != 2:
                    raise
                # Aer runs a gate by its name: the file's own "cu" must go by its definition
                basis = ["u", "cx", "measure", "reset"]
                circuit = transpile(
                    qasm2.load(job["path"]), basis_gates=basis, optimization_level=0
                )
                out["reader"] = "qiskit.qasm2.load (from_qasm_file refused: " + (
                    refusal["message"][:120] + ")"
                )
            except Exception:
                out["read_s"] = time.perf_counter() - start
                return {**out, **refusal}
        out["read_s"] = time.perf_counter() - start
        out["qubits"] = circuit.num_qubits
        out["nodes"] = circuit.size()
        big = circuit.num_qubits > job["max_qubits"]
        if big and not {i.operation.name for i in circuit.data} <= clifford_names:
            return {**out, "status": "skipped", "total_s": out["read_s"]}
        if job["skip"]:
            return {**out, "status": "skipped", "total_s": out["read_s"]}
        start = time.perf_counter()
        try:
            chosen = simulator
            if big:  # Clifford and wide: Aer's own target refuses it, its stabilizer runs it
                chosen = AerSimulator(method="stabilizer")
                out["note"] = "wide Clifford: AerSimulator(method='stabilizer')"
            compiled = transpile(circuit, chosen)
            result = chosen.run(compiled, shots=job["shots"], seed_simulator=job["seed"])
            data = result.result()
            measures = any(i.operation.name == "measure" for i in circuit.data)
            if measures:
                counts = dict(data.get_counts())
            else:  # Aer has "No counts" for a circuit that measures nothing: all bits 0
                key = " ".join("0" * reg.size for reg in reversed(circuit.cregs))
                counts = {key: job["shots"]}
                out["note"] = "nothing measured: Aer gives no counts; all bits 0"
        except Exception as exc:  # Aer reports failures as several classes
            out["run_s"] = time.perf_counter() - start
            return {**out, "status": "refused", "code": type(exc).__name__,
                    "message": str(exc)[:400]}  # fmt: skip
        out["run_s"] = time.perf_counter() - start
        out["total_s"] = out["read_s"] + out["run_s"]
        out["counts"] = counts
        return {**out, "status": "ok"}

    return side


SIDES: dict[str, Callable[[], Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "qmk": _qmk_side,
    "qiskit": _qiskit_side,
}


def _serve(name: str, conn: Any) -> None:
    """A worker: import the side once, then answer jobs until told to stop."""
    import warnings

    warnings.simplefilter("ignore")
    started = time.perf_counter()
    side = SIDES[name]()
    conn.send({"import_s": time.perf_counter() - started})
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            answer = side(job)
        except BaseException as exc:  # a crash is what we record
            answer = {
                "status": "crashed",
                "code": type(exc).__name__,
                "message": str(exc)[:400],
                "traceback": traceback.format_exc()[-2000:],
            }
        conn.send(answer)


class Worker:
    """One side in a process of its own, restarted after a crash or a timeout."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: Any = None
        self.conn: Any = None
        self.import_s = 0.0

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(self.name, child), daemon=True)
        self.proc.start()
        self.conn = parent
        self.import_s = self.conn.recv()["import_s"]

    def ask(self, job: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        started = time.perf_counter()
        self.conn.send(dict(job))
        if self.conn.poll(timeout):
            try:
                return dict(self.conn.recv())
            except EOFError:
                pass
            self.proc.join(1)
            return {"status": "crashed", "code": f"exit {self.proc.exitcode}",
                    "total_s": time.perf_counter() - started}  # fmt: skip
        self.stop()
        return {"status": "timeout", "total_s": timeout}

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.proc = None


# ------------------------------------------------------------------ agreement


def _strip(counts: Mapping[str, int]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for key, n in counts.items():
        k = key.replace(" ", "")
        merged[k] = merged.get(k, 0) + n
    return merged


def agreement(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, Any]:
    """TVD (keys without spaces) with its bound, and the bit marginals where TVD says nothing."""
    sa, sb = _strip(a), _strip(b)
    na, nb = sum(sa.values()), sum(sb.values())
    n = min(na, nb)
    keys = set(sa) | set(sb)
    tvd = 0.5 * sum(abs(sa.get(k, 0) / na - sb.get(k, 0) / nb) for k in keys)
    pooled = {k: (sa.get(k, 0) + sb.get(k, 0)) / (na + nb) for k in keys}
    bound = sum(math.sqrt(p / (2 * n)) for p in pooled.values()) + 3 / math.sqrt(n)
    out: dict[str, Any] = {
        "tvd": round(tvd, 5),
        "tvd_bound": round(min(bound, 1.0), 5),
        "outcomes": len(keys),
        "spacing_differs": set(a) != set(b) and sa.keys() == sb.keys(),
    }
    widths = {len(k) for k in keys}
    if len(widths) != 1:
        out.update(agree=False, why="keys of different widths")
        return out
    if bound < 1.0:
        out.update(agree=tvd <= bound, why="tvd")
        return out
    width = widths.pop()
    worst = 0.0
    for bit in range(width):
        pa = sum(c for k, c in sa.items() if k[bit] == "1") / na
        pb = sum(c for k, c in sb.items() if k[bit] == "1") / nb
        worst = max(worst, abs(pa - pb))
    marginal_bound = math.sqrt(math.log(2 * max(width, 1) / 1e-4) / n)
    out.update(
        marginal_max=round(worst, 5),
        marginal_bound=round(marginal_bound, 5),
        agree=worst <= marginal_bound,
        why="bit marginals (too many outcomes for the TVD)",
    )
    return out


# ------------------------------------------------------------------ the run


def corpus_files(root: Path, match: str | None, limit: int | None) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".qasm", ".qasm3") and p.is_file())
    if match:
        files = [p for p in files if match in str(p.relative_to(root))]
    return files[:limit] if limit else files


def _fmt(side: Mapping[str, Any]) -> str:
    status = side["status"]
    if status in ("ok", "skipped"):
        return f"{status} {side.get('total_s', 0.0):8.3f}s"
    return f"{status}:{side.get('code', '?')}"[:24]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path, help="folder of .qasm files")
    parser.add_argument("--limit", type=int, default=None, help="at most this many files")
    parser.add_argument("--match", default=None, help="only files whose path contains this")
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-qubits", type=int, default=28)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per file per side")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    files = corpus_files(args.corpus, args.match, args.limit)
    if not files:
        print(f"no .qasm files under {args.corpus}", file=sys.stderr)
        return 2
    workers = {name: Worker(name) for name in SIDES}
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    print(f"{'file':60} {'qmk':>24} {'qiskit+aer':>24}  agreement")
    try:
        for path in files:
            rel = str(path.relative_to(args.corpus))
            job = {"path": str(path), "shots": args.shots, "seed": args.seed,
                   "max_qubits": args.max_qubits, "skip": False}  # fmt: skip
            qmk = workers["qmk"].ask(job, args.timeout)
            qmk.pop("traceback", None) if qmk["status"] != "crashed" else None
            # a file too big to simulate is skipped for both sides (both still read it)
            peer = workers["qiskit"].ask({**job, "skip": qmk["status"] == "skipped"}, args.timeout)
            if peer["status"] == "skipped" and qmk["status"] == "ok":
                qmk["status"] = "skipped"
            row: dict[str, Any] = {"file": rel, "qmk": qmk, "qiskit": peer}
            if qmk["status"] == "ok" and peer["status"] == "ok":
                row["agreement"] = agreement(qmk["counts"], peer["counts"])
            verdict = ""
            if "agreement" in row:
                ag = row["agreement"]
                verdict = "ok" if ag["agree"] else "DISAGREE"
                verdict += f" tvd={ag['tvd']:.3f}<={ag['tvd_bound']:.3f}"
                if "marginal_max" in ag:
                    verdict += f" marg={ag['marginal_max']:.3f}<={ag['marginal_bound']:.3f}"
            print(f"{rel[-60:]:60} {_fmt(qmk):>24} {_fmt(peer):>24}  {verdict}", flush=True)
            for side in (qmk, peer):
                side.pop("counts", None) if len(side.get("counts", {})) > 64 else None
            rows.append(row)
    finally:
        for worker in workers.values():
            worker.stop()
    summary = summarise(rows)
    summary.update(
        corpus=str(args.corpus),
        shots=args.shots,
        seed=args.seed,
        max_qubits=args.max_qubits,
        timeout_s=args.timeout,
        wall_s=round(time.perf_counter() - started, 2),
        import_s={name: round(w.import_s, 3) for name, w in workers.items()},
        load_average=[load_before, os.getloadavg()],
        cpus=os.cpu_count(),
        python=platform.python_version(),
    )
    print_summary(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "files": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def tally(side: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in rows:
            out[row[side]["status"]] = out.get(row[side]["status"], 0) + 1
        return out

    def total(side: str, keep: Callable[[dict[str, Any]], bool]) -> float:
        return round(sum(r[side].get("total_s", 0.0) for r in rows if keep(r)), 3)

    def both(row: dict[str, Any]) -> bool:
        return row["qmk"]["status"] in ("ok", "skipped") and row["qiskit"]["status"] in (
            "ok",
            "skipped",
        )

    qmk_both, peer_both = total("qmk", both), total("qiskit", both)
    qmk_all, peer_all = total("qmk", lambda r: True), total("qiskit", lambda r: True)
    return {
        "files": len(rows),
        "qmk": tally("qmk"),
        "qiskit": tally("qiskit"),
        "agree": sum(1 for r in rows if r.get("agreement", {}).get("agree") is True),
        "disagree": [r["file"] for r in rows if r.get("agreement", {}).get("agree") is False],
        "qmk_crashed": [r["file"] for r in rows if r["qmk"]["status"] == "crashed"],
        "qmk_refused": {
            r["file"]: f"{r['qmk'].get('code')}: {r['qmk'].get('message', '')[:160]}"
            for r in rows
            if r["qmk"]["status"] == "refused"
        },
        "both_accepted": sum(1 for r in rows if both(r)),
        "seconds_both_accepted": {"qmk": qmk_both, "qiskit_aer": peer_both},
        "ratio_both_accepted": round(qmk_both / peer_both, 3) if peer_both else None,
        "seconds_all": {"qmk": qmk_all, "qiskit_aer": peer_all},
        "ratio_all": round(qmk_all / peer_all, 3) if peer_all else None,
    }


def print_summary(summary: Mapping[str, Any]) -> None:
    print()
    print(f"files: {summary['files']}  qmk: {summary['qmk']}  qiskit+aer: {summary['qiskit']}")
    print(f"agree: {summary['agree']}  disagree: {len(summary['disagree'])} {summary['disagree']}")
    print(f"qmk crashed: {summary['qmk_crashed']}")
    for name, why in summary["qmk_refused"].items():
        print(f"  qmk refused {name}: {why}")
    s = summary["seconds_both_accepted"]
    print(
        f"both accepted ({summary['both_accepted']} files): qmk {s['qmk']:.2f} s, "
        f"qiskit+aer {s['qiskit_aer']:.2f} s, ratio {summary['ratio_both_accepted']}"
    )
    s = summary["seconds_all"]
    print(
        f"all files: qmk {s['qmk']:.2f} s, qiskit+aer {s['qiskit_aer']:.2f} s, "
        f"ratio {summary['ratio_all']} (timeouts count as the timeout)"
    )
    print(f"load average before/after: {summary['load_average']}")


if __name__ == "__main__":
    sys.exit(main())
