"""GraphQL for UIs: a read API over jobs, telemetry, usage and channels at ``/v1/graphql``.

Every field is answered by the syscall a REST route would call (``q_list_jobs``,
``q_status``, ``q_get_telemetry``, ``q_usage``, ``q_list_channels``, ``q_chan_status``,
``q_resource_query``), with the session of the request's ``Authorization: Bearer``:
the same authentication, the same tenant isolation (another tenant's job is not found,
as over REST), the same refusals (a field's error carries the QMK code in
``extensions.code``). The schema is read-only: no mutations, no subscriptions.

**The door's limits.** What a query may ask for and take are keys of the kernel
config's ``[server]`` table, the door's (:class:`~qmk.abi.limits.ServerConfig`:
``graphql_max_depth``, ``graphql_max_cost``, ... and ``graphql_max_answer_bytes``), read
into :class:`Limits` by :meth:`Limits.of`; each refusal names its key. The answer, held
whole until it is sent, is one of the door's held answers (:class:`~qmk.abi.door.
HeldAnswers`), as a gRPC message is.

**Checked in one pass over its text.** Before any field runs, a query is measured
(:class:`Limits`). That counts its fields once every fragment spread is expanded, its
aliases (expanded too), its depth (introspection aside), and its cost. Each field costs
1, and each field that makes a syscall :data:`SYSCALL_COST`. A field's cost is
multiplied by the ``limit`` of every list above it. A ``limit`` given as a variable
counts as the largest it may be. Each fragment is measured once per place it can stand,
and kept, not walked again at each of its spreads. So the measure takes time linear in
the text, even for fragments that double at each level.
(``F_k { ...F_{k-1} ...F_{k-1} }`` expands to 2^k fields; it is refused for its size
after k steps.) A query over a limit, or with more fragment spreads than
``max_spreads``, is refused whole, with ``extensions.code`` ``QR32602`` (invalid params).

**Off the event loop, under a time limit.** Parsing, validation and execution run in a
few threads of the GraphQL executor's own (``Limits.threads``). Each has an event loop of
its own. A resolver's syscall is handed to the kernel's loop and awaited there. A
query still running after ``graphql_max_time_s`` is stopped (its pending syscalls
cancelled) and answered with ``QS1006`` (``limit: "graphql_max_time_s"``); past
``graphql_max_queries`` queries at once, another is refused at once (``QS1011``).

**A bounded answer.** Every JSON field (a job's ``result`` and ``telemetry``, the
tenant's ``telemetry`` and ``resources``) is priced by its size as it would be sent. A
stored result is priced by its stored bytes, with no copy. One answer's fields together
may take at most ``graphql_max_answer_bytes`` (the largest result a job keeps). A field
that would pass it is answered null with ``QS1006`` (``limit:
"graphql_max_answer_bytes"``). So many aliases of one big result
cost at most the bound, not the result's size times the aliases (docs/graphql.md). The
whole answer, lists of jobs and usage included, is then held to the same bound: past it
the answer is ``QS1006`` with no data. A big
result is read in pages by ``q_get_result`` (``GET /v1/jobs/{id}/result``).

    POST /v1/graphql   {"query": "{ jobs(limit: 5) { job_id state usage { shots } } }"}
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from msgspec import UNSET
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from qmk import aio, defaults
from qmk.abi import replies
from qmk.abi.errors import InternalError, InvalidParams
from qmk.abi.jsonrpc import encode_parts
from qmk.abi.limits import ServerConfig
from qmk.errors import QMKError, QuotaError, UnavailableError

LOG = logging.getLogger("qmk.http")

#: What a syscall field costs (each other field costs 1).
SYSCALL_COST = 10
#: The fields that make a syscall for each object they are asked on.
_SYSCALL_FIELDS = frozenset(
    {"jobs", "job", "telemetry", "usage", "channels", "channel", "resources", "result", "machine"}
)
#: The largest ``limit`` a list field takes (q_list_jobs' and q_usage's).
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What one GraphQL query may ask for, and what running it may take: the door's
    ``[server]`` keys (:meth:`of`; the defaults are theirs).

    Attributes:
        max_depth: the deepest nesting of fields (introspection's own fields aside).
        max_cost: the largest cost (see the module docstring).
        max_aliases: the most aliases, every fragment spread expanded.
        max_tokens: the most tokens of the query text.
        max_fields: the most fields, every fragment spread expanded.
        max_spreads: the most fragment spreads in the query text.
        max_answer_bytes: the most bytes one answer carries, its JSON fields (results,
            telemetry) priced as they run (``graphql_max_answer_bytes``).
        max_time_s: the longest one query runs (parse, validation, execution).
        threads: the threads queries run in.
        max_queries: the most queries running or waiting for a thread at once.
    """

    max_depth: int = defaults.GRAPHQL_MAX_DEPTH
    max_cost: int = defaults.GRAPHQL_MAX_COST
    max_aliases: int = defaults.GRAPHQL_MAX_ALIASES
    max_tokens: int = defaults.GRAPHQL_MAX_TOKENS
    max_fields: int = defaults.GRAPHQL_MAX_FIELDS
    max_spreads: int = defaults.GRAPHQL_MAX_SPREADS
    max_answer_bytes: int = defaults.GRAPHQL_MAX_ANSWER_BYTES
    max_time_s: float = defaults.GRAPHQL_MAX_TIME_S
    threads: int = 2
    max_queries: int = defaults.GRAPHQL_MAX_QUERIES

    @classmethod
    def of(cls, config: ServerConfig) -> Limits:
        """The limits of the door's ``[server]`` table.

        >>> from qmk.abi.limits import ServerConfig
        >>> Limits.of(ServerConfig(tcp=("127.0.0.1", 0), graphql_max_aliases=3)).max_aliases
        3
        """
        return cls(
            max_depth=config.graphql_max_depth,
            max_cost=config.graphql_max_cost,
            max_aliases=config.graphql_max_aliases,
            max_tokens=config.graphql_max_tokens,
            max_fields=config.graphql_max_fields,
            max_spreads=config.graphql_max_spreads,
            max_answer_bytes=config.graphql_max_answer_bytes,
            max_time_s=config.graphql_max_time_s,
            max_queries=config.graphql_max_queries,
        )


Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


