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


def has_repeats(values: np.ndarray) -> bool:
    """Whether a 1-D array holds some value twice."""
    ordered = np.sort(values)
    return bool((ordered[1:] == ordered[:-1]).any())


__all__ = ["distinct", "has_repeats"]
