"""GraphQL for UIs: a read API over jobs, telemetry, usage and channels at ``/v1/graphql``.

Every field is answered by the syscall a REST route would call (``q_list_jobs``,
``q_status``, ``q_get_telemetry``, ``q_usage``, ``q_list_channels``, ``q_chan_status``,
``q_resource_query``), with the session of the request's ``Authorization: Bearer``:
the same authentication, the same tenant isolation (another tenant's job is not found,
as over REST), the same refusals (a field's error carries the QMK code in
``extensions.code``). The schema is read-only: no mutations, no subscriptions.

A query is checked before it runs (:class:`Limits`): its depth (introspection aside),
its aliases, its tokens, and its cost, where each field costs 1 and each field that
makes a syscall :data:`SYSCALL_COST`, times the ``limit`` of every list above it (a
``limit`` given as a variable counts as the largest it may be). A query over a limit is
refused whole, with ``extensions.code`` ``QR32602`` (invalid params).

    POST /v1/graphql   {"query": "{ jobs(limit: 5) { job_id state usage { shots } } }"}
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import ValidationContext, ValidationRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from qmk import defaults
from qmk.abi.errors import InternalError, InvalidParams
from qmk.errors import QMKError

LOG = logging.getLogger("qmk.http")

#: What a syscall field costs (each other field costs 1).
SYSCALL_COST = 10
#: The fields that make a syscall for each object they are asked on.
_SYSCALL_FIELDS = frozenset(
    {"jobs", "job", "telemetry", "usage", "channels", "channel", "resources", "result"}
)
#: The largest ``limit`` a list field takes (q_list_jobs' and q_usage's).
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What one GraphQL query may ask for.

    Attributes:
        max_depth: the deepest nesting of fields (introspection's own fields aside).
        max_cost: the largest cost (see the module docstring).
        max_aliases: the most aliases.
        max_tokens: the most tokens of the query text.
    """

    max_depth: int = 6
    max_cost: int = 20_000
    max_aliases: int = 30
    max_tokens: int = 2_000


Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Context:
    """A request's context: the session and the syscall door."""

    session_id: str
    call: Call

    async def syscall(self, name: str, **params: Any) -> Any:
        return await self.call(name, {"session_id": self.session_id, **params})


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
        job = await _ctx(info).syscall("q_status", job_id=str(self.job_id))
        return job.get("result")

    @strawberry.field(description="what the kernel knows of its runs (q_get_telemetry)")
    async def telemetry(self, info: Info[Any, Any]) -> JSON:
        return await _ctx(info).syscall("q_get_telemetry", job_id=str(self.job_id))

    @strawberry.field(description="its usage records (one per end), newest first")
    async def usage(self, info: Info[Any, Any]) -> list[UsageRecord]:
        reply = await _ctx(info).syscall("q_usage", job_id=str(self.job_id), limit=MAX_LIMIT)
        return [_usage_record(record) for record in reply["records"]]


def _job(data: dict[str, Any]) -> Job:
    return Job(
        job_id=strawberry.ID(data["job_id"]),
        state=data["state"],
        tenant=data["tenant"],
        shots=data.get("shots"),
        seed=data.get("seed"),
        priority=data.get("priority"),
        created_at=data.get("created_at"),
        started_at=data.get("started_at"),
        finished_at=data.get("finished_at"),
        error=data.get("error"),
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


def _channel(data: dict[str, Any]) -> Channel:
    return Channel(
        channel_id=strawberry.ID(data["channel_id"]),
        state=data["state"],
        tenants=list(data.get("tenants") or []),
        fidelity=float(data.get("fidelity", 1.0)),
    )


@strawberry.type(description="what the session's tenant may read")
class Query:
    @strawberry.field(description="the tenant's jobs, newest first (q_list_jobs)")
    async def jobs(
        self, info: Info[Any, Any], state: str | None = None, limit: int = defaults.JOBS_LIMIT
    ) -> list[Job]:
        reply = await _ctx(info).syscall("q_list_jobs", state=state, limit=limit)
        return [_job(job) for job in reply["jobs"]]

    @strawberry.field(description="one job of the tenant (q_status; another's is not found)")
    async def job(self, info: Info[Any, Any], job_id: strawberry.ID) -> Job:
        return _job(await _ctx(info).syscall("q_status", job_id=str(job_id)))

    @strawberry.field(description="the tenant's aggregate telemetry (q_get_telemetry)")
    async def telemetry(self, info: Info[Any, Any]) -> JSON:
        return await _ctx(info).syscall("q_get_telemetry", job_id=None)

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
            tenant=reply["tenant"],
            since=reply["since"],
            until=reply["until"],
            job_id=None if reply["job_id"] is None else strawberry.ID(reply["job_id"]),
            count=reply["count"],
            records=[_usage_record(r) for r in reply["records"]],
            totals=reply["totals"],
            invoice=reply["invoice"],
        )

    @strawberry.field(description="the tenant's channels, newest first (q_list_channels)")
    async def channels(self, info: Info[Any, Any], state: str | None = None) -> list[Channel]:
        reply = await _ctx(info).syscall("q_list_channels", state=state)
        return [_channel(c) for c in reply["channels"]]

    @strawberry.field(description="one channel of the tenant (q_chan_status)")
    async def channel(self, info: Info[Any, Any], channel_id: strawberry.ID) -> Channel:
        return _channel(await _ctx(info).syscall("q_chan_status", channel_id=str(channel_id)))

    @strawberry.field(description="the machine's inventory, the tenant's quota and usage")
    async def resources(self, info: Info[Any, Any]) -> JSON:
        return await _ctx(info).syscall("q_resource_query")


