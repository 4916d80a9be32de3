"""A job's policy as q_submit's ``policy`` reads."""

from __future__ import annotations

import base64
import multiprocessing
import time

from qmk.kernel.records.jobs import new_id, parse_policy


def test_no_policy_and_an_empty_one_read_as_the_defaults_with_the_kernels_timeout() -> None:
    for timeout_s in (60.0, 600.0, 60.0):  # each kernel timeout its own, asked again
        plain = parse_policy(None, default_timeout_s=timeout_s)
        assert parse_policy({}, default_timeout_s=timeout_s) == plain
        spelled = parse_policy({"timeout_ms": round(timeout_s * 1000)}, default_timeout_s=1)
        assert plain == spelled and plain.timeout_s == timeout_s
        assert plain.priority == spelled.priority and plain.cache is True


def test_ids_are_24_url_safe_characters_of_18_bytes_each_and_never_repeat() -> None:
    ids = [new_id("job") for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        prefix, token = job_id.split("_", 1)
        assert prefix == "job" and len(token) == 24
        assert len(base64.urlsafe_b64decode(token)) == 18


def test_ids_sort_as_the_milliseconds_they_were_made_in() -> None:
    made = []
    for _ in range(3):
        before = time.time_ns() // 1_000_000
        job_id = new_id("job")
        made.append(job_id)
        after = time.time_ns() // 1_000_000
        spelt = job_id[4:12]
        # the 8 characters spell the millisecond in base64url's characters in ASCII order
        assert all(c.isalnum() or c in "-_" for c in spelt)
        digits = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
        value = 0
        for c in spelt:
            value = value * 64 + digits.index(c)
        assert before <= value <= after
        while time.time_ns() // 1_000_000 == after:  # the next id in a later millisecond
            pass
    assert made == sorted(made)


def test_ids_keep_96_random_bits_after_their_time() -> None:
    ids = [new_id("job") for _ in range(2000)]
    tails = {job_id[12:] for job_id in ids}
    assert len(tails) == len(ids)  # 16 characters of 6 random bits each
    # every character of the tail takes every value (a constant one would be no random bits)
    for at in range(12, 28):
        assert len({job_id[at] for job_id in ids}) > 48


def test_a_forked_child_draws_ids_other_than_its_parents_next() -> None:
    new_id("job")  # ids drawn ahead in the parent before the fork
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()
    child = context.Process(target=lambda: queue.put([new_id("job") for _ in range(3)]))
    child.start()
    theirs = queue.get()
    child.join(60)
    mine = [new_id("job") for _ in range(3)]
    assert not set(theirs) & set(mine)
