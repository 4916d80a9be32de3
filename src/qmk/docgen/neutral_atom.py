"""Render the generated tables of ``docs/neutral-atom.md`` from the neutral-atom tables.

The ISA's ops and gates (:data:`qmk.devices.neutral_atom.isa.OPS`, ``GATES``), the
validator registry, the shipped presets and the ``QD`` codes. The page is hand-written
except for these regions, which ``python -m qmk.docgen --write`` refreshes.

>>> render_ops().splitlines()[0]
'| Op | Fields | Since | What it does |'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qmk.devices.neutral_atom.isa import GATES, OPS
from qmk.devices.neutral_atom.profiles import load_profile, presets
from qmk.devices.neutral_atom.validate import VALIDATORS
from qmk.docgen import NO, Page, cell, table
from qmk.docgen import errors as error_doc


def render_ops() -> str:
    """One row per instruction: its wire fields (``?``: optional), version, meaning."""
    rows = []
    for spec in OPS.values():
        fields = ", ".join(
            f"`{f.name}`{'?' if not f.required else ''} ({f.type.value}"
            + (f", since {f.since}" if f.since > spec.since else "")
            + ")"
            for f in spec.fields
        )
        rows.append((f"`{spec.name}`", cell(fields), str(spec.since), cell(spec.description)))
    return table(("Op", "Fields", "Since", "What it does"), rows)


def render_gates() -> str:
    """One row per gate: arity, parameters, version, Clifford-ness, engine gates."""
    rows = []
    for g in GATES.values():
        clifford = (
            "yes"
            if g.is_clifford((0.0,) * len(g.params)) and not g.params
            else ("at quarter turns" if g.params else "no")
        )
        lowered = " ".join(
            name + (f"({', '.join(g.params[i] for i in picks)})" if picks else "")
            for name, picks in g.lower
        )
        rows.append(
            (
                f"`{g.name}`",
                str(g.arity),
                ", ".join(g.params) or NO,
                str(g.since),
                clifford,
                f"`{lowered}`",
                cell(g.description),
            )
        )
    return table(
        ("Gate", "Atoms", "Params (rad)", "Since", "Clifford", "Engine gates", "What it is"), rows
    )


def render_validators() -> str:
    """The validator registry, in the order the checks run."""
    rows = [
        (f"`{v.name}`", ", ".join(f"`{c}`" for c in v.codes), v.phase, cell(v.description))
        for v in VALIDATORS.values()
    ]
    return table(("Validator", "Codes", "Runs on", "What it checks"), rows)


def render_presets() -> str:
    """The shipped presets."""
    rows = []
    for name in presets():
        p = load_profile(name)
        hw = p.hardware
        rows.append(
            (
                f"`{name}`",
                f"{len(hw.sites)} / {len(hw.site_ids)}",
                f"{hw.neighbour_distance:g}",
                f"{hw.blockade.radius:g}",
                ", ".join(c.name for c in p.configurations) or NO,
                "none" if p.noise.is_noiseless else ("T1, " if p.noise.has_damping else "") + "yes",
                cell(p.description),
            )
        )
    return table(
        (
            "Preset",
            "Sites / atoms",
            "Spacing (um)",
            "Blockade (um)",
            "Configurations",
            "Noise",
            "What it is",
        ),
        rows,
    )


def render_codes() -> str:
    """The QD error codes."""
    return error_doc.render_codes(("QD",), ("Code", "Name", "What it means", "What to do"))


#: Each generated region of docs/neutral-atom.md, by marker name, with its renderer.
RENDERERS: Mapping[str, Callable[[], str]] = {
    "na-ops": render_ops,
    "na-gates": render_gates,
    "na-validators": render_validators,
    "na-presets": render_presets,
    "na-codes": render_codes,
}

PAGE = Page(
    name="neutral-atom.md",
    renderers=RENDERERS,
    tables="neutral-atom ISA, validator and preset tables",
)
