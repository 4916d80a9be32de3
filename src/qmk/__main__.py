"""``python -m qmk`` runs the ``qmk`` command."""

from qmk.cli import entry

entry()
