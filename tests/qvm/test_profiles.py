"""Code families are one table (qmk.qvm.profiles.FAMILIES): every reader of a family's
name takes its aliases, and an unknown name is refused with the closest family."""

from __future__ import annotations

import pytest

from qmk.qvm.profiles import (
    FAMILIES,
    ProfileError,
    closest_family,
    family_name,
    parse_profile,
    unknown_family,
)


def test_every_alias_of_every_family_names_it_in_any_case_and_with_dashes():
    for family in FAMILIES.values():
        for name in (family.name, *family.aliases):
            for spelling in (name, name.upper(), name.lower().replace("_", "-")):
                assert family_name(spelling) == family.name, spelling
                assert parse_profile(f"logical:{spelling}(d=3)").family == family.name


def test_the_qec_schemes_are_keyed_by_the_families_and_read_their_aliases():
    from qmk.qec.codes import SCHEMES, scheme_for

    assert set(SCHEMES) == set(FAMILIES)
    assert scheme_for("surfaceCode", "gate_based") is scheme_for("surface_code", "gate_based")
    assert scheme_for("Honeycomb", "majorana").family == "floquet_code"


def test_the_memory_experiments_read_the_profile_families_aliases():
    pytest.importorskip("stim")
    from qmk.experiments.circuits import experiment_family

    for family in FAMILIES.values():
        for name in (family.name, *family.aliases):
            try:
                assert experiment_family(name) == family.name
            except Exception as exc:  # a family with no experiment says so, by its name
                assert getattr(exc, "code", None) == "QC110", exc


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("surfce_code", "surface_code"),
        ("floquet-cod", "floquet_code"),
        ("bacon_shorr", "bacon_shor"),
    ],
)
def test_a_misspelt_family_is_refused_with_the_closest_one(typo: str, meant: str):
    assert closest_family(typo) == meant
    with pytest.raises(ProfileError, match=f"did you mean '{meant}'") as caught:
        parse_profile(f"logical:{typo}(d=5)")
    assert caught.value.unknown
    assert str(caught.value) == unknown_family(typo)


def test_a_name_close_to_no_family_gets_no_guess():
    assert closest_family("toric") is None
    assert "did you mean" not in unknown_family("toric")


def test_scheme_for_an_unknown_family_is_qc102_with_the_hint():
    from qmk.qec.codes import scheme_for
    from qmk.qec.errors import QECError

    with pytest.raises(QECError) as caught:
        scheme_for("surfce_code", "gate_based")
    assert caught.value.code == "QC102"
    assert "did you mean 'surface_code'?" in str(caught.value)
