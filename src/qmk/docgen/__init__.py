"""Generated regions of the pages in ``docs/``: every table a page shows is rendered here
from the one table in the code that holds the fact (ops, codes, profiles, qubit sets,
schemes, syscall methods, errors).

- :mod:`qmk.docgen.qvm` -- ``docs/qvm.md`` (and the shared region helpers).
- :mod:`qmk.docgen.qec` -- ``docs/qec.md``.
- :mod:`qmk.docgen.abi` -- ``docs/qsyscall.md``.
"""