class AnswerBudget:
    """The bytes one answer may still carry (:attr:`Limits.max_answer_bytes`).

    >>> budget = AnswerBudget(10)
    >>> budget.spend(8, "a result")
    >>> try:
    ...     budget.spend(8, "a result")
    ... except QuotaError as exc:
    ...     exc.details["limit"], budget.spent
    ('graphql_max_answer_bytes', 8)
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, nbytes: int, what: str) -> None:
        """Take ``nbytes`` for ``what``.

        Raises:
            QuotaError: they would pass the limit (nothing is taken).
        """
        if self.spent + nbytes > self.limit:
            raise QuotaError(
                f"{what} holds {nbytes} bytes, which would take this answer past "
                f"{self.limit} bytes (server.graphql_max_answer_bytes); ask for fewer at once, "
                "or read a result in pages (q_get_result)",
                limit="graphql_max_answer_bytes",
                value=self.limit,
            )
        self.spent += nbytes


@dataclass(frozen=True, slots=True)
class Context:
    """A request's context: the session, the syscall door, the answer's byte budget."""

    session_id: str
    call: Call
    budget: AnswerBudget = field(default_factory=lambda: AnswerBudget(Limits().max_answer_bytes))

    async def syscall(self, name: str, **params: Any) -> Any:
        return await self.call(name, {"session_id": self.session_id, **params})


def json_size(value: Any) -> int:
    """The bytes ``value`` takes as compact JSON; a value kept encoded (a stored result,
    ``__json_bytes__``) counts its bytes without a copy.

    >>> json_size({"a": [1, 2]})
    11
    """
    return sum(len(part) for part in encode_parts(value)) - 1


def _priced(info: Info[Any, Any], value: Any, what: str) -> Any:
    """``value``, its size taken from the answer's budget."""
    _ctx(info).budget.spend(json_size(value), what)
    return value


