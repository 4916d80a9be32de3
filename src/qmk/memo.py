"""A bounded memo of what a process makes from an object or a key, made once and kept.

A kernel and its workers run the same few programs many times. A program's verified
form, plan, routes and epoch records, a physics' logical model, a run's cache key are each
a function of their key alone. So each is made once and kept in a :class:`Memo` of the
most recent ``most`` entries (the least recently used goes first).

An entry made from an object (a plan, a verified program) is keyed by the object's
``id`` and holds the object beside the value, so the id is not reused meanwhile, and a
key whose entry holds another object is made again.

>>> made = []
>>> memo = Memo(2)
>>> def double(x):
...     return memo.get(x, None, lambda: made.append(x) or 2 * x)
>>> double(1), double(1), double(2), double(3), double(1)
(2, 2, 4, 6, 2)
>>> made  # 1 was made again: 1 was the least recently used when 3 came
[1, 2, 3, 1]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Memo(Generic[V]):
    """The values made for the ``most`` keys used last (see the module docstring).

    Safe from several threads (``qmk.run`` in a thread pool): at worst two make the same
    value, or one drops an entry another just used.

    Raises:
        TypeError: from :meth:`get`, a key that cannot be hashed.
    """

    def __init__(self, most: int) -> None:
        self.most = most
        self._entries: OrderedDict[Hashable, tuple[object, V]] = OrderedDict()

    def get(self, key: Hashable, source: object, make: Callable[[], V]) -> V:
        """``make()``, or what it gave for ``key`` before, made from the same ``source``
        (the object the value is made from; None for a value of the key alone)."""
        hit = self._entries.get(key)
        if hit is not None and hit[0] is source:
            # a try, not a suppress() block: a hit is most calls, and that object costs
            # twice the rest of one
            try:
                self._entries.move_to_end(key)
            except KeyError:  # another thread dropped it meanwhile: made again next time
                return hit[1]
            return hit[1]
        value = make()
        self._entries[key] = (source, value)
        while len(self._entries) > self.most:
            try:
                self._entries.popitem(last=False)
            except KeyError:
                break
        return value

    def refresh(self, key: Hashable, source: object, value: V) -> None:
        """Keep ``value`` for ``key`` instead of what is kept, if ``key`` is kept."""
        if key in self._entries:
            self._entries[key] = (source, value)

    def clear(self) -> None:
        """Keep nothing made so far."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["Memo"]
