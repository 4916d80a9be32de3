"""A PNG of logical error per round against p, one line per distance (matplotlib, Agg)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from qmk.experiments.memory import MemoryResult, ThresholdFit
from qmk.qec.errors import QECError


def plot_results(
    results: Sequence[MemoryResult],
    path: str | os.PathLike[str],
    *,
    fit: ThresholdFit | None = None,
) -> None:
    """Write a log-log plot of logical error per round (with intervals) to ``path``.

    With ``fit``, the fitted model's per-round rate is drawn dashed per distance.

    Raises:
        QECError: ``QC103`` when matplotlib is missing. FormatError: ``QF012`` when the
            file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise QECError.of(
            "bad-parameter",
            "--plot needs matplotlib, which is not installed (pip install matplotlib)",
        ) from None
    from qmk.experiments.memory import per_piece

    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    try:
        for d in sorted({r.distance for r in results}):
            rows = sorted((r for r in results if r.distance == d), key=lambda r: r.p)
            ps = [r.p for r in rows]
            rates = [r.per_round for r in rows]
            lows = [r.per_round - r.per_round_interval[0] for r in rows]
            highs = [r.per_round_interval[1] - r.per_round for r in rows]
            line = axes.errorbar(
                ps, rates, yerr=[lows, highs], marker="o", capsize=3, label=f"d={d}"
            )
            if fit is not None:
                model = [per_piece(min(0.49, fit.predict(p, d)), d) for p in ps]
                axes.plot(ps, model, linestyle="--", color=line[0].get_color())
        family = results[0].family if results else ""
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("physical error rate p")
        axes.set_ylabel("logical error per round")
        axes.set_title(f"{family} memory experiment ({results[0].interval if results else ''} CI)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        try:
            figure.savefig(path, dpi=100)
        except OSError as exc:
            from qmk.qvm.errors import unwritable

            raise unwritable(path, exc) from None
    finally:
        plt.close(figure)
