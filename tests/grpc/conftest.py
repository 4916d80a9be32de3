"""The gRPC tests' server: one real ``qmk serve --http ... --grpc 127.0.0.1:0`` per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("grpc")
pytest.importorskip("grpc_health")
pytest.importorskip("grpc_reflection")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from support.grpc_kernel import connect, grpc_target
from support.http import HttpServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One server (2 workers; JSON-RPC, HTTP and gRPC) per module; it must stop with 0."""
    started = HttpServer(
        tmp_path_factory.mktemp("qmk-grpc"), extra=("--grpc", "127.0.0.1:0")
    ).start()
    yield started
    code = started.stop()
    assert code == 0, started.output()


@pytest.fixture(scope="module")
def target(server: HttpServer) -> str:
    return grpc_target(server)


@pytest.fixture
def alice(target: str) -> Iterator[Any]:
    with connect(target) as client:
        yield client
