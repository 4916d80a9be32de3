"""Subcommands of ``qmk`` that live outside :mod:`qmk.cli`, one module per area.

Each module listed in :data:`MODULES` defines ``register(add)``. ``add(name,
help)`` returns a fresh :class:`argparse.ArgumentParser` for the subcommand
(already carrying ``--max-nodes`` and ``--max-bytes``); the module adds its
arguments and calls ``set_defaults(run=handler)``, where
``handler(args, out, err) -> int`` returns the exit status and raises
:class:`qmk.QMKError` for bad input. Modules import their heavy dependencies
inside the handlers, so ``qmk --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module

#: Adds a subcommand: ``add(name, help) -> parser``.
AddCommand = Callable[[str, str], argparse.ArgumentParser]

#: The command modules, in the order their commands appear in ``qmk --help``.
MODULES: tuple[str, ...] = ("estimate", "qec", "service")


def register_all(add: AddCommand) -> None:
    """Let every module in :data:`MODULES` add its subcommands."""
    for name in MODULES:
        import_module(f"qmk.commands.{name}").register(add)
