"""The repository's folders, resolved from this file so tests pass from any directory."""

from __future__ import annotations

from pathlib import Path

#: The repository root (where pyproject.toml is).
ROOT = Path(__file__).resolve().parents[2]
#: The example programs, kernel config and service demo.
EXAMPLES = ROOT / "examples"
#: The documentation pages.
DOCS = ROOT / "docs"
#: The package's sources.
SRC = ROOT / "src" / "qmk"
