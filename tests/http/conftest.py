"""The HTTP tests' server: one real ``qmk serve --http`` per module (tests/support/http.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx

from support.http import HttpServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One server (2 workers) shared by the tests of a module; it must stop with exit 0."""
    started = HttpServer(tmp_path_factory.mktemp("qmk-http")).start()
    yield started
    code = started.stop()
    assert code == 0, started.output()


@pytest.fixture
def client(server: HttpServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http
