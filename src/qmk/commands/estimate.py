"""The ``qmk`` subcommands of this area (see :mod:`qmk.commands`)."""

from __future__ import annotations

from qmk.commands import AddCommand


def register(add: AddCommand) -> None:
    """Add this area's subcommands."""
