"""Drawing shots from a distribution over a whole state: the statevector engine's sampler,
shared by the engines that hold a dense state in numpy (the segment adapters).

:func:`draw_indices` picks, for each of ``shots`` uniform numbers of one RNG call, the
index the inverse cumulative distribution gives, without a probability array or a
cumulative sum over the whole state where the state is large (two levels: a block, then
a position in it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: Entries per chunk of a pass over a state (a few chunks fit in a core's cache).
CHUNK = 1 << 15
#: Below this many entries a distribution is sampled with one cumulative sum.
FLAT_SAMPLING = 1 << 16


def block_width(size: int, shots: int) -> int:
    """Entries per block of :func:`draw_indices` on ``size`` (a power of two, above
    :data:`FLAT_SAMPLING`) for ``shots`` draws: the power of two nearest
    ``sqrt(size / shots)`` (the block sums, ``size / width``, against the chosen
    blocks' entries, at most ``shots * width``), from 16 up to ``sqrt(size)``.

    >>> block_width(1 << 24, 1000), block_width(1 << 20, 1000), block_width(1 << 17, 10**6)
    (128, 32, 16)
    """
    n = size.bit_length() - 1
    best = round(math.log2(max(size / max(shots, 1), 1.0)) / 2)
    return 1 << max(4, min(best, n // 2))


def draw_indices(
    rng: np.random.Generator, values: np.ndarray, shots: int, *, amplitudes: bool = False
) -> np.ndarray:
    """``shots`` indices drawn with one call of ``rng`` from ``values`` (contiguous): unnormalised
    probabilities, or amplitudes whose squared magnitudes are (``amplitudes``).

    Large distributions are sampled in two levels (a block, then a position in it),
    so only the blocks that some shot lands in are summed cumulatively. The blocks
    are narrow (:func:`block_width`: about ``sqrt(size / shots)`` entries), so the
    block sums and the chosen blocks' entries cost about the same. Neither a
    probability array nor its cumulative sum over the whole state is ever made:
    amplitudes are squared and summed a cache-sized chunk at a time (one read of
    the state). A draw picks, up to rounding, the index the one cumulative sum of
    the small path would pick for the same random number.
    """
    size = len(values)
    if shots == 0:
        return np.zeros(0, dtype=np.int64)
    if size <= FLAT_SAMPLING:
        probs = np.abs(values) ** 2 if amplitudes else values
        cdf = np.cumsum(probs, dtype=np.float64)
        draws = rng.random(shots) * cdf[-1]
        return np.minimum(np.searchsorted(cdf, draws, side="right"), size - 1)
    width = block_width(size, shots)
    blocks = values.reshape(-1, width)
    if amplitudes:  # |a|^2 summed as re^2 + im^2 over the block's interleaved reals
        reals = values.view(values.real.dtype).reshape(-1, 2 * width)
        block_weights = np.empty(len(reals), dtype=np.float64)
        rows = max(1, CHUNK // width)
        for start in range(0, len(reals), rows):
            part = reals[start : start + rows]
            block_weights[start : start + rows] = np.einsum("ij,ij->i", part, part)
    else:
        block_weights = blocks.sum(axis=1, dtype=np.float64)
    return draw_from_blocks(
        rng, block_weights, width, shots, lambda used: blocks[used], amplitudes=amplitudes
    )


def draw_from_blocks(
    rng: np.random.Generator,
    block_weights: np.ndarray,
    width: int,
    shots: int,
    fetch: Callable[[np.ndarray], np.ndarray],
    *,
    amplitudes: bool = False,
) -> np.ndarray:
    """The second level of :func:`draw_indices`, given each block's total weight
    (``block_weights``: blocks of ``width`` entries, in order): ``shots`` indices drawn
    with one call of ``rng``. ``fetch(used)`` returns the entries of the blocks ``used``
    (sorted block numbers) as a ``(len(used), width)`` array, so the state itself may
    live elsewhere (a GPU engine sums its blocks there and sends only these).
    """
    block_cdf = np.cumsum(block_weights)
    draws = rng.random(shots) * block_cdf[-1]
    chosen = np.minimum(np.searchsorted(block_cdf, draws, side="right"), len(block_cdf) - 1)
    within = draws - (block_cdf[chosen] - block_weights[chosen])
    used, which = np.unique(chosen, return_inverse=True)
    picked = np.asarray(fetch(used))
    if amplitudes:
        picked = picked.real.astype(np.float64) ** 2 + picked.imag.astype(np.float64) ** 2
    cdfs = np.cumsum(picked, axis=1, dtype=np.float64)
    scale = np.maximum(cdfs[:, -1:], np.finfo(np.float64).tiny)
    flat = (cdfs / scale + np.arange(len(used))[:, None]).reshape(-1)
    key = np.clip(within / scale[which, 0], 0.0, np.nextafter(1.0, 0.0)) + which
    position = np.searchsorted(flat, key, side="right") - which * width
    return chosen * width + np.clip(position, 0, width - 1)


__all__ = ["CHUNK", "FLAT_SAMPLING", "block_width", "draw_from_blocks", "draw_indices"]
