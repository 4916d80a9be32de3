"""A job's policy as q_submit's ``policy`` reads."""

from __future__ import annotations

from qmk.kernel.records.jobs import parse_policy


def test_no_policy_and_an_empty_one_read_as_the_defaults_with_the_kernels_timeout() -> None:
    for timeout_s in (60.0, 600.0, 60.0):  # each kernel timeout its own, asked again
        plain = parse_policy(None, default_timeout_s=timeout_s)
        assert parse_policy({}, default_timeout_s=timeout_s) == plain
        spelled = parse_policy({"timeout_ms": round(timeout_s * 1000)}, default_timeout_s=1)
        assert plain == spelled and plain.timeout_s == timeout_s
        assert plain.priority == spelled.priority and plain.cache is True
