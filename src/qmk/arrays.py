"""NumPy idioms the program forms share, each written once.

:func:`distinct` is ``np.unique(values)`` without ``numpy.ma``: NumPy's hashing path
asks whether its input is a masked array, and that first question imports ``numpy.ma``,
tens of milliseconds in a fresh ``qmk run`` that never uses it. The sorting path (what
``return_counts`` takes) imports nothing.

>>> import numpy as np
>>> distinct(np.array([3, 1, 3, 2])).tolist()
[1, 2, 3]
>>> has_repeats(np.array([3, 1, 2])), has_repeats(np.array([3, 1, 3]))
(False, True)
"""

from __future__ import annotations

import numpy as np


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a 1-D array (``np.unique``'s answer)."""
    return np.unique(values, return_counts=True)[0]


def few_distinct(values: np.ndarray, passes: int = 32) -> np.ndarray:
    """:func:`distinct` of ``values``, found by one pass over what is left for each of
    its first ``passes`` values, then by sorting the rest: a million values of a few
    kinds cost a few passes, not a sort.

    >>> few_distinct(np.array([2.0, 1.0, 2.0, 2.0])).tolist()
    [1.0, 2.0]
    """
    found: list[np.generic] = []
    left = values
    while len(left) and len(found) < passes:
        found.append(left[0])
        left = left[left != left[0]]
    return distinct(np.concatenate([np.array(found, dtype=values.dtype), left]))


def has_repeats(values: np.ndarray) -> bool:
    """Whether a 1-D array holds some value twice."""
    ordered = np.sort(values)
    return bool((ordered[1:] == ordered[:-1]).any())


__all__ = ["distinct", "few_distinct", "has_repeats"]
