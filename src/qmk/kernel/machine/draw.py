"""The machine drawn: its floorplan as text or PNG, and a simulation's plots.

A module is drawn as ``qmk plan --layout`` draws a block: its job tiles in rows of
``width`` (``o``; a run of the line snakes along them), the routing row that carries T
states from the factories (``.``), the factory copies beside (``F``, each a near-square
of its tiles) and the storage tiles (``S``). PNGs need matplotlib (``QP106`` without it).

>>> from qmk.kernel.machine.spec import MachineSpec
>>> print(module_text(MachineSpec.simple(tiles=7, copies=2).modules[0]))
ooo  F F
ooo
o
...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.kernel.machine.simulate import PolicyRun
    from qmk.kernel.machine.spec import MachineSpec, ModuleSpec

#: Widest module drawn as text (wider ones: ``--png``).
TEXT_WIDTH = 100

Cell = tuple[int, int, str]


def module_cells(module: ModuleSpec) -> tuple[list[Cell], int, int]:
    """Every tile of ``module`` as ``(row, column, kind)`` (``o`` job, ``.`` routing,
    ``F`` factory, ``S`` storage), and the grid's height and width."""
    width = max(1, module.width)
    cells: list[Cell] = [(i // width, i % width, "o") for i in range(module.tiles)]
    rows = math.ceil(module.tiles / width) if module.tiles else 0
    cells += [(rows, c, ".") for c in range(module.bus_tiles)]
    storage_rows = math.ceil(module.storage_tiles / width) if module.storage_tiles else 0
    cells += [(rows + 1 + i // width, i % width, "S") for i in range(module.storage_tiles)]
    height = rows + 1 + storage_rows
    factory = module.factory
    right = width + 1
    if factory.copies:
        size = factory.tiles_per_copy
        side = math.ceil(math.sqrt(size))
        tall = math.ceil(size / side)
        per_row = max(1, math.ceil(math.sqrt(factory.copies)))
        for copy in range(factory.copies):
            top = (copy // per_row) * (tall + 1)
            left = width + 2 + (copy % per_row) * (side + 1)
            cells += [(top + i // side, left + i % side, "F") for i in range(size)]
            right = max(right, left + side)
            height = max(height, top + tall)
    return cells, height, right


def module_text(module: ModuleSpec) -> str:
    """The module as characters (module docstring)."""
    cells, height, width = module_cells(module)
    grid = [[" "] * width for _ in range(height)]
    for r, c, kind in cells:
        grid[r][c] = kind
    return "\n".join("".join(row).rstrip() for row in grid)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from qmk.ft.errors import FTError

        raise FTError.of(
            "plot-unavailable", "drawing needs matplotlib: pip install 'quantum-microkernel[plot]'"
        ) from None
    return plt


def _save(fig: Any, path: str) -> None:
    plt = _pyplot()
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as exc:
        from qmk.qvm.errors import FormatError

        raise FormatError.of("unreadable-file", f"{path}: cannot write: {exc.strerror}") from None
    finally:
        plt.close(fig)


COLOURS = {"o": "#7fb3d5", ".": "#d9d9d9", "F": "#f5b041", "S": "#82c99a"}


def draw_machine(machine: MachineSpec, path: str, title: str) -> None:
    """Draw every module of ``machine`` side by side into a PNG."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    laid = [module_cells(m) for m in machine.modules]
    total_w = sum(w for _, _, w in laid) + 2 * (len(laid) - 1)
    total_h = max(h for _, h, _ in laid)
    scale = min(0.25, 40.0 / max(total_w, total_h, 1))
    fig, ax = plt.subplots(figsize=(max(4.0, total_w * scale), max(3.0, total_h * scale + 1)))
    x0 = 0
    for index, (cells, _, width) in enumerate(laid):
        for kind, colour in COLOURS.items():
            boxes = [Rectangle((x0 + c, -r - 1), 1, 1) for r, c, k in cells if k == kind]
            if boxes:
                ax.add_collection(
                    PatchCollection(boxes, facecolor=colour, edgecolor="white", linewidth=0.2)
                )
        ax.text(x0 + width / 2, 0.5, f"module {index}", ha="center", va="bottom", fontsize=8)
        x0 += width + 2
    ax.set_xlim(0, max(x0 - 2, 1))
    ax.set_ylim(-total_h - 0.5, 2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        title + "\njob tiles (blue), routing (grey), factories (orange), storage (green)",
        fontsize=8,
    )
    _save(fig, path)


def draw_runs(runs: Mapping[str, PolicyRun], path: str, title: str) -> None:
    """Tile utilization over time, and the distribution of slowdowns, per policy."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7))
    for name, run in runs.items():
        points = run.series["tiles"]
        if points:
            top.step([t for t, _ in points], [u for _, u in points], where="post", label=name)
        slow = sorted(run.slowdowns)
        if slow:
            fraction = [(i + 1) / len(slow) for i in range(len(slow))]
            bottom.step(slow, fraction, where="post", label=name)
    top.set_xlabel("machine time (logical cycles)")
    top.set_ylabel("tile utilization")
    top.set_ylim(0, 1.05)
    top.legend(fontsize=7)
    bottom.set_xscale("log")
    bottom.set_xlabel("slowdown (turnaround / runtime alone)")
    bottom.set_ylabel("fraction of jobs")
    bottom.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
