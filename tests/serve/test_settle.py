"""``qmk serve``'s own start (:mod:`qmk.serve`), apart from its listeners."""

from __future__ import annotations

import gc

from qmk.serve import settle


def test_what_exists_when_serve_settles_is_out_of_the_collectors_reach_until_unfrozen():
    # a floorplan of the kind the shared machine builds at start: lists the collector
    # would walk item by item at every collection of their generation
    floorplan = [[0] * 1024 for _ in range(8)]
    frozen_before = gc.get_freeze_count()
    try:
        settle()
        walked = {id(found) for found in gc.get_objects()}
        assert not walked & {id(floorplan), *map(id, floorplan)}
        assert gc.get_freeze_count() >= frozen_before + len(floorplan) + 1
        made_after = [[1]]  # what comes later is the collector's as before
        assert id(made_after) in {id(found) for found in gc.get_objects()}
    finally:
        gc.unfreeze()  # this test process goes on: give the collector its objects back
    assert id(floorplan) in {id(found) for found in gc.get_objects()}
