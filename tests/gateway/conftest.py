"""The gateways' tests start real ``qmk serve --gateway process`` and ``qmk gateway``
processes: they need the http and grpc extras."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("grpc")
