"""The door: the one guarded path from every wire to the kernel's syscalls.

Every wire (the JSON-RPC socket, REST and its Server-Sent Events, gRPC, GraphQL, the web
console, the assistant's tools) translates its protocol into calls of one
:class:`Door`, and the door alone keeps the guards, so a wire cannot forget one and a
new wire has them all by calling it. Like the rest of :mod:`qmk.abi` it never imports
the kernel: it is given the kernel (the object whose coroutines are the syscalls) and a
:class:`DoorProbe` of it.

What the door owns, and where:

- **Authentication before any work** (:meth:`Door.call`, :meth:`Door.tenant`): a call's
  session is checked first, before its program is read or anything else is done for it;
  a wire that must read a request before the call (a body, a message) checks the
  session with :meth:`Door.tenant` before reading it.
- **The pre-session size limit** (:meth:`Door.size_limit`): a request of a caller
  that has not signed in (no valid session or key seen yet; :class:`Visitor`) may hold
  ``max_line_unauthenticated`` bytes; one that has, ``max_line``.
- **Program text** (:class:`ProgramText`, the ``program`` of :meth:`Door.call`): read
  in a thread once the session is known, within ``kernel.max_graph_nodes`` before any
  loop unrolls, its CPU charged to the tenant's budget (:mod:`qmk.abi.door.programs`).
- **Connections** (:class:`Connections`, :class:`Acceptor`): per peer and in total, on
  every listener together, and one accept rate; a listener whose server owns its
  sockets (gRPC) is spliced through the door (:class:`~qmk.abi.door.splice.Splicer`).
- **Logins**: a peer's failed logins (``q_negotiate_caps`` with a wrong key) at one
  tenant name, on every wire together, ``failed_logins_per_peer`` in a burst then
  ``failed_login_rate_per_peer`` a second; past them a login as that tenant is
  ``QS1006`` ``too-many-failed-logins`` with ``retry_after_s``, before any key check.
  Counted per tenant name too, so a gateway (one peer to the kernel for all its
  clients) that forwards one client's wrong keys does not hold back other tenants'
  logins. (The kernel checks keys in a pool of their own:
  :class:`qmk.kernel.security.keys.KeyChecker`.)
- **Each connection's guard** (:class:`Guard`, :meth:`Door.guard`): its sign-in
  deadline (``auth_timeout_s``), its unsent bytes (``max_unsent_bytes``), its write
  timeout (``write_timeout_s``) and its line budget, on every wire.
- **Big request lines** (:meth:`Door.decode`): decoded off the loop on the CPU budget
  of the session they name.
- **Streams** (:class:`StreamCaps`): live event streams per session and per tenant,
  shared by SSE, ``q_watch`` and ``WatchJob``.
- **Answer sizes** (:class:`HeldAnswers`): answers a wire holds whole until sent (a gRPC
  message, a GraphQL answer) within ``max_held_answer_bytes`` all together; the other
  wires write big answers a chunk at a time from the stored result's bytes.
- **Audit-writing calls** (:data:`AUDITED`): a tenant's rate of the calls that write
  audit lines (sessions, delegations, channels, checkpoints, ...),
  ``audit_rate_per_tenant`` / ``audit_burst_per_tenant``; past it ``QS1006``
  ``audit-rate`` with ``retry_after_s``.
- **Instruments**: every call is timed for the metrics (:meth:`Door.observe`, labelled
  by the visitor's wire) and traced (:meth:`Door.trace`).

A wire, in short::

    visitor = door.visitor("mywire", peer_of(sock))   # once per connection (or caller)
    ... read the request within door.size_limit(visitor.signed_in) bytes ...
    tenant = door.tenant(visitor, session_id)          # before reading more of it
    result = await door.call(visitor, "q_submit", params,
                             program=ProgramText(text, "qasm3"))

and a new wire registers in the door conformance suite (``tests/support/wires.py``),
which runs every attack scenario against every registered wire (docs/door.md).

>>> from qmk.abi.limits import ServerConfig
>>> import asyncio
>>> class Kernel:
...     async def q_status(self, *, session_id, job_id):
...         return {"job_id": job_id, "state": "QUEUED"}
>>> door = Door(Kernel(), ServerConfig(tcp=("127.0.0.1", 0)))
>>> visitor = door.visitor("doc", "ip 127.0.0.1")
>>> asyncio.run(door.call(visitor, "q_status", {"session_id": "s", "job_id": "j"}))
{'job_id': 'j', 'state': 'QUEUED'}
"""

from __future__ import annotations

from qmk.abi.door.accept import ACCEPT_BATCH, Acceptor
from qmk.abi.door.answers import HEAP_TRIM, SMALL, Held, HeldAnswers
from qmk.abi.door.door import AUDITED, NEGOTIATE, Door, DoorProbe, Observer, Visitor, Wrap
from qmk.abi.door.guard import RECHECK_S, Guard
from qmk.abi.door.peers import (
    REFUSED_LINGER_MAX,
    Connections,
    Cut,
    LoopClock,
    Place,
    Refusal,
    ServerClock,
    connection_room,
    peer_of,
    peer_of_address,
)
from qmk.abi.door.programs import GRAPH_PARAM, ProgramText
from qmk.abi.door.streams import StreamCaps

__all__ = [
    "ACCEPT_BATCH",
    "AUDITED",
    "GRAPH_PARAM",
    "HEAP_TRIM",
    "NEGOTIATE",
    "RECHECK_S",
    "REFUSED_LINGER_MAX",
    "SMALL",
    "Acceptor",
    "Connections",
    "Cut",
    "Door",
    "DoorProbe",
    "Guard",
    "Held",
    "HeldAnswers",
    "LoopClock",
    "Observer",
    "Place",
    "ProgramText",
    "Refusal",
    "ServerClock",
    "StreamCaps",
    "Visitor",
    "Wrap",
    "connection_room",
    "peer_of",
    "peer_of_address",
]
