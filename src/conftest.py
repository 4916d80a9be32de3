"""The docstring examples of the package read ``examples/...`` as a user in a checkout
would: each doctest runs from the repository's root, wherever pytest was started."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _doctests_run_from_the_repository(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if isinstance(request.node, DoctestItem):
        monkeypatch.chdir(ROOT)
