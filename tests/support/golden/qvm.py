"""An example node of a program and its guard (:mod:`qmk.qvm.graph`).

Each is a realistic value, most fields away from their defaults; its JSON is its
struct's golden file (:mod:`support.golden`)."""

from __future__ import annotations

from qmk.qvm.graph import Guard, GuardTerm, Node

NODE = Node(
    id="fix_x",
    op="APPLY_X",
    vqs=("bob",),
    caps=("CAP_TELEPORT",),
    guard=Guard(terms=(GuardTerm(event="m_alice", equals=1),)),
    metadata={"source": "teleport_guards.qasm", "line": 14},
)

#: A conjunction: both of the teleportation's measurements read 1.
GUARD = Guard(
    terms=(GuardTerm(event="m_alice", equals=1), GuardTerm(event="m_bell", equals=1)),
    conjunction=True,
)

TERM = GuardTerm(event="m_bell", equals=0)


#: Every example of this room.
EXAMPLES = (NODE, GUARD, TERM)
