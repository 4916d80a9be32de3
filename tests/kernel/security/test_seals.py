"""KeyedMac is HMAC-SHA256 (RFC 2104) with its key's pads hashed once: the same MAC as
the hmac module's for every key length (shorter than a block, a block, longer: hashed
first) and message, so audit lines and result seals written either way verify."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from qmk.kernel.security.seals import KeyedMac

KEY_LENGTHS = (0, 1, 32, 63, 64, 65, 200)


@pytest.mark.parametrize("length", KEY_LENGTHS)
def test_a_keyed_mac_is_the_hmac_of_every_message(length: int) -> None:
    draw = random.Random(20261126 + length)
    key = bytes(draw.randrange(256) for _ in range(length))
    mac = KeyedMac(key)
    for size in (0, 1, 55, 56, 64, 1000, 70_000):
        message = bytes(draw.randrange(256) for _ in range(size))
        assert mac.hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()
    # the pads are copied for each message, never changed by one
    assert mac.hexdigest(b"again") == hmac.new(key, b"again", hashlib.sha256).hexdigest()