def _ctx(info: Info[Any, Any]) -> Context:
    context: Context = info.context
    return context


@strawberry.type(description="one job of the tenant (as q_status shows it)")
class Job:
    job_id: strawberry.ID
    state: str
    tenant: str
    shots: int | None
    seed: int | None
    priority: int | None
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    error: JSON | None

    @strawberry.field(description="its result (counts, telemetry), once COMPLETED")
    async def result(self, info: Info[Any, Any]) -> JSON | None:
        job: replies.Job = await _ctx(info).syscall("q_status", job_id=str(self.job_id))
        result = None if job.result is UNSET else job.result  # kept encoded: sent as it is
        return _priced(info, result, f"job {self.job_id}'s result")

    @strawberry.field(description="what the kernel knows of its runs (q_get_telemetry)")
    async def telemetry(self, info: Info[Any, Any]) -> JSON:
        telemetry = await _ctx(info).syscall("q_get_telemetry", job_id=str(self.job_id))
        return _priced(info, telemetry.to_json(), f"job {self.job_id}'s telemetry")

    @strawberry.field(description="its usage records (one per end), newest first")
    async def usage(self, info: Info[Any, Any]) -> list[UsageRecord]:
        reply = await _ctx(info).syscall("q_usage", job_id=str(self.job_id), limit=MAX_LIMIT)
        return [_usage_record(record) for record in reply.records]


def _job(job: replies.Job) -> Job:
    return Job(
        job_id=strawberry.ID(job.job_id),
        state=job.state,
        tenant=job.tenant,
        shots=job.shots,
        seed=job.seed,
        priority=job.priority,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=None if job.error is None else JSON(job.error.to_json()),
    )


@strawberry.type(description="what one job's end used")
class UsageRecord:
    usage_id: strawberry.ID
    job_id: strawberry.ID
    state: str
    ended_at: float
    shots: int
    logical_qubit_seconds: float
    physical_qubit_cycles: float
    device_seconds: float
    result_bytes: int


def _usage_record(data: dict[str, Any]) -> UsageRecord:
    return UsageRecord(
        usage_id=strawberry.ID(data["usage_id"]),
        job_id=strawberry.ID(data["job_id"]),
        state=data["state"],
        ended_at=data["ended_at"],
        shots=data["shots"],
        logical_qubit_seconds=data["logical_qubit_seconds"],
        physical_qubit_cycles=data["physical_qubit_cycles"],
        device_seconds=data["device_seconds"],
        result_bytes=data["result_bytes"],
    )


@strawberry.type(description="the tenant's usage in a window (q_usage)")
class Usage:
    tenant: str
    since: float | None
    until: float | None
    job_id: strawberry.ID | None
    count: int
    records: list[UsageRecord]
    totals: JSON
    invoice: JSON


@strawberry.type(description="an entanglement channel of the tenant")
class Channel:
    channel_id: strawberry.ID
    state: str
    tenants: list[str]
    fidelity: float


def _channel(channel: replies.Channel) -> Channel:
    return Channel(
        channel_id=strawberry.ID(channel.channel_id),
        state=channel.state,
        tenants=list(channel.tenants),
        fidelity=float(channel.fidelity),
    )


