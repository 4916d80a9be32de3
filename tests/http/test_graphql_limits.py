"""GraphQL's limits (src/qmk/http/graphql.py): a query is measured in one pass over its
text before any field runs, runs in the executor's threads under a time limit, and its
answer is bounded in bytes, every JSON field priced by its size (a stored result by its
stored bytes)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("strawberry")

from graphql import parse

from qmk import aio
from qmk.abi.replies import JobList
from qmk.errors import UnavailableError
from qmk.http.graphql import GraphQL, Limits, Measure, json_size
from qmk.kernel.service import Kernel
from support.kernel import ghz_graph, login, qubits, run_kernel


def doubling_query(levels: int) -> str:
    """The red team's query: ``F_k { ...F_{k-1} ...F_{k-1} }``, 2^levels fields expanded."""
    fragments = ["fragment F0 on Job { job_id }"]
    fragments += [
        f"fragment F{i} on Job {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    return f"{{ jobs(limit: 1) {{ ...F{levels} }} }} " + " ".join(fragments)


def uniform_graph(n: int) -> dict[str, Any]:
    """H on each of ``n`` qubits, each measured: 2^n outcomes, a result of many counts."""
    graph = ghz_graph(n)
    nodes = [node for node in graph["program"]["nodes"] if node["op"] != "APPLY_CNOT"]
    h = [{"id": f"h{i}", "op": "APPLY_H", "vqs": [q]} for i, q in enumerate(qubits(n))]
    graph["program"]["nodes"] = [nodes[0], *h, *nodes[2:]]
    return graph


class Recorder:
    """The syscalls a query made (the kernel's own methods answer them)."""

    def __init__(self, kernel: Kernel | None = None) -> None:
        self.kernel = kernel
        self.calls: list[str] = []

    async def __call__(self, name: str, params: dict[str, Any]) -> Any:
        self.calls.append(name)
        assert self.kernel is not None
        return await getattr(self.kernel, name)(**params)


def _codes(answer: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in answer.get("errors") or []]


def test_fragments_that_double_at_each_level_are_refused_for_their_expanded_size():
    graphql = GraphQL()
    calls = Recorder()
    query = doubling_query(22)
    assert len(query) < 900  # the red team's 897 bytes

    answer = asyncio.run(graphql.execute(calls, "sid", query, None, None))

    assert answer["data"] is None and "QR32602" in _codes(answer), answer
    assert "4194305 fields once its fragments are expanded" in answer["errors"][0]["message"]
    assert calls.calls == []  # refused whole: nothing ran


def test_the_measure_keeps_each_fragment_so_any_number_of_doublings_is_measured():
    # 2^150 paths through the fragments: walked path by path this never ends
    document = parse(doubling_query(150), max_tokens=2000)
    size = Measure(document).operation(document.definitions[0])  # type: ignore[arg-type]
    assert size.fields == 2**150 + 1 and size.depth == 2
    refused = asyncio.run(GraphQL().execute(Recorder(), "sid", doubling_query(150), None, None))
    assert refused["data"] is None and _codes(refused)[0] == "QR32602"


def test_spreads_past_the_cap_are_refused_before_any_other_check():
    graphql = GraphQL(Limits(max_spreads=3))
    query = "{ jobs { ...A ...A ...A ...A } } fragment A on Job { job_id }"
    answer = asyncio.run(graphql.execute(Recorder(), "sid", query, None, None))
    assert _codes(answer) == ["QR32602"]
    assert "4 fragment spreads; at most 3" in answer["errors"][0]["message"]


def test_aliases_are_counted_through_fragments():
    graphql = GraphQL(Limits(max_aliases=3))
    query = (
        "{ jobs { ...A ...B } } fragment A on Job { a: job_id b: state } fragment B on Job { ...A }"
    )
    answer = asyncio.run(graphql.execute(Recorder(), "sid", query, None, None))
    assert _codes(answer) == ["QR32602"]
    assert "4 aliases" in answer["errors"][0]["message"]


def test_introspection_is_within_the_limits():
    from graphql import get_introspection_query

    answer = asyncio.run(
        GraphQL().execute(Recorder(), "sid", get_introspection_query(), None, None)
    )
    assert "errors" not in answer and answer["data"]["__schema"]["queryType"]["name"] == "Query"


def test_thirty_aliases_of_a_result_answer_no_more_than_the_answer_bound(tmp_path: Path):
    async def body(kernel: Kernel) -> Any:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=uniform_graph(10), shots=3000, seed=5)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        stored = (await kernel.q_usage(session_id=sid, job_id=job.job_id)).records[0]
        size = stored["result_bytes"]  # the stored result's bytes, as metered
        graphql = GraphQL(Limits(max_answer_bytes=2 * size + size // 2))
        aliases = " ".join(f"r{i}: job(job_id: $id) {{ result }}" for i in range(30))
        answer = await graphql.execute(
            Recorder(kernel), sid, f"query($id: ID!) {{ {aliases} }}", {"id": job.job_id}, None
        )
        return answer, size, done

    answer, size, done = run_kernel(tmp_path, body)
    kept = [v for v in answer["data"].values() if v is not None and v["result"] is not None]
    assert len(kept) == 2  # two fit under 2.5 results' bytes; the third would not
    assert json_size(kept[0]["result"]) == size
    assert kept[0]["result"]["counts"] == done.result["counts"]
    refused = answer["errors"]
    assert len(refused) == 28 and set(_codes(answer)) == {"QS1006"}
    assert refused[0]["extensions"]["limit"] == "graphql_max_answer_bytes"
    assert f"holds {size} bytes" in refused[0]["message"]
    assert size > 10_000 and json_size(answer) < 3 * size  # 30 copies asked for: 2 sent


def test_thirty_aliases_of_job_lists_are_refused_past_the_answer_bound(tmp_path: Path):
    """Fields that are not JSON (lists of jobs) count too: the whole answer is bounded."""

    async def body(kernel: Kernel) -> Any:
        sid = await login(kernel, "alice")
        for seed in range(3):
            await kernel.q_submit(session_id=sid, graph=ghz_graph(2), shots=10, seed=seed)
        aliases = " ".join(f"l{i}: jobs(limit: 100) {{ job_id state }}" for i in range(30))
        query = f"{{ {aliases} }}"
        small = await GraphQL(Limits(max_answer_bytes=2000)).execute(
            Recorder(kernel), sid, query, None, None
        )
        roomy = await GraphQL(Limits(max_answer_bytes=1 << 20)).execute(
            Recorder(kernel), sid, query, None, None
        )
        return small, roomy

    small, roomy = run_kernel(tmp_path, body)
    assert "errors" not in roomy and len(roomy["data"]["l0"]) == 3
    assert json_size(roomy["data"]) > 2000  # the same answer is past the small bound
    assert small["data"] is None and _codes(small) == ["QS1006"]
    assert small["errors"][0]["extensions"]["limit"] == "graphql_max_answer_bytes"


def test_a_query_past_its_time_limit_is_stopped_and_its_syscalls_cancelled():
    graphql = GraphQL(Limits(max_time_s=0.2))
    cancelled = asyncio.Event()

    async def never(name: str, params: dict[str, Any]) -> Any:
        try:
            await asyncio.Event().wait()  # a syscall that never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> dict[str, Any]:
        async with aio.timeout(120):  # a guard against a hang only
            answer = await graphql.execute(never, "sid", "{ jobs { job_id } }", None, None)
            await cancelled.wait()
        return answer

    answer = asyncio.run(main())
    assert answer["data"] is None and _codes(answer) == ["QS1006"]
    assert answer["errors"][0]["extensions"]["limit"] == "graphql_max_time_s"


def test_queries_run_in_the_executors_threads_and_past_the_cap_are_refused():
    graphql = GraphQL(Limits(max_queries=1))
    entered, release = asyncio.Event(), asyncio.Event()

    async def held(name: str, params: dict[str, Any]) -> Any:
        entered.set()
        await release.wait()
        return JobList(jobs=[])

    async def main() -> tuple[Any, Any]:
        first = asyncio.ensure_future(
            graphql.execute(held, "sid", "{ jobs { job_id } }", None, None)
        )
        async with aio.timeout(120):
            await entered.wait()
            with pytest.raises(UnavailableError) as refused:
                await graphql.execute(held, "sid", "{ jobs { job_id } }", None, None)
            release.set()
            return await first, refused.value

    answer, refused = asyncio.run(main())
    assert answer == {"data": {"jobs": []}}
    assert refused.code == "QS1011" and refused.details["limit"] == "graphql_max_queries"
    names = {t.name for t in threading.enumerate()}
    assert any(name.startswith("qmk-graphql") for name in names)


def test_over_http_the_doubling_query_is_a_coded_refusal_and_other_tenants_are_served(
    client: Any,
):
    from support.http import bearer, session

    alice, bob = session(client), session(client, "bob")
    reply = client.post("/v1/graphql", json={"query": doubling_query(22)}, headers=bearer(alice))
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["data"] is None and _codes(answer)[0] == "QR32602"
    assert "fields once its fragments are expanded" in answer["errors"][0]["message"]
    other = client.post("/v1/graphql", json={"query": "{ jobs { job_id } }"}, headers=bearer(bob))
    assert other.status_code == 200 and other.json() == {"data": {"jobs": []}}
