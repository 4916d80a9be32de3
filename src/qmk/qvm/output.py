"""How a program's results are written: the optional ``metadata.output`` layout.

By default an outcome string lists the graph's events in ``resources.events``
order, first event leftmost. A program lowered from another language can ask for
that language's own keys instead with ``metadata.output``::

    {"groups": [["m3", "m2", null], ["m1", "m0"]], "separator": " "}

Each group is one run of characters, written left to right: an event's outcome
(0 or 1), or ``"0"`` for ``null`` (a classical bit that nothing wrote). A group may
instead be an integer, written in decimal: ``{"int": [e0, e1, ...], "signed": true}``
lists its bits' events least significant first (a run-time value's events: QIR's
``int_record_output``); ``signed`` reads them as two's complement. Groups are
joined by ``separator``. The OpenQASM and Qiskit front-ends use it to produce the
keys Qiskit gives (registers in reverse declaration order, bit 0 rightmost); the
QIR front-end writes recorded results in recording order, first leftmost.

>>> layout = OutputLayout.from_json({"groups": [["b", None], ["a"]]}, events=("a", "b"))
>>> layout.columns, layout.widths
((1, None, 0), (2, 1))
>>> layout.key("10")  # a=1, b=0
'00 1'
>>> signed = {"groups": [{"int": ["a", "b"], "signed": True}]}
>>> OutputLayout.from_json(signed, events=("a", "b")).key("01")  # a=0, b=1: -2
'-2'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qmk.qvm.errors import FormatError


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputLayout:
    """Where each character of an outcome key comes from.

    Attributes:
        columns: for each character (left to right, separators left out), the index
            of its event in the program's event order, or None for a constant 0.
        widths: how many characters each group has.
        separator: the text between groups.
    """

    columns: tuple[int | None, ...]
    widths: tuple[int, ...]
    separator: str = " "
    #: Per group: "" (its characters as they are), "int" or "uint" (its characters,
    #: most significant first, written as a decimal number).
    formats: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, *, events: Sequence[str]) -> OutputLayout:
        """The layout from ``metadata.output`` of a graph whose events are ``events``.

        Raises:
            FormatError: a malformed layout or one naming an undeclared event.
        """
        where = "metadata.output"
        if not isinstance(data, Mapping):
            raise _bad(f"{where} must be an object with 'groups', got {type(data).__name__}")
        unknown = sorted(set(data) - {"groups", "separator"})
        if unknown:
            raise _bad(f"{where} has unknown key {unknown[0]!r} (allowed: groups, separator)")
        groups = data.get("groups")
        separator = data.get("separator", " ")
        if not isinstance(separator, str) or "\n" in separator:
            raise _bad(f"{where}.separator must be a one-line string")
        if not isinstance(groups, list):
            raise _bad(f"{where}.groups must be a list of lists of event names or null")
        index = {name: i for i, name in enumerate(events)}
        columns: list[int | None] = []
        formats: list[str] = []
        widths: list[int] = []
        for g, raw in enumerate(groups):
            group, fmt = _group(raw, f"{where}.groups[{g}]")
            formats.append(fmt)
            widths.append(len(group))
            for k, name in enumerate(group):
                if name is None:
                    columns.append(None)
                elif isinstance(name, str) and name in index:
                    columns.append(index[name])
                else:
                    raise _bad(
                        f"{where}.groups[{g}][{k}] must name a declared event or be null, "
                        f"got {name!r}"
                    )
        return cls(
            columns=tuple(columns),
            widths=tuple(widths),
            separator=separator,
            formats=tuple(formats) if any(formats) else (),
        )

    def key(self, outcome: str) -> str:
        """The key for one shot, given its outcome string in event order."""
        chars = "".join("0" if c is None else outcome[c] for c in self.columns)
        return self.split(chars)

    def split(self, chars: str) -> str:
        """``chars`` (one per column) cut into groups and joined by the separator."""
        parts = []
        start = 0
        for g, width in enumerate(self.widths):
            part = chars[start : start + width]
            fmt = self.formats[g] if self.formats else ""
            if fmt and part:
                value = int(part, 2)
                if fmt == "int" and part[0] == "1":
                    value -= 1 << width
                part = str(value)
            parts.append(part)
            start += width
        return self.separator.join(parts)


def _group(raw: Any, where: str) -> tuple[list[Any], str]:
    """A group's events in column order (an integer's most significant first) and its
    format."""
    if isinstance(raw, list):
        return raw, ""
    if isinstance(raw, Mapping) and isinstance(raw.get("int"), list):
        unknown = sorted(set(raw) - {"int", "signed"})
        signed = raw.get("signed", False)
        if unknown or not isinstance(signed, bool) or not raw["int"]:
            raise _bad(
                f"{where} must be {{'int': [events, least significant first], 'signed': bool}}"
            )
        return list(reversed(raw["int"])), "int" if signed else "uint"
    raise _bad(f"{where} must be a list of event names or null, or an integer group")


def _bad(message: str) -> FormatError:
    return FormatError.of("bad-value", message)


def layout_of(metadata: Mapping[str, Any] | None, events: Sequence[str]) -> OutputLayout | None:
    """The graph's output layout, or None when it has none (keys in event order)."""
    if not metadata or "output" not in metadata:
        return None
    return OutputLayout.from_json(metadata["output"], events=events)