@strawberry.type(description="what the session's tenant may read")
class Query:
    @strawberry.field(description="the tenant's jobs, newest first (q_list_jobs)")
    async def jobs(
        self, info: Info[Any, Any], state: str | None = None, limit: int = defaults.JOBS_LIMIT
    ) -> list[Job]:
        reply = await _ctx(info).syscall("q_list_jobs", state=state, limit=limit)
        return [_job(job) for job in reply.jobs]

    @strawberry.field(description="one job of the tenant (q_status; another's is not found)")
    async def job(self, info: Info[Any, Any], job_id: strawberry.ID) -> Job:
        return _job(await _ctx(info).syscall("q_status", job_id=str(job_id)))

    @strawberry.field(description="the tenant's aggregate telemetry (q_get_telemetry)")
    async def telemetry(self, info: Info[Any, Any]) -> JSON:
        telemetry = await _ctx(info).syscall("q_get_telemetry", job_id=None)
        return _priced(info, telemetry.to_json(), "the tenant's telemetry")

    @strawberry.field(description="the tenant's usage records, totals and invoice (q_usage)")
    async def usage(
        self,
        info: Info[Any, Any],
        since: float | None = None,
        until: float | None = None,
        job_id: strawberry.ID | None = None,
        limit: int = defaults.JOBS_LIMIT,
    ) -> Usage:
        reply = await _ctx(info).syscall(
            "q_usage",
            since=since,
            until=until,
            job_id=None if job_id is None else str(job_id),
            limit=limit,
        )
        return Usage(
            tenant=reply.tenant,
            since=reply.since,
            until=reply.until,
            job_id=None if reply.job_id is None else strawberry.ID(reply.job_id),
            count=reply.count,
            records=[_usage_record(r) for r in reply.records],
            totals=reply.totals,
            invoice=reply.invoice,
        )

    @strawberry.field(description="the tenant's channels, newest first (q_list_channels)")
    async def channels(self, info: Info[Any, Any], state: str | None = None) -> list[Channel]:
        reply = await _ctx(info).syscall("q_list_channels", state=state)
        return [_channel(c) for c in reply.channels]

    @strawberry.field(description="one channel of the tenant (q_chan_status)")
    async def channel(self, info: Info[Any, Any], channel_id: strawberry.ID) -> Channel:
        return _channel(await _ctx(info).syscall("q_chan_status", channel_id=str(channel_id)))

    @strawberry.field(description="the machine's inventory, the tenant's quota and usage")
    async def resources(self, info: Info[Any, Any]) -> JSON:
        resources = await _ctx(info).syscall("q_resource_query")
        return _priced(info, resources.to_json(), "the resources")

    @strawberry.field(description="the shared machine now (q_machine_status; docs/machine.md)")
    async def machine(self, info: Info[Any, Any]) -> JSON:
        machine = await _ctx(info).syscall("q_machine_status")
        return _priced(info, machine.to_json(), "the machine")


#: How many objects a list without a ``limit`` may hold, at most, for the cost: a job's
#: usage records (it ends once, again after each restore), the tenant's channels.
_LIST_SIZES = {"usage": 10, "channels": 100}


def _limit(field: FieldNode) -> int:
    """A field's ``limit`` argument (a variable: the most it may be; absent: the default)."""
    for argument in field.arguments or ():
        if argument.name.value == "limit":
            if isinstance(argument.value, IntValueNode):
                return max(1, int(argument.value.value))
            return MAX_LIMIT
    return defaults.JOBS_LIMIT


def _multiplier(field: FieldNode, records: int, *, root: bool) -> tuple[int, int]:
    """How many objects ``field``'s subfields are asked on, and the ``records`` of its
    subfields: ``jobs`` has its limit; the tenant's ``usage`` (a root field) is one
    object whose ``records`` hold its limit; a job's ``usage`` and ``channels`` are lists
    of :data:`_LIST_SIZES`."""
    name = field.name.value
    if name == "jobs":
        return _limit(field), 1
    if name == "usage":
        return (1, _limit(field)) if root else (_LIST_SIZES["usage"], 1)
    if name == "records":
        return records, 1
    return _LIST_SIZES.get(name, 1), 1