def _cost_rule(max_cost: int) -> type[ValidationRule]:
    """A validation rule that refuses an operation costing more than ``max_cost``."""

    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.fragments = {
                d.name.value: d
                for d in context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            cost = self.cost(node.selection_set, set())
            if cost > max_cost:
                self.report_error(
                    GraphQLError(
                        f"the query costs {cost}; at most {max_cost} (each list counts its "
                        f"limit times its fields; a syscall field {SYSCALL_COST})",
                        node,
                        extensions=_extensions(InvalidParams("query too costly")),
                    )
                )

        def cost(
            self,
            selections: SelectionSetNode | None,
            seen: set[str],
            records: int = 1,
            depth: int = 0,
        ) -> int:
            """The cost of ``selections`` at ``depth`` (0: the operation's own fields);
            ``records``: how many records the ``usage`` above them may hold (its limit)."""
            total = 0
            for selection in selections.selections if selections else ():
                if isinstance(selection, FieldNode):
                    name = selection.name.value
                    if name.startswith("__"):
                        continue
                    own = SYSCALL_COST if name in _SYSCALL_FIELDS else 1
                    times, inner = _multiplier(selection, records, root=depth == 0)
                    total += own + times * self.cost(
                        selection.selection_set, seen, inner, depth + 1
                    )
                elif isinstance(selection, InlineFragmentNode):
                    total += self.cost(selection.selection_set, seen, records, depth)
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = self.fragments.get(selection.name.value)
                    if fragment is not None and selection.name.value not in seen:
                        inner_seen = seen | {selection.name.value}
                        total += self.cost(fragment.selection_set, inner_seen, records, depth)
            return total

    return CostLimit


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
        extensions=[
            functools.partial(QueryDepthLimiter, max_depth=limits.max_depth),
            functools.partial(MaxAliasesLimiter, max_alias_count=limits.max_aliases),
            functools.partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
            functools.partial(AddValidationRules, [_cost_rule(limits.max_cost)]),
        ],
    )


def error_json(error: GraphQLError) -> dict[str, Any]:
    """A GraphQL error as the answer carries it: a QMK refusal keeps its code and name
    in ``extensions`` (and its message); anything else is an internal error's code."""
    out: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if isinstance(original, QMKError):
        out["message"] = str(original)
        out["extensions"] = {**(out.get("extensions") or {}), **_extensions(original)}
    elif original is not None:  # a bug of ours: no traceback text leaves the server
        out["message"] = "the server failed while answering this field"
        out["extensions"] = _extensions(InternalError(out["message"]))
    elif not (out.get("extensions") or {}).get("code"):
        out["extensions"] = {**(out.get("extensions") or {}), **_extensions(InvalidParams("x"))}
    return out


class GraphQL:
    """Executes GraphQL requests against the syscalls (one schema per application)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.schema = make_schema(self.limits)

    async def execute(
        self,
        call: Call,
        session_id: str,
        query: str,
        variables: dict[str, Any] | None,
        operation: str | None,
    ) -> dict[str, Any]:
        """``{"data": ..., "errors": [...]}`` of one request (``errors`` when any)."""
        result = await self.schema.execute(
            query,
            variable_values=variables,
            context_value=Context(session_id, call),
            operation_name=operation,
        )
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [error_json(error) for error in result.errors]
        return answer

    def sdl(self) -> str:
        """The schema in the GraphQL schema language."""
        return str(self.schema)


__all__ = ["MAX_LIMIT", "SYSCALL_COST", "GraphQL", "Limits", "error_json", "make_schema"]
