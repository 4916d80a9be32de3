"""Generated regions of the pages in ``docs/``: every table a page shows is rendered from
the one table in the code that holds the fact (ops, codes, profiles, qubit sets,
schemes, syscall methods, errors).

A page is written by hand except for regions between ``<!-- BEGIN GENERATED: NAME -->``
and ``<!-- END GENERATED: NAME -->``, which :meth:`Page.update` fills with fresh
renderings. One command refreshes every page::

    python -m qmk.docgen --check    # exit 1 (one line per page) when a page drifted
    python -m qmk.docgen --write    # refresh them in place

Each page's renderers live in its own module, listed in :data:`PAGES`:

- :mod:`qmk.docgen.qvm` -- ``docs/qvm.md``: ops, codes, capabilities, families, assembly.
- :mod:`qmk.docgen.qec` -- ``docs/qec.md``: qubit sets, schemes, op cycles, QC codes.
- :mod:`qmk.docgen.abi` -- ``docs/qsyscall.md``: methods and wire errors.
- :mod:`qmk.docgen.errors` -- ``docs/errors.md``: every code and the exception tree.
- :mod:`qmk.docgen.engines` -- ``docs/engines.md``: the engine registry and cost models.
- :mod:`qmk.docgen.frontends` -- ``docs/frontends.md``: what each op becomes in OpenQASM 3.
- :mod:`qmk.docgen.neutral_atom` -- ``docs/neutral-atom.md``: the ISA's ops and gates, the
  validators, the presets, QD codes.

>>> text = "intro\\n<!-- BEGIN GENERATED: t -->\\nstale\\n<!-- END GENERATED: t -->\\n"
>>> print(replace_region(text, "t", table(("A", "B"), [("1", cell("x|y"))])))
intro
<!-- BEGIN GENERATED: t -->
| A | B |
|---|---|
| 1 | x\\|y |
<!-- END GENERATED: t -->
<BLANKLINE>
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

#: The page modules, in the order the command reports them.
PAGES: tuple[str, ...] = (
    "qmk.docgen.qvm",
    "qmk.docgen.qec",
    "qmk.docgen.abi",
    "qmk.docgen.errors",
    "qmk.docgen.engines",
    "qmk.docgen.frontends",
    "qmk.docgen.neutral_atom",
)

#: The command that refreshes every page, for drift messages.
REGENERATE = "python -m qmk.docgen --write"

#: What an empty cell shows.
NO = "—"


def cell(text: str) -> str:
    """Text made safe inside a markdown table cell (``|0>`` must not split the row).

    >>> print(cell("|0> or <1|"))
    \\|0> or &lt;1\\|
    """
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def begin_marker(name: str) -> str:
    """The line that opens generated region ``name``."""
    return f"<!-- BEGIN GENERATED: {name} -->"


def end_marker(name: str) -> str:
    """The line that closes generated region ``name``."""
    return f"<!-- END GENERATED: {name} -->"


def replace_region(text: str, name: str, body: str) -> str:
    """``text`` with the body of generated region ``name`` replaced by ``body``.

    Raises:
        ValueError: the region's markers are missing, repeated or out of order.
    """
    begin, end = begin_marker(name), end_marker(name)
    for marker in (begin, end):
        count = text.count(marker)
        if count != 1:
            problem = "missing" if count == 0 else f"repeated {count} times"
            raise ValueError(f"marker {marker!r} is {problem}")
    start = text.index(begin) + len(begin)
    stop = text.index(end)
    if stop < start:
        raise ValueError(f"marker {end!r} comes before {begin!r}")
    return f"{text[:start]}\n{body}\n{text[stop:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """A page of ``docs/`` with generated regions.

    Attributes:
        name: its file name in ``docs/``, e.g. ``"qvm.md"``.
        renderers: each region's marker name, with the function that renders its body.
        tables: what the regions are rendered from, for drift messages.
    """

    name: str
    renderers: Mapping[str, Callable[[], str]]
    tables: str

    def update(self, text: str, *, regions: Iterable[str] | None = None) -> str:
        """``text`` with every generated region (or those named) rendered afresh.

        Raises:
            ValueError: a region's markers are missing, repeated or out of order.
        """
        for name in self.renderers if regions is None else regions:
            text = replace_region(text, name, self.renderers[name]())
        return text


def pages() -> dict[str, Page]:
    """Every page, by file name (importing each page module)."""
    found = [import_module(module).PAGE for module in PAGES]
    return {page.name: page for page in found}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qmk.docgen (--check | --write) [--docs DIR] [PAGE ...]``.

    Returns:
        The exit status: 0; 1 when ``--check`` finds a page out of date (one line each);
        2 when a page cannot be read, lacks a marker, or is not a generated page.
    """
    parser = argparse.ArgumentParser(
        prog="python -m qmk.docgen", description="Refresh the generated tables of docs/."
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if a page is stale")
    mode.add_argument("--write", action="store_true", help="refresh the pages in place")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs folder (docs)")
    parser.add_argument("pages", nargs="*", metavar="PAGE", help="pages to refresh (all)")
    options = parser.parse_args(argv)
    known = pages()
    unknown = [name for name in options.pages if name not in known]
    if unknown:
        print(f"{unknown[0]}: not a generated page; pages: {', '.join(known)}", file=sys.stderr)
        return 2
    status = 0
    for name in options.pages or known:
        page, path = known[name], options.docs / name
        try:
            text = path.read_text(encoding="utf-8")
            fresh = page.update(text)
        except (OSError, ValueError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            status = 2
            continue
        if fresh == text:
            continue
        if options.write:
            path.write_text(fresh, encoding="utf-8")
        else:
            print(
                f"{path} is out of date with the {page.tables}; run: {REGENERATE}", file=sys.stderr
            )
            status = max(status, 1)
    return status