@dataclass(frozen=True, slots=True)
class Size:
    """What a selection set asks for, every fragment spread expanded.

    Attributes:
        fields: its fields (and theirs).
        aliases: the aliases among them.
        depth: its nesting: 1 for a set of leaves (introspection's fields aside).
        cost: its cost (the module docstring).
    """

    fields: int = 0
    aliases: int = 0
    depth: int = 0
    cost: int = 0


class Measure:
    """The :class:`Size` of a document's selection sets, each fragment measured once.

    A fragment's size depends on where it stands only through the root flag and the
    ``records`` of a ``usage`` above it. So it is kept per (fragment, records, root), and
    a spread met again costs a look-up. The whole document is then measured in time
    linear in its text, however often its fragments spread each other. A spread of a
    fragment being measured (a cycle) or of no fragment counts nothing: graphql-core's
    own rules refuse both.

    >>> from graphql import parse
    >>> doc = parse("{ jobs(limit: 2) { ...A } } fragment A on Job { job_id a: state }")
    >>> Measure(doc).operation(doc.definitions[0])
    Size(fields=3, aliases=1, depth=2, cost=14)
    """

    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._kept: dict[tuple[str, int, bool], Size] = {}
        self._open: set[str] = set()

    def operation(self, node: OperationDefinitionNode) -> Size:
        """The size of an operation (its own fields are the root)."""
        return self.selections(node.selection_set, 1, True)

    def selections(self, node: SelectionSetNode | None, records: int, root: bool) -> Size:
        """The size of ``node``; ``records``: the records of a ``usage`` above it."""
        fields = aliases = depth = cost = 0
        for selection in node.selections if node else ():
            if isinstance(selection, FieldNode):
                name = selection.name.value
                fields += 1
                aliases += selection.alias is not None
                if name.startswith("__"):  # introspection: counted, not priced
                    inner = self.selections(selection.selection_set, 1, False)
                    fields, aliases = fields + inner.fields, aliases + inner.aliases
                    continue
                times, below = _multiplier(selection, records, root=root)
                inner = self.selections(selection.selection_set, below, False)
                fields, aliases = fields + inner.fields, aliases + inner.aliases
                depth = max(depth, 1 + inner.depth)
                cost += (SYSCALL_COST if name in _SYSCALL_FIELDS else 1) + times * inner.cost
                continue
            if isinstance(selection, InlineFragmentNode):
                inner = self.selections(selection.selection_set, records, root)
            elif isinstance(selection, FragmentSpreadNode):
                inner = self.fragment(selection.name.value, records, root)
            else:  # pragma: no cover - graphql-core has no other selection
                continue
            fields, aliases = fields + inner.fields, aliases + inner.aliases
            depth, cost = max(depth, inner.depth), cost + inner.cost
        return Size(fields, aliases, depth, cost)

    def fragment(self, name: str, records: int, root: bool) -> Size:
        """The size of fragment ``name`` spread where ``records`` and ``root`` hold."""
        key = (name, records, root)
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        fragment = self.fragments.get(name)
        if fragment is None or name in self._open:
            return Size()
        self._open.add(name)
        try:
            kept = self._kept[key] = self.selections(fragment.selection_set, records, root)
        finally:
            self._open.discard(name)
        return kept


