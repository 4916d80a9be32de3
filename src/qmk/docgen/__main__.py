"""``python -m qmk.docgen (--check | --write)``: refresh every generated page of docs/."""

from qmk.docgen import main

raise SystemExit(main())
