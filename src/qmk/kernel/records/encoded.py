"""A result's JSON object encoded as the kernel keeps it: counts first, then the other
members, with the index of the counts' entries (:class:`~qmk.kernel.records.stored.StoredResult`).

A worker encodes its run's result once (:mod:`qmk.kernel.pools.runner`); the kernel
stores and serves those bytes as they are. The kernel itself encodes only a result that
comes as its object (a part of a split job, the Dask pool's merged parts:
:func:`~qmk.kernel.records.outcome.result_of`) and a migration's older rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from qmk.kernel.records.stored import (
    RESULT_MARK_EVERY,
    StoredResult,
    compact_encoder,
    digest_counts,
)

_COUNTS_OPEN = b'{"counts":'
_ENCODE_KEY = json.encoder.encode_basestring  # a str as json.dumps writes it (non-ASCII kept)
_dumps = compact_encoder(allow_nan=False)


def encode_result(value: Mapping[str, Any]) -> StoredResult:
    """``value`` (a result's JSON object) as a :class:`StoredResult`: counts first, then
    the other members, with the index of its counts entries.

    Raises:
        ValueError: the value is not JSON (a NaN, say).
    """
    head = {key: item for key, item in value.items() if key != "counts"}
    head_text = _dumps(head)
    counts = value.get("counts")
    if not isinstance(counts, Mapping) or not all(isinstance(key, str) for key in counts):
        meta = {"head": head, "entries": 0, "counts_at": None, "marks": []}
        if counts is not None:  # not a counts mapping: kept as it is, among the rest
            head["counts"] = counts
            return StoredResult(_dumps(head).encode(), meta)
        return StoredResult(head_text.encode(), meta)
    counts_data = _dumps(dict(counts)).encode()
    begin = len(_COUNTS_OPEN)
    end = begin + len(counts_data)
    rest = b"}" if head_text == "{}" else b"," + head_text[1:].encode()
    data = _COUNTS_OPEN + counts_data + rest
    marks = []
    at = begin + 1
    for index, (key, count) in enumerate(counts.items()):
        if index % RESULT_MARK_EVERY == 0:
            marks.append(at)
        shown = _ENCODE_KEY(key) + ":" + (repr(count) if type(count) is int else _dumps(count))
        at += (len(shown) if shown.isascii() else len(shown.encode())) + 1  # and ','
    if counts and at != end:  # cannot happen for JSON as json.dumps writes it
        raise ValueError(f"the counts' index ends at {at}, the counts at {end}")
    meta = {
        "head": head,
        "entries": len(counts),
        "counts_at": [begin, end],
        "marks": marks,
        "counts_sha256": _counts_digest(counts, counts_data),
    }
    return StoredResult(data, meta)


def _counts_digest(counts: Mapping[str, Any], encoded: bytes) -> str:
    """:func:`digest_counts` of ``counts``, whose compact JSON is ``encoded``: that text's
    digest where it is the canonical text already (keys sorted, as a run's counts are,
    and every byte printable ASCII, which both encoders write alike), else found anew."""
    keys = list(counts)
    if encoded.isascii() and b"\x7f" not in encoded and keys == sorted(keys):
        return hashlib.sha256(encoded).hexdigest()
    return digest_counts(counts)


__all__ = ["encode_result"]