def refusals(document: DocumentNode, limits: Limits) -> list[GraphQLError]:
    """Why ``document`` is over ``limits`` (empty: it is within them): its fragment
    spreads against ``max_spreads``, each operation's :class:`Size` against the rest. One
    pass over the text (:class:`Measure`); each refusal is coded ``QR32602``."""
    errors: list[GraphQLError] = []

    def refuse(message: str, node: Any) -> None:
        errors.append(GraphQLError(message, node, extensions=_extensions(InvalidParams(message))))

    spreads = _spreads(document)
    if spreads > limits.max_spreads:
        refuse(
            f"the query has {spreads} fragment spreads; at most {limits.max_spreads} "
            "(server.graphql_max_spreads)",
            None,
        )
        return errors
    measure = Measure(document)
    for node in document.definitions:
        if not isinstance(node, OperationDefinitionNode):
            continue
        name = node.name.value if node.name else "anonymous"
        try:
            size = measure.operation(node)
        except RecursionError:
            refuse(f"'{name}' is nested too deeply to be measured", node)
            continue
        depth = size.depth - 1  # the operation's own fields are at depth 0
        for over, message in (
            (
                size.fields > limits.max_fields,
                f"'{name}' asks for {size.fields} fields once its fragments are expanded; "
                f"at most {limits.max_fields} (server.graphql_max_fields)",
            ),
            (
                size.aliases > limits.max_aliases,
                f"'{name}' has {size.aliases} aliases once its fragments are expanded; at "
                f"most {limits.max_aliases} (server.graphql_max_aliases)",
            ),
            (
                depth > limits.max_depth,
                f"'{name}' exceeds maximum operation depth of {limits.max_depth} "
                "(server.graphql_max_depth)",
            ),
            (
                size.cost > limits.max_cost,
                f"the query costs {size.cost}; at most {limits.max_cost} "
                f"(server.graphql_max_cost: each list counts its limit times its fields; a "
                f"syscall field {SYSCALL_COST})",
            ),
        ):
            if over:
                refuse(message, node)
    return errors


def _spreads(document: DocumentNode) -> int:
    """The fragment spreads written in ``document`` (each selection set read once)."""
    count = 0
    stack = [
        d.selection_set
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                count += 1
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)
    return count


class QueryLimits(SchemaExtension):
    """:class:`Limits` on a query, before graphql-core validates it: the parser's token
    cap, then :func:`refusals`; a query refused here is never validated further (its
    refusals are the answer), so graphql-core's own rules only see a bounded document.

    Args:
        limits: the limits.
    """

    def __init__(self, *, limits: Limits) -> None:
        self.limits = limits

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        yield

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        if document is not None:
            refused = refusals(document, self.limits)
            if refused:  # strawberry skips its validation when errors are set before it
                self.execution_context.pre_execution_errors = refused
        yield


def _extensions(error: QMKError) -> dict[str, Any]:
    return {"code": error.code, "name": error.name}


class _Schema(strawberry.Schema):
    """The schema, logging only the errors that are no refusal of a syscall (strawberry
    logs every error with its traceback)."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, QMKError):
                LOG.error("graphql: %s", error.message, exc_info=original)


def make_schema(limits: Limits) -> strawberry.Schema:
    """The read-only schema, with ``limits`` checked before a query runs."""
    return _Schema(
        query=Query,
        # the names of every other wire of QMK (job_id, finished_at), not camelCase
        config=StrawberryConfig(auto_camel_case=False),
        extensions=[functools.partial(QueryLimits, limits=limits)],
    )


def error_json(error: GraphQLError) -> dict[str, Any]:
    """A GraphQL error as the answer carries it: a QMK refusal keeps its code and name
    in ``extensions`` (and its message); anything else is an internal error's code."""
    out: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if isinstance(original, QMKError):
        out["message"] = str(original)
        extensions = {**(out.get("extensions") or {}), **original.details}
        out["extensions"] = {**extensions, **_extensions(original)}
    elif original is not None:  # a bug of ours: no traceback text leaves the server
        out["message"] = "the server failed while answering this field"
        out["extensions"] = _extensions(InternalError(out["message"]))
    elif not (out.get("extensions") or {}).get("code"):
        out["extensions"] = {**(out.get("extensions") or {}), **_extensions(InvalidParams("x"))}
    return out


