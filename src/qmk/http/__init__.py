"""The REST wire: the kernel's qSyscalls over HTTP, live events, metrics, traces, the console.

``qmk serve ... --http HOST:PORT`` serves, next to JSON-RPC and on the same kernel, an
ASGI application (Starlette on uvicorn; see docs/http.md for the choice):

- :mod:`qmk.http.routes`: the route of every qSyscall, derived from the method table
  (:data:`qmk.abi.methods.METHODS`), and the routes that are not syscalls;
- :mod:`qmk.http.openapi`: the OpenAPI 3.1 document, built from the same two tables;
- :mod:`qmk.http.problems`: errors as RFC 9457 ``application/problem+json``;
- :mod:`qmk.http.app`: the application; :mod:`qmk.http.server`: uvicorn on a socket;
- :mod:`qmk.abi.probe`: what the HTTP layer reads of the kernel beyond its syscalls
  (events and a snapshot; the kernel's :mod:`qmk.kernel.observe` provides it);
- :mod:`qmk.http.metrics` (Prometheus), :mod:`qmk.http.tracing` (OpenTelemetry),
  :mod:`qmk.http.events` (the Server-Sent Events format; the streams are
  :mod:`qmk.abi.events`; JSON log lines are :mod:`qmk.abi.logs`);
- (:mod:`qmk.gateway.http`, a room above the client, serves the same application in a
  process of its own, a client of the kernel's socket: ``qmk gateway http``);
- :mod:`qmk.http.client`: a small REST client (workflows, the demo, the benchmark);
- :mod:`qmk.http.graphql`: the read-only GraphQL API over the same syscalls (strawberry);
- :mod:`qmk.abi.webhook`: the billing webhook's POST (standard library; the kernel's
  outbox sends through it);
- ``console/``: the web console's static files, served at ``/``.

Like :mod:`qmk.abi`, it never imports the kernel: it serves any object with the
syscall coroutines (:class:`qmk.abi.protocol.KernelSyscalls`). Importing this package
imports no third-party library; the modules that need the ``http`` extra import it.
"""
