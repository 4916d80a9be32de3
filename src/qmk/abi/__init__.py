"""qSyscall: the kernel's wire interface (JSON-RPC 2.0 over newline-delimited JSON).

- :mod:`qmk.abi.methods`: THE table of qSyscall methods and their params.
- :mod:`qmk.abi.protocol` (generated): :class:`~qmk.abi.protocol.KernelSyscalls`, the
  Protocol a kernel serving the table satisfies (mypy checks the kernel against it).
- :mod:`qmk.abi.calls` (generated): the clients' typed ``q_*`` methods.
- :mod:`qmk.abi.codegen`: renders those two from the table (``--check``/``--write``).
- :mod:`qmk.abi.errors`: JSON-RPC protocol and transport errors.
- :mod:`qmk.abi.jsonrpc`: the transport-free protocol core (a line in, a line out).
- :mod:`qmk.abi.server`: the asyncio NDJSON server (Unix socket, optional TCP).

This package's ``__init__`` imports nothing, so the client can import the method
table without loading the server or the kernel.
"""
