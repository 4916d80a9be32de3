"""The ``qmk`` command run in-process, as the tests of every command drive it."""

from __future__ import annotations

import io

from qmk.cli import main


def qmk(*argv: str) -> tuple[int, str, str]:
    """Run ``qmk ARGV...`` through :func:`qmk.cli.main`: its exit status, stdout and stderr.

    >>> qmk("validate", "/nonexistent/bell.qvm.json")  # doctest: +ELLIPSIS
    (2, '', 'QF001 unreadable-file: /nonexistent/bell.qvm.json: ...\\n')
    """
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()
