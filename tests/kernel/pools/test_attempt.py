"""An attempt crosses to its worker as MessagePack in a pickle; a big program crosses
packed, as the store keeps it, and comes back whole (issue 47: a 99,990-node program's
text, encoded whole on the event loop, held it 18 ms)."""

from __future__ import annotations

import pickle

from qmk.execution.request import RunRequest
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.storage.store import GRAPH_APART, GRAPH_PACKED_AHEAD
from qmk.qvm.graph import compact_text
from support.kernel import chain_graph

REQUEST = RunRequest(program_digest="ab" * 32, shots=10, seed=1)


def test_a_program_short_of_being_packed_ahead_crosses_as_it_is() -> None:
    for nodes in (10, 600):  # small, and kept apart from its row but packed where stored
        text = compact_text(chain_graph(nodes))
        assert len(text) < GRAPH_PACKED_AHEAD
        attempt = Attempt(request=REQUEST, program=text, caps=("CAP_ALLOC",))
        data = pickle.dumps(attempt)
        assert attempt.program.encode() in data
        assert pickle.loads(data) == attempt
    assert len(compact_text(chain_graph(600))) >= GRAPH_APART


def test_a_big_program_crosses_packed_and_comes_back_whole() -> None:
    text = compact_text(chain_graph(5_000))
    assert len(text) >= GRAPH_PACKED_AHEAD
    attempt = Attempt(request=REQUEST, program=text, caps=("CAP_ALLOC",), state_key=b"k")
    data = pickle.dumps(attempt)
    assert len(data) < len(text) / 5
    assert pickle.loads(data) == attempt
