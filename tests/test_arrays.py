"""qmk.arrays: each idiom gives NumPy's own answer."""

import numpy as np
import pytest

from qmk.arrays import few_distinct


@pytest.mark.parametrize("kinds", [1, 3, 31, 32, 33, 500])
def test_few_distinct_is_numpys_unique_for_any_number_of_values(kinds: int) -> None:
    rng = np.random.default_rng(76)
    values = rng.choice(rng.random(kinds) * 100, size=20_000)
    assert np.array_equal(few_distinct(values), np.unique(values))


def test_few_distinct_keeps_one_nan_and_empty_input_as_numpy_does() -> None:
    values = np.array([np.nan, 2.0, np.nan, 1.0, 2.0])
    assert np.array_equal(few_distinct(values), np.unique(values), equal_nan=True)
    assert few_distinct(np.zeros(0)).tolist() == []
