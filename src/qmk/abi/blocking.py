"""A blocking method made from a client's coroutine: one generated client serves both.

:class:`qmk.abi.calls.AsyncSyscallMethods` holds each syscall's method once, as a
coroutine over ``await self._call(...)``. :func:`blocking` turns one into the method of a
blocking client, whose ``_call`` sends the call and waits for the reply: the coroutine
runs with a ``_call`` that never suspends, so one step finishes it. The blocking
method keeps the coroutine's name, docstring and signature (``inspect.signature``), and
mypy sees its params and reply type.

>>> class Coroutines:
...     async def q_echo(self, text: str) -> str:
...         return str(await self._call("q_echo", {"text": text}))
>>> class Blocking:
...     def _call(self, method: str, params: dict) -> str:
...         return f"{method}: {params['text']}"
...     q_echo = blocking(Coroutines.q_echo)
>>> Blocking().q_echo("hi")
'q_echo: hi'
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Waits:
    """A blocking client seen as the coroutine's ``self``: its ``_call`` as a coroutine
    that returns at once."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        return self._client._call(method, params)


def blocking(
    coroutine: Callable[Concatenate[Any, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[Any, _P], _R]:
    """The blocking method of ``coroutine`` (a client's method over ``self._call``)."""

    def method(self: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        running = coroutine(_Waits(self), *args, **kwargs)
        try:
            running.send(None)
        except StopIteration as done:
            return done.value
        running.close()
        raise RuntimeError(f"{coroutine.__name__} waited on more than its blocking _call")

    functools.update_wrapper(method, coroutine)
    return method


__all__ = ["blocking"]
