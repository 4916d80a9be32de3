"""A real llama-cpp-python server on models the tests write (tests/support/tinyllm.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from support.tinyllm import LlamaServer


def _missing() -> str | None:
    for module in ("llama_cpp", "gguf", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    missing = _missing()
    if missing is not None:
        pytest.skip(
            f"{missing} is not installed (make assist-server, or pip install -e '.[assist-test]')"
        )
    server = LlamaServer(tmp_path_factory.mktemp("llama")).start()
    try:
        yield server
    finally:
        server.stop()
