"""Code profiles named by programs: ``logical:FAMILY(d=DISTANCE)``.

This module owns the profile *syntax* and the list of code families a program
may name, so the verifier can check profiles without knowing any physics. The
physical model of each family (qubits per logical qubit, cycle time, logical
error rate) lives in ``qmk.qec`` and is keyed by :attr:`Profile.family`.

Family names match case-insensitively and ``-`` equals ``_``, so the original
QMK spellings (``logical:Surface(d=7)``, ``logical:SHYPS(d=9)``) load as they are.

>>> parse_profile("logical:Surface(d=7)")
Profile(family='surface_code', distance=7)
>>> parse_profile("logical:SHYPS(d=9)").family
'SHYPS'
>>> parse_profile("logical:toric(d=3)")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qvm.profiles.ProfileError: unknown code family 'toric'; known: surface_code, ...
>>> parse_profile("logical:surfce_code(d=3)")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qvm.profiles.ProfileError: unknown code family 'surfce_code'; did you mean 'surface_code'? ...

Every other reader of a family's name (the QEC schemes, the estimator's ``qecScheme``,
the memory experiments, ``qmk qec --code``) reads it through :func:`family_name`, and
words its refusal with :func:`unknown_family`, so an alias is the same everywhere.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from qmk.errors import closest


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeFamily:
    """A code family a profile may name."""

    name: str
    aliases: tuple[str, ...]
    description: str
    #: Whether its logical qubits are patches that lattice surgery joins (the shared
    #: machine's tiles and the fault-tolerant layer's layout hold only these).
    patches: bool = False


#: The code families, by canonical name.
FAMILIES: Mapping[str, CodeFamily] = MappingProxyType(
    {
        family.name: family
        for family in (
            CodeFamily(
                name="surface_code",
                aliases=("surface", "rotated_surface_code", "surfaceCode"),
                description="rotated planar surface code",
                patches=True,
            ),
            CodeFamily(
                name="floquet_code",
                aliases=("floquet", "honeycomb", "floquetCode"),
                description="honeycomb Floquet code (for Majorana qubits)",
                patches=True,
            ),
            CodeFamily(
                name="bacon_shor",
                aliases=("baconshor",),
                description="Bacon-Shor subsystem code",
            ),
            CodeFamily(
                name="SHYPS",
                aliases=("shyps",),
                description="SHYPS quantum LDPC code (subsystem hypergraph product simplex)",
            ),
        )
    }
)

#: The families whose logical qubits are patches (:attr:`CodeFamily.patches`).
PATCH_FAMILIES: tuple[str, ...] = tuple(f.name for f in FAMILIES.values() if f.patches)

_LOOKUP: Mapping[str, str] = MappingProxyType(
    {
        key.lower(): family.name
        for family in FAMILIES.values()
        for key in (family.name, *family.aliases)
    }
)


def family_name(name: str) -> str | None:
    """The canonical family ``name`` denotes (its name or an alias, any case), or None.

    Profiles and the estimator's ``qecScheme.name`` both read names through this.

    >>> family_name("surfaceCode"), family_name("Honeycomb"), family_name("toric")
    ('surface_code', 'floquet_code', None)
    """
    return _LOOKUP.get(name.lower().replace("-", "_"))


def closest_family(name: str, *, also: Mapping[str, str] | None = None) -> str | None:
    """The canonical family whose name or alias is closest to ``name``, for a 'did you
    mean' hint; None when none is close.

    Args:
        name: a name that is not a family's.
        also: more names to match, each to the canonical name it stands for (the memory
            experiments' families that no profile names).

    >>> closest_family("surfce_code"), closest_family("Floquet-Cod"), closest_family("toric")
    ('surface_code', 'floquet_code', None)
    >>> closest_family("repetion", also={"repetition": "repetition_code"})
    'repetition_code'
    """
    lookup = {**_LOOKUP, **(also or {})}
    key = name.strip().lower().replace("-", "_")
    match = closest(key, lookup)
    return None if match is None else lookup[match]


def unknown_family(
    name: str, *, known: tuple[str, ...] | None = None, also: Mapping[str, str] | None = None
) -> str:
    """The one-line refusal of an unknown family ``name``, with a 'did you mean' hint.

    Args:
        name: the name given.
        known: the families to list (default: every family of :data:`FAMILIES`).
        also: more names the hint may suggest (see :func:`closest_family`).

    >>> unknown_family("surfaceCod")  # doctest: +ELLIPSIS
    "unknown code family 'surfaceCod'; did you mean 'surface_code'? known: surface_code, ..."
    """
    hint = closest_family(name, also=also)
    listed = ", ".join(FAMILIES if known is None else known)
    return f"unknown code family {name!r}" + (
        f"; did you mean {hint!r}? known: {listed}" if hint else f"; known: {listed}"
    )


#: Distances a profile may name (inclusive).
MIN_DISTANCE = 1
MAX_DISTANCE = 255

_PROFILE = re.compile(r"logical:([A-Za-z][A-Za-z0-9_\-]*)\(([^()]*)\)")
_PARAM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([+-]?[0-9]+)\s*")


class ProfileError(ValueError):
    """A profile string that does not parse (``unknown`` is True for an unknown family)."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """A parsed code profile: a code family at a code distance."""

    family: str
    distance: int

    def __str__(self) -> str:
        return f"logical:{self.family}(d={self.distance})"


@functools.lru_cache(maxsize=1024)
def parse_profile(text: str) -> Profile:
    """Parse ``logical:FAMILY(d=N)``.

    Args:
        text: the profile as a program writes it.

    Returns:
        The profile with the family's canonical name.

    Raises:
        ProfileError: the text does not parse, names an unknown family or
            parameter, or gives a distance out of range.
    """
    match = _PROFILE.fullmatch(text.strip())
    if match is None:
        raise ProfileError(
            f"profile {text!r} does not parse; write logical:FAMILY(d=N), "
            "e.g. logical:surface_code(d=9)"
        )
    raw_family, raw_params = match.groups()
    family = family_name(raw_family)
    if family is None:
        raise ProfileError(unknown_family(raw_family), unknown=True)
    params: dict[str, int] = {}
    for part in raw_params.split(",") if raw_params.strip() else []:
        param = _PARAM.fullmatch(part)
        if param is None:
            raise ProfileError(f"profile {text!r}: parameter {part.strip()!r} is not NAME=INTEGER")
        key, value = param.group(1), int(param.group(2))
        if key in params:
            raise ProfileError(f"profile {text!r}: parameter {key!r} given twice")
        params[key] = value
    unknown = sorted(set(params) - {"d"})
    if unknown:
        raise ProfileError(f"profile {text!r}: unknown parameter {unknown[0]!r}; only d is known")
    if "d" not in params:
        raise ProfileError(
            f"profile {text!r} gives no distance; add d=N, e.g. logical:{raw_family}(d=9)"
        )
    distance = params["d"]
    if not MIN_DISTANCE <= distance <= MAX_DISTANCE:
        raise ProfileError(
            f"profile {text!r}: distance {distance} is outside {MIN_DISTANCE}..{MAX_DISTANCE}"
        )
    return Profile(family=family, distance=distance)
