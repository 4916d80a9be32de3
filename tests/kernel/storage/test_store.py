"""The SQLite store: WAL mode, round trips, and what survives a reopen."""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path

from msgspec.structs import replace

from qmk.execution.request import MachineRun, Policy
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.records.encoded import encode_result
from qmk.kernel.records.jobs import COMPLETED, QUEUED, RUNNING, Job
from qmk.kernel.records.usage import Usage
from qmk.kernel.storage.store import Store
from qmk.kernel.storage.usage_rows import UsageRows, usage_where
from support.jobs import make_job


def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_committed_job_survives_reopen_with_every_field(tmp_path: Path) -> None:
    store = Store(tmp_path)
    job = make_job("job_a", 1)
    store.insert_job(job)
    job.state, job.result, job.attempts = COMPLETED, encode_result({"counts": {"00": 100}}), 1
    store.save_job(job)
    store.commit((3, "f" * 64, 128))  # the audit head: seq, hash, offset
    store.close()
    again = Store(tmp_path)
    loaded = again.load_job("job_a", "alice")
    assert loaded == job
    assert loaded.policy.channels == {"link": "ch_x"} and loaded.policy.timeout_s == 1.5
    assert again.load_job("job_a", "bob") is None  # another tenant's id is unknown
    again.close()


def test_a_job_inserted_as_accepted_or_with_every_column_set_reads_back_as_it_was(
    tmp_path: Path,
) -> None:
    # a job accepted now is written by one statement of its own (its columns that hold
    # nothing yet written NULL); one with more set, or an idempotency key, by the general
    # one: both read back field for field, the key with its row
    store = Store(tmp_path)
    fresh = make_job("job_fresh", 1)
    store.insert_job(fresh)
    full = make_job("job_full", 2)
    full.state, full.result, full.attempts = COMPLETED, encode_result({"counts": {"1": 5}}), 2
    full.started_at, full.finished_at, full.epoch = 1001.5, 1002.5, 4
    full.error, full.checkpoint_id = {"code": "QK301", "message": "x"}, "ckpt_1"
    full.cache_key, full.cached_from = "ab" * 32, "job_fresh"
    store.insert_job(full, idempotency_key="retry-1")
    keyed = make_job("job_keyed", 3)
    store.insert_job(keyed, idempotency_key="retry-2")
    store.commit((3, "f" * 64, 128))
    store.close()
    again = Store(tmp_path)
    for job in (fresh, full, keyed):
        assert again.load_job(job.job_id, "alice") == job, job.job_id
    assert again.job_id_for_key("alice", "retry-1") == "job_full"
    assert again.job_id_for_key("alice", "retry-2") == "job_keyed"
    assert again.job_id_for_key("bob", "retry-1") is None
    again.close()


