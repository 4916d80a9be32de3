"""The gateways: a wire's server in a process of its own, a client of the kernel's socket.

- :mod:`qmk.gateway.http`: the REST API (``qmk gateway http``; ``qmk serve --http
  HOST:PORT`` starts and supervises one by default, :mod:`qmk.serve.gateways`).

A gateway holds no credentials of its own: each call carries its caller's session (or
key, for a login), which the kernel checks as it checks any client's. The kernel's
process imports nothing of this package.
"""
