"""Front-end tests: every test that takes ``qiskit_program`` runs once per shared circuit.

The helpers live in :mod:`support.frontends`.
"""

from __future__ import annotations

import pytest

from support.frontends import qiskit_programs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``qiskit_program`` (label, factory) with :func:`qiskit_programs`."""
    if "qiskit_program" in metafunc.fixturenames:
        progs = qiskit_programs()
        metafunc.parametrize("qiskit_program", progs, ids=[label for label, _ in progs])
