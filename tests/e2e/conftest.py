"""Fixtures that run a real ``qmk serve`` process on a real Unix socket.

``serve(name, workers=, physical_qubits=, kernel=, tenants=, env=)`` writes the TOML
config into a temporary directory, starts ``python -m qmk serve``, waits for the socket
to appear (it appears only once the server listens), and on teardown sends SIGTERM and
checks that the process exits 0 and removes its socket. The harness itself lives in
tests/support/kernel.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.kernel import ServeFactory, ServerProcess, serve_factory, stop_all


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """Start ``qmk serve`` processes; each is SIGTERMed and checked at teardown."""
    factory, started = serve_factory(tmp_path)
    yield factory
    stop_all(started)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server (2 workers) shared by the tests of a module."""
    factory, started = serve_factory(tmp_path_factory.mktemp("qmk"))
    yield factory()
    stop_all(started)
