"""A workflow's results on disk: ``results.json``, ``results.csv`` and PNG plots.

- ``results.json``: the workflow's name, whether every job completed, and each job's
  step, sweep point, state, shots, seed, counts, engine, attempts, job id and error;
- ``results.csv``: one row per (job, outcome): ``step, index, <sweep keys>, state,
  shots, seed, engine, attempts, outcome, count, probability`` (a job with no outcome
  has one row with an empty outcome);
- ``plots/STEP.png``: the outcome histogram of a step of one job, or, for a sweep, the
  probability of each outcome against the swept value (one line per outcome; a sweep of
  several keys is drawn against the point's index). Plots need matplotlib (``QC103``
  without it, as ``qmk qec threshold --plot``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qmk.workflows.runner import JobResult, WorkflowResult


def write_results(result: WorkflowResult, folder: str | Path, *, plots: bool = True) -> list[Path]:
    """Write the results into ``folder`` (created); the files written.

    Raises:
        FormatError: ``QF012 unwritable-file`` naming the file or folder that could not be
            written.
    """
    try:
        return _write_results(result, Path(folder), plots=plots)
    except OSError as exc:
        from qmk.qvm.errors import unwritable

        raise unwritable(exc.filename or folder, exc) from None


def _write_results(result: WorkflowResult, out: Path, *, plots: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.csv"]
    data = {
        "workflow": result.workflow.name,
        "file": None if result.workflow.path is None else str(result.workflow.path),
        "ok": result.ok,
        "elapsed_s": result.elapsed_s,
        "jobs": [job.to_json() for job in result.jobs],
    }
    written[0].write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    keys = list(dict.fromkeys(k for job in result.jobs for k in job.point))
    with written[1].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                *("step", "index", *keys, "state", "shots", "seed", "engine", "attempts"),
                *("outcome", "count", "probability"),
            ]
        )
        for job in result.jobs:
            head = [job.step, job.index, *(job.point.get(k, "") for k in keys), job.state]
            head += [job.shots, job.seed, job.engine or "", job.attempts]
            if not job.counts:
                writer.writerow([*head, "", "", ""])
            for outcome, count in sorted(job.counts.items()):
                writer.writerow([*head, outcome, count, round(count / max(job.shots, 1), 6)])
    if plots:
        written.extend(_plots(result, out / "plots"))
    return written


def _pyplot() -> Any:
    from qmk.qec.errors import QECError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise QECError.of(
            "bad-parameter",
            "workflow plots need matplotlib, which is not installed (pip install matplotlib; "
            "or --no-plots)",
        ) from None
    return plt


def plot_counts(counts: Mapping[str, int], shots: int, path: str | Path, title: str) -> Path:
    """A PNG of ``counts`` as a histogram of outcome probabilities (``qmk run --plot``).

    Raises:
        QECError: ``QC103`` when matplotlib is missing. FormatError: ``QF012`` when the
            file cannot be written.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    _histogram(axes, counts, shots, title)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as exc:
        from qmk.qvm.errors import unwritable

        raise unwritable(path, exc) from None
    finally:
        plt.close(figure)
    return Path(path)


def _histogram(axes: Any, counts: Mapping[str, int], shots: int, title: str) -> None:
    outcomes = sorted(counts)
    if len(outcomes) > 64:  # the most frequent: a plot of thousands of bars says nothing
        outcomes = sorted(sorted(counts, key=lambda o: -counts[o])[:64])
        title += " (64 most frequent outcomes)"
    axes.bar(
        [o or "(empty)" for o in outcomes],
        [counts[o] / max(shots, 1) for o in outcomes],
        color="#2f5bd3",
    )
    axes.set_xlabel("outcome")
    axes.set_ylabel("probability")
    axes.set_title(title)
    if len(outcomes) > 8:
        axes.tick_params(axis="x", labelrotation=90, labelsize="x-small")


def _plots(result: WorkflowResult, folder: Path) -> list[Path]:
    steps: dict[str, list[JobResult]] = {}
    for job in result.jobs:
        steps.setdefault(job.step, []).append(job)
    plt = None
    written = []
    for name, jobs in steps.items():
        done = [job for job in jobs if job.counts]
        if not done:
            continue
        plt = plt or _pyplot()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_safe(name)}.png"
        figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        if len(jobs) == 1:
            _histogram(axes, done[0].counts, done[0].shots, f"{name}: {done[0].shots} shots")
        else:
            varying = [k for k in done[0].point if len({str(j.point.get(k)) for j in done}) > 1]
            numeric = len(varying) == 1 and all(
                isinstance(j.point.get(varying[0]), (int, float)) for j in done
            )
            xs = [j.point[varying[0]] for j in done] if numeric else list(range(len(done)))
            for outcome in sorted({o for j in done for o in j.counts}):
                ys = [j.counts.get(outcome, 0) / max(j.shots, 1) for j in done]
                axes.plot(xs, ys, marker="o", label=outcome or "(empty)")
            axes.set_xlabel(varying[0] if numeric else "sweep point")
            axes.set_ylabel("probability")
            axes.set_title(f"{name}: {len(done)} points")
            axes.legend(title="outcome", fontsize="small")
            if not numeric:
                labels = [", ".join(f"{k}={j.point[k]}" for k in varying) for j in done]
                axes.set_xticks(xs, labels, rotation=30, ha="right", fontsize="x-small")
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "step"
