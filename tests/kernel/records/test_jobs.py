"""A job's policy as q_submit's ``policy`` reads."""

from __future__ import annotations

import base64
import multiprocessing

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