def test_a_committed_channel_survives_reopen_and_a_closed_one_is_not_loaded(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    open_ = {
        "channel_id": "ch_open",
        "proposer": "alice",
        "peer": "bob",
        "state": "OPEN",
        "fidelity": 0.99,
        "created_at": 1.0,
        "opened_at": 2.0,
        "closed_at": None,
    }
    closed = dict(open_, channel_id="ch_closed", state="CLOSED", closed_at=3.0)
    store.save_channel(open_)
    store.save_channel(closed)
    store.commit()
    store.close()
    again = Store(tmp_path)
    assert again.load_channels() == [open_]  # every field, under its column's name
    assert again.load_channel("ch_closed") == closed  # by id, in any state
    assert again.load_channel("ch_none") is None
    again.close()


def test_uncommitted_writes_are_lost_by_a_crash(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.insert_job(make_job("job_kept", 1))
    store.commit()
    store.insert_job(make_job("job_lost", 2))
    # a crash: the connection goes away without commit (sqlite rolls back)
    store.db.close()
    again = Store(tmp_path)
    assert again.load_job("job_kept", "alice") is not None
    assert again.load_job("job_lost", "alice") is None
    assert again.next_seq() == 2


def test_active_jobs_and_listing_follow_state_and_order(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for seq, state in enumerate((QUEUED, RUNNING, COMPLETED), start=1):
        job = make_job(f"job_{seq}", seq)
        job.state = state
        store.insert_job(job)
    store.insert_job(make_job("job_b", 4, tenant="bob"))
    store.commit()
    assert [j.job_id for j in store.active_jobs()] == ["job_1", "job_2", "job_b"]
    assert [j.job_id for j in store.list_jobs("alice", None, 10)] == ["job_3", "job_2", "job_1"]
    assert [j.job_id for j in store.list_jobs("alice", COMPLETED, 10)] == ["job_3"]
    assert store.tenant_stats("alice")["jobs_by_state"] == {
        QUEUED: 1,
        RUNNING: 1,
        COMPLETED: 1,
    }
    store.close()


def test_a_tenants_jobs_are_listed_newest_first_by_their_index_without_a_sort(
    tmp_path: Path,
) -> None:
    """A listing reads the tenant's jobs in submission order (``jobs_tenant``), newest
    first, as many as asked, with no sort of all the tenant's jobs; of a state not ended,
    the jobs not ended (``jobs_active``); of another, the tenant's jobs filtered; every
    job's entry was made once, at its insert (no index of a tenant's jobs by state)."""
    from qmk.kernel.records.jobs import ACTIVE_STATES, FAILED, STATES
    from qmk.kernel.storage.job_reads import list_query

    store = Store(tmp_path)
    states = [COMPLETED, FAILED, QUEUED, RUNNING, COMPLETED, COMPLETED]
    for seq in range(1, 61):
        job = make_job(f"job_{seq:02d}", seq, tenant="alice" if seq % 3 else "bob")
        job.state = states[seq % len(states)]
        store.insert_job(job)
    store.commit()
    for tenant in ("alice", "bob"):
        for state in (None, *STATES):
            for limit in (1, 4, 100):
                want = [
                    f"job_{seq:02d}"
                    for seq in range(60, 0, -1)
                    if ("alice" if seq % 3 else "bob") == tenant
                    and (state is None or states[seq % len(states)] == state)
                ][:limit]
                assert [j.job_id for j in store.list_jobs(tenant, state, limit)] == want
            plan = " ".join(
                str(row[-1])
                for row in store.db.execute(
                    "EXPLAIN QUERY PLAN " + list_query(state, "job_id"), (tenant, 10)
                )
            )
            index = "jobs_active" if state in ACTIVE_STATES else "jobs_tenant"
            assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan
    assert store.list_jobs("alice", "NO_SUCH_STATE", 10) == []
    indexes = {n for (n,) in store.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "jobs_tenant" in indexes and "jobs_tenant_state" not in indexes
    store.close()


def test_checkpoints_are_found_latest_first_and_per_tenant(tmp_path: Path) -> None:
    store = Store(tmp_path)
    job = make_job("job_a", 1)
    store.insert_job(job)
    store.insert_checkpoint("ckpt_1", job, 4, 10.0)
    store.insert_checkpoint("ckpt_2", job, 9, 11.0)
    store.commit()
    assert store.load_checkpoint("job_a", "alice", None)["checkpoint_id"] == "ckpt_2"
    assert store.load_checkpoint("job_a", "alice", "ckpt_1")["epoch"] == 4
    assert store.load_checkpoint("job_a", "bob", None) is None
    store.close()


def test_a_big_graph_is_kept_out_of_its_jobs_row_packed_and_read_back_whole(
    tmp_path: Path,
) -> None:
    from dataclasses import replace as with_fields

    from qmk.kernel.storage.store import GRAPH_APART

    store = Store(tmp_path)
    nodes = ",".join(f'{{"id":"n{k}","op":"FENCE_EPOCH"}}' for k in range(GRAPH_APART // 20))
    big = '{"version":"0.2","program":{"nodes":[' + nodes + "]}}"
    job = with_fields(make_job("job_big", 1), graph=big)
    store.insert_job(job)
    job.state, job.attempts = RUNNING, 1
    store.save_job(job)  # a state change: the row, not the graph, is written again
    store.commit((3, "f" * 64, 128))
    store.close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    assert db.execute("SELECT graph FROM jobs WHERE job_id='job_big'").fetchone() == ("",)
    (packed,) = db.execute("SELECT graph FROM graph_texts").fetchone()
    assert zlib.decompress(packed).decode() == big
    assert len(packed) < len(big) / 5  # what the event loop writes of it
    db.close()
    again = Store(tmp_path)
    assert again.load_job("job_big", "alice") == job  # the graph read back whole
    assert [j.graph for j in again.active_jobs()] == [big]
    again.close()


def big_graph(tag: str) -> str:
    """A graph text of more than GRAPH_APART characters, its own for each ``tag``."""
    from qmk.kernel.storage.store import GRAPH_APART

    nodes = ",".join(f'{{"id":"{tag}{k}","op":"FENCE_EPOCH"}}' for k in range(GRAPH_APART // 20))
    return '{"version":"0.2","program":{"nodes":[' + nodes + "]}}"


def test_a_big_graph_is_stored_once_per_tenant_however_many_jobs_run_it(tmp_path: Path) -> None:
    from dataclasses import replace as with_fields

    sweep, other = big_graph("a"), big_graph("b")
    store = Store(tmp_path)
    jobs = [with_fields(make_job(f"job_{i}", i), graph=sweep) for i in range(1, 6)]
    jobs.append(with_fields(make_job("job_other", 6), graph=other))
    jobs.append(with_fields(make_job("job_bob", 7, tenant="bob"), graph=sweep))
    for job in jobs:
        store.insert_job(job)
    store.commit((3, "f" * 64, 128))
    store.close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    stored = db.execute("SELECT tenant, graph FROM graph_texts").fetchall()
    # alice's sweep once, her other program once, and bob's copy of the sweep his own
    texts = sorted((tenant, zlib.decompress(packed).decode()) for tenant, packed in stored)
    assert texts == sorted([("alice", sweep), ("alice", other), ("bob", sweep)])
    db.close()
    again = Store(tmp_path)
    for job in jobs:
        assert again.load_job(job.job_id, job.tenant) == job
    again.close()


def test_a_saved_row_is_read_back_before_any_commit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    job = make_job("job_seen", 1)
    store.insert_job(job)
    job.state, job.attempts = RUNNING, 1
    store.save_job(job)
    loaded = store.load_job("job_seen", "alice")
    assert loaded is not None and loaded.state == RUNNING and loaded.attempts == 1
    assert [j.job_id for j in store.active_jobs()] == ["job_seen"]
    store.close()


def test_a_job_saved_twice_between_statements_is_written_once_with_its_newest_fields(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    job = make_job("job_twice", 1)
    store.insert_job(job)
    store.commit()
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    job.state, job.started_at = RUNNING, 1001.0
    store.save_job(job)
    # a statement that does not name the jobs table leaves the saved row waiting
    store.insert_usage("job_other", "alice", COMPLETED, 1001.5, Usage(shots=1), seq=9)
    job.state, job.finished_at = COMPLETED, 1002.0
    job.result = encode_result({"counts": {"00": 100}})
    store.save_job(job)
    store.commit()
    store.db.set_trace_callback(None)
    assert sum(s.startswith("UPDATE jobs SET state=") for s in statements) == 1
    store.close()
    again = Store(tmp_path)
    loaded = again.load_job("job_twice", "alice")
    assert loaded is not None and loaded.state == COMPLETED
    assert (loaded.started_at, loaded.finished_at) == (1001.0, 1002.0)
    assert loaded.result is not None and loaded.result["counts"] == {"00": 100}
    again.close()


def test_a_jobs_machine_schedule_is_written_in_the_same_update_as_its_row(
    tmp_path: Path,
) -> None:
    # SQLite writes a row's whole record again for any change: the schedule the shared
    # machine fixed and the job's start go in one UPDATE, not one each
    store = Store(tmp_path)
    job = make_job("job_sched", 1)
    other = make_job("job_other", 2)
    store.insert_job(job)
    store.insert_job(other)
    store.commit()
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    run = MachineRun(arrival_cycle=0, start_cycle=100, end_cycle=104, tiles=9, module=0)
    job.request = replace(job.request, machine=run)
    store.save_request(job)
    job.state, job.started_at = RUNNING, 1001.0
    store.save_job(job)
    other.state = RUNNING
    store.save_job(other)
    store.commit()
    store.db.set_trace_callback(None)
    updates = [s for s in statements if s.startswith("UPDATE jobs SET")]
    assert len(updates) == 2  # one each: the scheduled job's with its request
    assert sum(s.startswith("UPDATE jobs SET request=") for s in updates) == 1
    store.close()
    again = Store(tmp_path)
    loaded, plain = again.load_job("job_sched", "alice"), again.load_job("job_other", "alice")
    assert loaded is not None and loaded.state == RUNNING and loaded.request.machine == run
    assert plain is not None and plain.state == RUNNING and plain.request.machine is None
    again.close()


#: A schedule the shared machine fixed (the tests below store it with a job).
SCHEDULE = MachineRun(arrival_cycle=0, start_cycle=0, end_cycle=4, tiles=9, module=0)


def with_schedule(store: Store, job_id: str, seq: int) -> Job:
    """A job of ``store``, committed QUEUED, then given :data:`SCHEDULE` (saved, not
    written yet)."""
    job = make_job(job_id, seq)
    store.insert_job(job)
    store.commit()
    job.request = replace(job.request, machine=SCHEDULE)
    store.save_request(job)
    return job


def test_a_queued_jobs_schedule_waits_over_commits_for_its_next_save(tmp_path: Path) -> None:
    store = Store(tmp_path)
    job, run = with_schedule(store, "job_held", 1), SCHEDULE
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    store.commit()  # the schedule alone: not written by this commit
    assert not [s for s in statements if s.startswith("UPDATE jobs")]
    job.state, job.started_at = RUNNING, 1001.0
    store.save_job(job)
    store.commit()  # the start: one UPDATE with the schedule
    store.db.set_trace_callback(None)
    updates = [s for s in statements if s.startswith("UPDATE jobs")]
    assert len(updates) == 1 and updates[0].startswith("UPDATE jobs SET request=")
    loaded = store.load_job("job_held", "alice")
    assert loaded is not None and loaded.state == RUNNING and loaded.request.machine == run
    store.close()


def test_a_held_schedule_is_written_before_a_read_of_the_jobs_and_at_close(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    read, closed = make_job("job_read", 1), make_job("job_closed", 2)
    store.insert_job(read)
    store.insert_job(closed)
    store.commit()
    run = MachineRun(arrival_cycle=0, start_cycle=0, end_cycle=4, tiles=9, module=0)
    read.request = replace(read.request, machine=run)
    store.save_request(read)
    store.commit()
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    assert store.load_job("job_closed", "alice") is not None  # another job's row alone
    assert not [s for s in statements if s.startswith("UPDATE jobs")]
    loaded = store.load_job("job_read", "alice")  # the read of its own row sees it
    assert loaded is not None and loaded.request.machine == run
    store.db.set_trace_callback(None)
    assert len([s for s in statements if s.startswith("UPDATE jobs")]) == 1
    closed.request = replace(closed.request, machine=run)
    store.save_request(closed)
    store.commit()
    store.close()  # a clean close writes it
    again = Store(tmp_path)
    loaded = again.load_job("job_closed", "alice")
    assert loaded is not None and loaded.request.machine == run
    again.close()


def test_a_schedule_written_in_a_rolled_back_transaction_goes_with_the_jobs_next_save(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    job, run = with_schedule(store, "job_again", 1), SCHEDULE
    job.state = RUNNING
    store.save_job(job)
    store.db.write_saved()  # written into the transaction...
    store.rollback()  # ...that a failed commit rolls back
    loaded = store.load_job("job_again", "alice")
    assert loaded is not None and loaded.request.machine is None and loaded.state == QUEUED
    other = make_job("job_other", 2)
    store.insert_job(other)
    other.state = RUNNING
    store.save_job(other)
    store.commit()  # another job's row meanwhile: this job's schedule is still asked for
    store.save_job(job)  # the job's next save writes its schedule too
    store.commit()
    loaded = store.load_job("job_again", "alice")
    assert loaded is not None and loaded.request.machine == run and loaded.state == RUNNING
    store.close()


def test_a_held_schedule_outlives_a_rollback_it_was_not_in(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with_schedule(store, "job_kept", 1)
    store.rollback()
    store.close()
    again = Store(tmp_path)
    loaded = again.load_job("job_kept", "alice")
    assert loaded is not None and loaded.request.machine == SCHEDULE
    again.close()


def test_a_rollback_drops_the_saved_rows_with_the_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path)
    job = make_job("job_back", 1)
    store.insert_job(job)
    store.commit()
    job.state = RUNNING
    store.save_job(job)
    store.rollback()  # a commit that failed: nothing of the transaction stays
    loaded = store.load_job("job_back", "alice")
    assert loaded is not None and loaded.state == QUEUED
    store.save_job(job)  # the job's next save writes its row again
    store.commit()
    loaded = store.load_job("job_back", "alice")
    assert loaded is not None and loaded.state == RUNNING
    store.close()


def test_a_schedule_saved_with_a_start_that_a_rollback_drops_goes_with_the_next_save(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    job = with_schedule(store, "job_started", 1)
    job.state = RUNNING
    store.save_job(job)  # the start, with the schedule, not written yet
    store.rollback()  # a failed commit: neither was written
    store.save_job(job)  # the job's next save writes both
    store.commit()
    loaded = store.load_job("job_started", "alice")
    assert loaded is not None and loaded.state == RUNNING and loaded.request.machine == SCHEDULE
    store.close()


def test_each_jobs_policy_is_stored_as_the_json_text_of_its_own_policy(tmp_path: Path) -> None:
    # the texts are kept by policy: two policies alike in all but a float's type, a
    # key's order or one value each get their own text
    from qmk.kernel.records.stored import compact_encoder

    dumps = compact_encoder(allow_nan=True)
    policies = [
        Policy(priority=3, deadline=1800000000, timeout_ms=1500),
        Policy(priority=3, deadline=1800000000.0, timeout_ms=1500),
        Policy(priority=3, deadline=1800000000.5, timeout_ms=1500),
        Policy(channels={"a": "ch_1", "b": "ch_2"}),
        Policy(channels={"b": "ch_2", "a": "ch_1"}),
        Policy(priority=3, deadline=1800000000, timeout_ms=1500),
    ]
    store = Store(tmp_path)
    for n, policy in enumerate(policies):
        job = make_job(f"job_p{n}", n)
        job.request = replace(job.request, policy=policy)
        store.insert_job(job)
    store.commit()
    stored = [row[0] for row in store.db.execute("SELECT policy FROM jobs ORDER BY seq")]
    store.close()
    assert stored == [dumps(policy.to_json()) for policy in policies]
    assert stored[0] != stored[1] and stored[3] != stored[4]


def test_a_result_its_worker_indexed_is_stored_and_sealed_as_the_store_would_do_it(
    tmp_path: Path,
) -> None:
    # the worker sends its result's index text and that text's digest (off the kernel's
    # loop); the row holds what the store makes of the index itself, and a digest that
    # is not the text's makes a seal the result fails when read (as a wrong result_sha256)
    import hashlib

    from qmk.kernel.records.outcome import Done, result_of
    from qmk.kernel.security.seals import derive
    from qmk.kernel.storage.store import meta_text

    stored = encode_result({"counts": {"00": 3, "11": 5}, "telemetry": {"logical_cycles": 4.0}})
    text = meta_text(stored.meta)

    def done(digest: str) -> Done:
        return Done(
            result_json=stored.data,
            result_meta=dict(stored.meta),
            result_sha256=stored.sha256,
            result_meta_text=text,
            result_meta_sha256=digest,
        )

    key = derive(b"s" * 32, "result")
    rows = []
    for name, result in (
        ("by_worker", result_of(done(hashlib.sha256(text.encode()).hexdigest()))),
        ("by_store", stored),
        ("wrong", result_of(done("0" * 64))),
    ):
        store = Store(tmp_path / name, seal_key=key)
        job = make_job("job_r", 1)
        store.insert_job(job)
        job.state, job.finished_at, job.result = COMPLETED, 1002.0, result
        store.save_job(job)
        store.commit()
        rows.append(store.db.execute("SELECT result_meta, result_seal FROM jobs").fetchone())
        loaded = store.load_job("job_r", "alice")
        store.close()
        assert loaded is not None
        if name == "wrong":
            assert loaded.result is None and loaded.result_damage is not None
            assert loaded.result_damage["code"] == "QK308"
        else:
            assert loaded.result is not None and loaded.result["counts"] == {"00": 3, "11": 5}
    assert rows[0] == rows[1] and rows[0][0] == text and rows[2][1] != rows[1][1]


def _frames_of_next_commit(store: Store, wal: Path) -> list[int]:
    """The page numbers of the WAL frames that ``store``'s next commit writes (the log
    read from where it ends now: each frame a 24-byte header, its page number first)."""
    page = store.db.execute("PRAGMA page_size").fetchone()[0]
    start = max(wal.stat().st_size, 32)
    store.commit((1, "f" * 64, 64))
    data = wal.read_bytes()[start:]
    frame = 24 + page
    return [int.from_bytes(data[at : at + 4], "big") for at in range(0, len(data), frame)]


def test_a_jobs_end_commits_one_page_of_each_tree_it_changes_and_no_index_no_query_needs(
    tmp_path: Path,
) -> None:
    """A job's end (its row, its usage row, the audit head) writes the row's page, its
    indexes that a query reads, and the usage row's: no index of every job's state (the
    jobs not ended have ``jobs_active``), none of the usage rows' jobs (found by their
    ids), none of a tenant's jobs by state (``jobs_tenant`` is by submission order, and
    an end does not move its entry), and ``meta`` is one tree (``WITHOUT ROWID``), not a
    table and its key's index."""
    store = Store(tmp_path)
    store.db.execute("PRAGMA wal_autocheckpoint=0")  # the log only grows: read its frames
    jobs = [make_job(f"job_{seq:03d}", seq) for seq in range(1, 201)]
    for job in jobs:
        store.insert_job(job)
    store.commit()
    for job in jobs[:-1]:  # every job but the last ended: the trees have many pages
        job.state, job.finished_at = COMPLETED, 2000.0 + job.seq
        job.result, job.cache_key = encode_result({"counts": {"00": job.seq}}), f"{job.seq:064x}"
        store.save_job(job)
        end = 2000.0 + job.seq
        store.insert_usage(job.job_id, "alice", COMPLETED, end, Usage(shots=100), seq=job.seq)
    store.commit()

    last = jobs[-1]
    last.state, last.finished_at, last.cache_key = COMPLETED, 3000.0, "e" * 64
    last.result = encode_result({"counts": {"11": 100}})
    store.save_job(last)
    store.insert_usage(
        last.job_id, "alice", COMPLETED, 3000.0, Usage(shots=100), seq=last.seq, ended_before=0
    )
    frames = _frames_of_next_commit(store, tmp_path / (DB_FILE + "-wal"))
    tree = dict(store.db.execute("SELECT pageno, name FROM dbstat").fetchall())
    written = sorted(tree[page] for page in frames if page != 1)  # 1: the header, when it grows
    assert written == sorted(
        [
            "jobs",  # the row's page
            "jobs_active",  # it left the jobs not ended
            "jobs_cache",  # its cache key
            "jobs_result_end",  # its stored result, by end time
            "meta",  # the audit head, one page
            "usage_of_job",  # its usage row by its job's sequence number, at the right end
            "usage",  # its usage row
            "usage_tenant_end",  # the tenant's usage by end time
        ]
    )
    store.close()


def test_a_jobs_usage_rows_are_read_by_its_sequence_number_and_only_its_own(
    tmp_path: Path,
) -> None:
    """A job's usage rows are found by its sequence number's index (``usage_of_job``),
    never by scanning the tenant's ends, and another job's rows are not taken for its
    own (an id with a dot after it included)."""
    store = Store(tmp_path)
    store.insert_job(make_job("job_a", 1))
    store.insert_job(make_job("job_a.b", 2))
    store.insert_usage("job_a", "alice", COMPLETED, 1000.0, Usage(shots=1), seq=1)
    store.insert_usage("job_a.b", "alice", COMPLETED, 1001.0, Usage(shots=2), seq=2)
    assert store.insert_usage("job_a", "alice", COMPLETED, 1002.0, Usage(shots=4), seq=1) == (
        "job_a.2"
    )
    store.commit()
    rows = UsageRows(store).rows("alice", None, None, "job_a", 10)
    assert [(row[0], row[1]) for row in rows] == [("job_a.2", "job_a"), ("job_a.1", "job_a")]
    assert UsageRows(store).totals("alice", None, None, "job_a") == (2, Usage(shots=5))
    assert UsageRows(store).rows("alice", 1001.5, None, "job_a", 10)[0][0] == "job_a.2"
    assert UsageRows(store).rows("bob", None, None, "job_a", 10) == []
    assert UsageRows(store).rows("alice", None, None, "job_none", 10) == []
    where, args = usage_where("alice", None, None, "job_a")
    plan = " ".join(
        str(row[-1])
        for row in store.db.execute(f"EXPLAIN QUERY PLAN SELECT * FROM usage WHERE {where}", args)
    )
    assert "usage_of_job (job_seq=?)" in plan and "usage_tenant_end" not in plan, plan
    store.close()


def test_the_jobs_not_ended_are_read_by_their_own_index_at_a_start(tmp_path: Path) -> None:
    store = Store(tmp_path)
    plan = " ".join(
        str(row[-1])
        for row in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT job_id FROM jobs WHERE "
            "(state = 'QUEUED' OR state = 'VALIDATING' OR state = 'RUNNING') ORDER BY seq"
        )
    )
    assert "jobs_active" in plan and "TEMP B-TREE" not in plan, plan
    store.close()


def _telemetry_result(counts: dict[str, int]) -> dict[str, object]:
    """A result as a small job's run makes one: its counts, then about 1.5 KB of head
    (its telemetry)."""
    telemetry = {f"figure_{n:02d}": n * 1.5 for n in range(60)}
    telemetry["engine_reason"] = "cheapest of 11 able engines (est. 604 us)"
    return {
        "counts": counts,
        "shots": 100,
        "seed": 7,
        "engine": "stabilizer",
        "telemetry": telemetry,
    }


def test_a_results_index_is_stored_without_its_head_which_reads_back_from_its_text(
    tmp_path: Path,
) -> None:
    """Format 8: ``result_meta`` holds the counts' index (entries, offsets, marks, digest),
    not the head the result's text holds after its counts; the head, read back from that
    text, is the one written (with counts, with none, and with counts that are no
    mapping), and the seal still holds."""
    from qmk.kernel.security.seals import derive

    key = derive(b"s" * 32, "result")
    values = {
        "job_a": _telemetry_result({"00": 60, "11": 40}),
        "job_b": {"counts": {}, "shots": 0},
        "job_c": {"counts": {}},
        "job_d": {"counts": [1, 2], "note": "é"},  # no counts mapping: the head is all
        "job_e": {"shots": 3, "telemetry": {"x": "ü"}},
    }
    store = Store(tmp_path, seal_key=key)
    for seq, (job_id, value) in enumerate(values.items(), 1):
        job = make_job(job_id, seq)
        store.insert_job(job)
        job.state, job.finished_at, job.result = COMPLETED, 1002.0, encode_result(value)
        store.save_job(job)
    store.commit()
    store.close()
    store = Store(tmp_path, seal_key=key)
    try:
        for job_id, value in values.items():
            (meta,) = store.db.execute(
                "SELECT result_meta FROM jobs WHERE job_id=?", (job_id,)
            ).fetchone()
            assert "head" not in json.loads(meta) and len(meta) < 200
            loaded = store.load_job(job_id, "alice")
            assert loaded is not None and loaded.result is not None, loaded
            assert loaded.result_damage is None
            head = {k: v for k, v in value.items() if k != "counts" or job_id == "job_d"}
            assert dict(loaded.result.head) == head
            assert dict(loaded.result) == value and json.loads(loaded.result.data) == value
    finally:
        store.close()


def test_a_small_jobs_row_with_its_result_takes_no_overflow_page(tmp_path: Path) -> None:
    """A small job's row (a 1,500-character program, its run request, a result of 1.5 KB
    of telemetry) fits its page: its index no longer repeats the result's head, which
    took the row past a page (an overflow page a job, written at each end)."""
    store = Store(tmp_path)
    for seq in range(1, 21):
        job = make_job(f"job_{seq:03d}", seq)
        job.graph = '{"program": "' + "x" * 1486 + '"}'
        store.insert_job(job)
        job.state, job.finished_at = COMPLETED, 1002.0
        job.result = encode_result(_telemetry_result({"00": seq, "11": 100 - seq}))
        store.save_job(job)
    store.commit()
    (overflow,) = store.db.execute(
        "SELECT COUNT(*) FROM dbstat WHERE name='jobs' AND pagetype='overflow'"
    ).fetchone()
    (row,) = store.db.execute(
        "SELECT length(CAST(result AS BLOB)) + length(result_meta) + length(graph) "
        "+ length(request) FROM jobs LIMIT 1"
    ).fetchone()
    store.close()
    assert overflow == 0 and 3000 < row < 4000