class GraphQL:
    """Executes GraphQL requests against the syscalls (one schema per application), in
    threads of its own (see the module docstring).

    Args:
        limits: what a query may ask for and take (default :class:`Limits`).
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.schema = make_schema(self.limits)
        self._running = 0
        self._loops = threading.local()
        self._pool = ThreadPoolExecutor(self.limits.threads, thread_name_prefix="qmk-graphql")
        # started now, not on a request: a thread started from the loop waits for the GIL
        started = threading.Barrier(self.limits.threads + 1)
        for _ in range(self.limits.threads):
            self._pool.submit(started.wait)
        started.wait()
        weakref.finalize(self, self._pool.shutdown, wait=False)

    def close(self) -> None:
        """Let the threads end (a query still in one runs to its end or time limit)."""
        self._pool.shutdown(wait=False)

    async def execute(
        self,
        call: Call,
        session_id: str,
        query: str,
        variables: dict[str, Any] | None,
        operation: str | None,
    ) -> dict[str, Any]:
        """``{"data": ..., "errors": [...]}`` of one request (``errors`` when any).

        ``call`` is awaited on the caller's event loop; the query itself runs in one of
        the executor's threads.

        Raises:
            UnavailableError: ``Limits.max_queries`` queries are running already.
        """
        if self._running >= self.limits.max_queries:
            raise UnavailableError(
                f"{self._running} GraphQL queries are running (at most "
                f"{self.limits.max_queries}: server.graphql_max_queries); retry in a moment",
                limit="graphql_max_queries",
                value=self.limits.max_queries,
            )
        loop = asyncio.get_running_loop()

        async def on_kernel(name: str, params: dict[str, Any]) -> Any:
            # a resolver's syscall, run on the caller's loop; cancelled with the query
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(_awaited(call(name, params)), loop)
            )

        context = Context(session_id, on_kernel, AnswerBudget(self.limits.max_answer_bytes))
        self._running += 1
        try:
            return await loop.run_in_executor(
                self._pool, self._in_thread, query, variables, operation, context
            )
        finally:
            self._running -= 1

    def _in_thread(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation: str | None,
        context: Context,
    ) -> dict[str, Any]:
        loop: asyncio.AbstractEventLoop | None = getattr(self._loops, "loop", None)
        if loop is None:
            loop = self._loops.loop = asyncio.new_event_loop()
        return loop.run_until_complete(self._answer(query, variables, operation, context))

    async def _answer(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation: str | None,
        context: Context,
    ) -> dict[str, Any]:
        limit = self.limits.max_time_s
        try:
            async with aio.timeout(limit):
                result = await self.schema.execute(
                    query,
                    variable_values=variables,
                    context_value=context,
                    operation_name=operation,
                )
        except TimeoutError:
            late = QuotaError(
                f"the query ran past its time limit of {limit:g} s (server.graphql_max_time_s) "
                "and was stopped; ask for less at once",
                limit="graphql_max_time_s",
                value=limit,
            )
            return {"data": None, "errors": [{"message": str(late), **_details(late)}]}
        size = json_size(result.data)
        if size > self.limits.max_answer_bytes:
            # every field priced or not (lists of jobs, usage, telemetry), the whole answer
            # stays within the bound the door holds every answer to
            big = QuotaError(
                f"the answer would hold {size} bytes, past {self.limits.max_answer_bytes} "
                "(server.graphql_max_answer_bytes); ask for fewer fields or aliases at once",
                limit="graphql_max_answer_bytes",
                value=self.limits.max_answer_bytes,
                needed=size,
            )
            return {"data": None, "errors": [{"message": str(big), **_details(big)}]}
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [error_json(error) for error in result.errors]
        return answer

    def sdl(self) -> str:
        """The schema in the GraphQL schema language."""
        return str(self.schema)


async def _awaited(call: Awaitable[Any]) -> Any:
    return await call


def _details(error: QMKError) -> dict[str, Any]:
    return {"extensions": {**_extensions(error), **error.details}}


__all__ = [
    "MAX_LIMIT",
    "SYSCALL_COST",
    "AnswerBudget",
    "GraphQL",
    "Limits",
    "Measure",
    "QueryLimits",
    "Size",
    "error_json",
    "json_size",
    "make_schema",
    "refusals",
]
