"""``python -m qmk.serve``: the kernel process (:func:`qmk.serve.entry`)."""

from qmk.serve import entry

entry()
