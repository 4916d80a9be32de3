"""The layout compiler: logical qubits as patches on a grid of tiles, with routing space,
in the blocks of Litinski's "A Game of Surface Codes" (arXiv:1808.02892, Sec. 3), and
the T factories beside them.

A tile holds one patch of the code at distance ``d`` (its physical qubits are the
code's ``physicalQubitsPerLogicalQubit``). The three blocks for ``n`` data qubits:

=============  ============================  =============================================
block          tiles                         drawn as
=============  ============================  =============================================
compact        ``ceil(1.5 n) + 3``           two rows of one-tile patches around a routing
                                             row (3 more routing tiles at its ends)
intermediate   ``2 n + 4``                   a row of one-tile patches between routing
                                             tiles: a row above, one tile at each end
fast           ``2 n + ceil(sqrt(8 n)) + 1`` two-tile patches (X and Z boundaries both
                                             reachable) in rows, a routing row through them
                                             and a routing column beside; the tiles left
                                             over extend the routing row towards the
                                             factories
=============  ============================  =============================================

The fast block's count is the estimator's (``2Q + ceil(sqrt(8Q)) + 1`` logical qubits,
:mod:`qmk.estimate.search`), so its physical qubits equal ``physicalQubitsForAlgorithm``.
The drawing places that many tiles; it does not claim every patch touches the routing
region: the schedule (:mod:`qmk.ft.schedule`) treats a block's routing region as one
shared bus, one multi-patch measurement at a time, as Litinski's blocks and the
estimator's sequential Pauli computation do.

>>> [block_tiles(b, 10) for b in BLOCKS]
[18, 24, 30]
>>> layout_block("intermediate", 3).text().splitlines()
['.....', '.012.']
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qmk.ft.errors import FTError

if TYPE_CHECKING:
    from qmk.ft.model import Factory, FTModel

#: The blocks, least space first (least time last).
BLOCKS = ("compact", "intermediate", "fast")
#: A data patch's label, by qubit index (then ``#``).
LABELS = string.digits + string.ascii_lowercase + string.ascii_uppercase
ROUTING = "."
FACTORY = "F"
EMPTY = " "

Tile = tuple[int, int]


def block_tiles(block: str, n: int) -> int:
    """Litinski's tile count of ``block`` for ``n`` data qubits (the module's table)."""
    if block == "compact":
        return math.ceil(1.5 * n) + 3
    if block == "intermediate":
        return 2 * n + 4
    if block == "fast":
        return 2 * n + math.ceil(math.sqrt(float(8 * n))) + 1
    raise FTError.of("bad-block", f"no block {block!r}; known: {', '.join(BLOCKS)}")


def label(qubit: int) -> str:
    return LABELS[qubit] if qubit < len(LABELS) else "#"


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Patches, routing and factories on a grid (row 0 on top).

    Attributes:
        block: the block's name.
        n: data qubits.
        patches: the tiles of each data qubit's patch, by qubit index.
        routing: the routing tiles.
        factories: the tiles of each factory copy (beside the block).
        width, height: the grid's size, factories included.
        patch_qubits: physical qubits per tile (0 when drawn without a model).
        factory_qubits: physical qubits of one factory copy (0: none).
    """

    block: str
    n: int
    patches: tuple[tuple[Tile, ...], ...]
    routing: tuple[Tile, ...]
    factories: tuple[tuple[Tile, ...], ...] = ()
    width: int
    height: int
    patch_qubits: int = 0
    factory_qubits: int = 0
    qubit_names: tuple[str, ...] = field(default=())

    @property
    def tiles(self) -> int:
        """The block's tiles: data patches and routing (factories apart)."""
        return sum(len(p) for p in self.patches) + len(self.routing)

    @property
    def factory_tiles(self) -> int:
        return sum(len(f) for f in self.factories)

    @property
    def physical_qubits(self) -> int:
        """The block's tiles at ``patch_qubits`` each, plus each factory copy's qubits."""
        return self.tiles * self.patch_qubits + len(self.factories) * self.factory_qubits

    def grid(self) -> list[list[str]]:
        rows = [[EMPTY] * self.width for _ in range(self.height)]
        for r, c in self.routing:
            rows[r][c] = ROUTING
        for q, tiles in enumerate(self.patches):
            for r, c in tiles:
                rows[r][c] = label(q)
        for tiles in self.factories:
            for r, c in tiles:
                rows[r][c] = FACTORY
        return rows

    def text(self) -> str:
        """The grid as characters: a qubit's label per data tile, ``.`` routing, ``F``
        factory tiles, blank no tile."""
        return "\n".join("".join(row).rstrip() for row in self.grid())

    def legend(self) -> str:
        names = self.qubit_names or tuple(f"q{i}" for i in range(self.n))
        shown = ", ".join(f"{label(i)}={name}" for i, name in enumerate(names[: len(LABELS)]))
        more = f", # = the other {len(names) - len(LABELS)}" if len(names) > len(LABELS) else ""
        return f"data patches: {shown}{more}; {ROUTING} routing; {FACTORY} T factory"

    def to_json(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "data_qubits": self.n,
            "tiles": self.tiles,
            "data_tiles": sum(len(p) for p in self.patches),
            "routing_tiles": len(self.routing),
            "factory_copies": len(self.factories),
            "factory_tiles": self.factory_tiles,
            "width": self.width,
            "height": self.height,
            "patch_qubits": self.patch_qubits,
            "factory_qubits": self.factory_qubits,
            "physical_qubits": self.physical_qubits,
            "grid": ["".join(row) for row in self.grid()],
        }


