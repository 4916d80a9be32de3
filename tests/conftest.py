"""What every test process needs before any test module is imported, and how the suite
shares out among parallel workers (``make test`` runs it with ``-n 2 --dist loadgroup``)."""

from __future__ import annotations

import os

import pytest

# gRPC's fork support off before anything imports gRPC (as qmk.grpc sets it): the tests'
# gRPC clients leave gRPC's threads running, and a later test's ``qmk serve``, forked to
# exec, could abort in the child (qmk.grpc.FORK_SUPPORT_ENV says why)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

#: Fixture scopes wider than a test, widest first.
_SHARED_SCOPES = ("session", "package", "module", "class")


def shared_group(item: pytest.Item) -> str | None:
    """The worker group of a test that uses one of the tests' own fixtures wider than a
    test (a server started once for a module, a model server once a run): the folder of
    the conftest that defines a session or package fixture, else the test's module. None
    for a test that shares nothing (pytest's and plugins' own fixtures do not count: they
    cost nothing to make twice)."""
    info = getattr(item, "_fixtureinfo", None)  # doctests have none
    widest: tuple[int, str] | None = None
    for defs in info.name2fixturedefs.values() if info is not None else ():
        fixture = defs[-1]  # the definition this test gets
        if fixture.scope not in _SHARED_SCOPES or not fixture.baseid:
            continue
        rank = _SHARED_SCOPES.index(fixture.scope)
        where = fixture.baseid if rank < 2 else item.nodeid.split("::", 1)[0]
        if widest is None or rank < widest[0]:
            widest = (rank, where)
    return None if widest is None else widest[1]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks this adds
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup``, the tests that share a fixture wider than a test run on
    one worker, so it is made once; the rest are dealt out one by one to whichever worker
    is free (so a slow module does not hold one worker while the other idles)."""
    if getattr(config.option, "dist", "no") != "loadgroup":
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = shared_group(item)
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
