"""Progress bars of long commands (``qmk run``, ``qmk qec threshold``, ``qmk workflow
run``, ``qmk wait``): drawn with rich on stderr when it is a terminal, never otherwise.

A bar is off when stderr is not a TTY (pipes, files, tests, CI) or with ``--quiet``;
the command's output is the same either way, on stdout. rich is one of QMK's
dependencies, imported only when a bar is drawn. ``total`` None draws a spinner with the
elapsed time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TextIO

#: ``update(done, label)``: the bar's count and what it is doing now.
Update = Callable[[int, str], None]


def _ignore(done: int, label: str) -> None:
    return None


def shown(err: TextIO, quiet: bool) -> bool:
    """Whether a bar is drawn on ``err``."""
    return not quiet and bool(getattr(err, "isatty", lambda: False)())


@contextlib.contextmanager
def progress_bar(
    total: int | None, description: str, err: TextIO, *, quiet: bool = False
) -> Iterator[Update]:
    """A bar of ``total`` steps on ``err`` (see the module docstring); yields its update."""
    if not shown(err, quiet):
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(file=err), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, label: str = "") -> None:
            text = f"{description}: {label}" if label else description
            bar.update(task, completed=done, description=text)

        yield update