_Built = tuple[list[tuple[Tile, ...]], list[Tile], int, int]


def _compact(n: int) -> _Built:
    k = math.ceil(n / 2)
    patches: list[tuple[Tile, ...]] = [((0, 1 + i),) for i in range(k)]
    patches += [((2, 1 + i),) for i in range(n - k)]
    routing = [(1, c) for c in range(k + 3)]
    return patches, routing, 3, k + 3


def _intermediate(n: int) -> _Built:
    patches: list[tuple[Tile, ...]] = [((1, 1 + i),) for i in range(n)]
    routing = [(0, c) for c in range(n + 2)] + [(1, 0), (1, n + 1)]
    return patches, routing, 2, n + 2


def _fast(n: int) -> _Built:
    target = math.ceil(math.sqrt(float(8 * n))) + 1
    # patches per row p: the least routing (a column of rows+1, a row of 2p) that fits
    per_row = min(range(1, n + 1), key=lambda p: (2 * p + math.ceil(n / p), p))
    data_rows = math.ceil(n / per_row)
    top = math.ceil(data_rows / 2)
    middle = top  # the routing row's index
    rows = [r for r in range(data_rows + 1) if r != middle]
    patches: list[tuple[Tile, ...]] = []
    for q in range(n):
        r, j = rows[q // per_row], q % per_row
        patches.append(((r, 1 + 2 * j), (r, 2 + 2 * j)))
    routing = [(r, 0) for r in range(data_rows + 1)]
    extra = target - (data_rows + 1)
    routing += [(middle, 1 + c) for c in range(extra)]
    return patches, routing, data_rows + 1, max(1 + extra, 1 + 2 * per_row)


def layout_block(
    block: str,
    n: int,
    *,
    factory: Factory | None = None,
    patch_qubits: int = 0,
    qubit_names: Sequence[str] = (),
) -> Layout:
    """``n`` data qubits in ``block``, with ``factory``'s copies beside it: to the right,
    in a near-square grid, each copy a near-square of ``ceil(factory qubits /
    patch_qubits)`` tiles, one blank tile apart.

    Raises:
        FTError: ``QP107`` an unknown block.
    """
    builders = {"compact": _compact, "intermediate": _intermediate, "fast": _fast}
    if block not in builders:
        raise FTError.of("bad-block", f"no block {block!r}; known: {', '.join(BLOCKS)}")
    patches, routing, height, width = builders[block](max(n, 0))
    factories: list[tuple[Tile, ...]] = []
    if factory is not None and factory.copies > 0 and patch_qubits > 0:
        size = math.ceil(factory.physical_qubits / patch_qubits)
        side = math.ceil(math.sqrt(size))  # each copy a near-square of `size` tiles
        rows_of = math.ceil(size / side)
        per_row = math.ceil(math.sqrt(factory.copies))  # the copies in a near-square grid
        origin = width + 1
        for copy in range(factory.copies):
            top = (copy // per_row) * (rows_of + 1)
            left = origin + (copy % per_row) * (side + 1)
            factories.append(tuple((top + i // side, left + i % side) for i in range(size)))
        width = max(width, max(c for f in factories for _, c in f) + 1)
        height = max(height, max(r for f in factories for r, _ in f) + 1)
    return Layout(
        block=block,
        n=n,
        patches=tuple(patches),
        routing=tuple(routing),
        factories=tuple(factories),
        width=width,
        height=height,
        patch_qubits=patch_qubits,
        factory_qubits=factory.physical_qubits if factory is not None else 0,
        qubit_names=tuple(qubit_names),
    )


def layout_for(model: FTModel, block: str, qubit_names: Sequence[str]) -> Layout:
    """The layout of a program's qubits with ``model``'s patch size and factories."""
    return layout_block(
        block,
        len(qubit_names),
        factory=model.factory,
        patch_qubits=model.patch_qubits,
        qubit_names=qubit_names,
    )


def draw_png(layout: Layout, path: str, title: str) -> None:
    """Draw ``layout`` into a PNG (matplotlib; ``QP106`` when it is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError:
        raise FTError.of(
            "plot-unavailable", "--png needs matplotlib: pip install 'quantum-microkernel[plot]'"
        ) from None
    scale = 0.35
    fig, ax = plt.subplots(
        figsize=(max(4.0, layout.width * scale), max(2.0, layout.height * scale + 1))
    )

    def box(tiles: Sequence[Tile], color: str, text: str = "") -> None:
        rows = [r for r, _ in tiles]
        cols = [c for _, c in tiles]
        for r, c in tiles:
            ax.add_patch(Rectangle((c, -r - 1), 1, 1, facecolor=color, edgecolor="white", lw=0.5))
        if text:
            x = (min(cols) + max(cols) + 1) / 2
            y = -(min(rows) + max(rows) + 1) / 2
            ax.text(x, y, text, ha="center", va="center", fontsize=7)

    for tile in layout.routing:
        box((tile,), "#d9d9d9")
    for q, tiles in enumerate(layout.patches):
        name = layout.qubit_names[q] if q < len(layout.qubit_names) else label(q)
        box(tiles, "#7fb3d5", name)
    for i, tiles in enumerate(layout.factories):
        box(tiles, "#f5b041", f"F{i}")
    ax.set_xlim(0, layout.width)
    ax.set_ylim(-layout.height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as exc:
        from qmk.qvm.errors import unwritable

        raise unwritable(path, exc) from None
    finally:
        plt.close(fig)
