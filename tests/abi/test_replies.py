"""Every syscall's reply is a typed struct (qmk.abi.replies) named by the method table: each
has a golden JSON file it reads back unchanged, and a real kernel's replies are those
structs key for key, so the JSON on the wire is the same typed or not."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmk.abi import replies
from qmk.abi.errors import BadResponse
from qmk.abi.jsonrpc import encode
from qmk.abi.methods import METHODS, SOCKET_METHODS
from qmk.kernel.service import Kernel
from support.kernel import BELL, FENCED, KEYS, login, run_kernel

GOLDEN = Path(__file__).parent / "golden"


def _wire(reply: Any) -> Any:
    """A kernel's reply as the JSON the wire carries (a stored result spliced in)."""
    return json.loads(encode(reply))


def test_the_module_lists_every_reply_struct() -> None:
    defined = {
        name
        for name, value in vars(replies).items()
        if inspect.isclass(value)
        and issubclass(value, replies.Reply)
        and value is not replies.Reply
    }
    assert defined == set(replies.REPLIES)


def test_every_method_of_the_table_replies_with_a_struct_of_the_module() -> None:
    for spec in (*METHODS.values(), *SOCKET_METHODS.values()):
        assert replies.REPLIES[spec.reply.__name__] is spec.reply, spec.name
        assert spec.returns.startswith(spec.reply.__name__ + " {"), spec.name


@pytest.mark.parametrize("name", sorted(replies.REPLIES))
def test_every_reply_struct_reads_its_golden_json_back_unchanged(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    assert path.exists(), f"{name} has no golden file: write {path}"
    data = json.loads(path.read_text(encoding="utf-8"))
    reply = replies.REPLIES[name].from_json(data)
    assert reply.to_json() == data
    assert set(reply.fields()) == set(data)  # its fields that are set: the JSON's keys
    assert json.loads(encode(reply)) == data  # as a wire writes it


def test_a_reply_is_read_by_its_attributes_and_is_no_mapping() -> None:
    data = json.loads((GOLDEN / "Job.json").read_text(encoding="utf-8"))
    job = replies.Job.from_json(data)
    assert job.state == data["state"] and job.error is None
    assert not isinstance(job, Mapping)
    for read in (lambda: job["state"], lambda: "state" in job, lambda: list(job)):
        with pytest.raises(TypeError):
            read()
    assert not hasattr(job, "get") and not hasattr(job, "keys")


def test_no_golden_file_is_left_without_its_struct() -> None:
    assert {path.stem for path in GOLDEN.glob("*.json")} == set(replies.REPLIES)


def test_a_reply_that_is_not_its_struct_is_a_bad_response_naming_the_key() -> None:
    data = json.loads((GOLDEN / "Job.json").read_text(encoding="utf-8"))
    with pytest.raises(BadResponse) as caught:
        replies.Job.from_json({**data, "shots": "many"})
    assert "$.shots" in str(caught.value) and caught.value.code == "QT004"
    later = replies.Job.from_json({**data, "added_by_a_newer_kernel": 1})  # ignored
    assert later.to_json() == data


def test_an_absent_key_stays_absent_and_a_null_stays_null() -> None:
    data = json.loads((GOLDEN / "Job.json").read_text(encoding="utf-8"))
    summary = {k: v for k, v in data.items() if k != "result"}
    assert replies.Job.from_json(summary).to_json() == summary
    assert replies.Job.from_json({**data, "result": None}).to_json()["result"] is None
    assert msgspec.json.decode(msgspec.json.encode(replies.Job.from_json(summary))) == summary


def test_a_real_kernels_syscalls_answer_their_structs_key_for_key(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> list[tuple[str, Any]]:
        got: list[tuple[str, Any]] = []
        session = await kernel.q_negotiate_caps(
            tenant="alice",
            key=KEYS["alice"],
            requested=["CAP_ALLOC", "CAP_LINK", "CAP_MAGIC", "CAP_NOPE"],
        )
        got.append(("q_negotiate_caps", session))
        alice = session.session_id
        await login(kernel, "bob")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        got.append(("q_submit", job))
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done.error
        got.append(("q_wait", done))
        job_id = job.job_id
        got.append(("q_status", await kernel.q_status(session_id=alice, job_id=job_id)))
        got.append(("q_get_result", await kernel.q_get_result(session_id=alice, job_id=job_id)))
        got.append(("q_list_jobs", await kernel.q_list_jobs(session_id=alice)))
        got.append(("q_get_telemetry", await kernel.q_get_telemetry(session_id=alice)))
        got.append(
            ("q_get_telemetry", await kernel.q_get_telemetry(session_id=alice, job_id=job_id))
        )
        got.append(("q_resource_query", await kernel.q_resource_query(session_id=alice)))
        got.append(("q_machine_status", await kernel.q_machine_status(session_id=alice)))
        channel = await kernel.q_open_chan(session_id=alice, peer="bob", fidelity=0.99)
        got.append(("q_open_chan", channel))
        channel_id = channel.channel_id
        got.append(
            ("q_chan_status", await kernel.q_chan_status(session_id=alice, channel_id=channel_id))
        )
        got.append(("q_list_channels", await kernel.q_list_channels(session_id=alice)))
        got.append(
            ("q_close_chan", await kernel.q_close_chan(session_id=alice, channel_id=channel_id))
        )
        got.append(("q_replay", await kernel.q_replay(session_id=alice, job_id=job_id)))
        queued = await kernel.q_submit(session_id=alice, graph=FENCED.to_json(), shots=10)
        got.append(
            ("q_checkpoint", await kernel.q_checkpoint(session_id=alice, job_id=queued.job_id))
        )
        got.append(("q_cancel", await kernel.q_cancel(session_id=alice, job_id=queued.job_id)))
        lent = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60.0
        )
        got.append(("q_delegate_caps", lent))
        got.append(("q_list_delegations", await kernel.q_list_delegations(session_id=alice)))
        got.append(
            (
                "q_revoke_delegation",
                await kernel.q_revoke_delegation(
                    session_id=alice, delegation_id=lent.delegation_id
                ),
            )
        )
        got.append(("q_usage", await kernel.q_usage(session_id=alice)))
        got.append(("q_events", await kernel.q_events(session_id=alice, after=0, limit=3)))
        got.append(("q_audit", await kernel.q_audit(session_id=alice, limit=3)))
        flow = {"steps": [{"name": "bell", "source": "OPENQASM 2.0; qreg q[1];"}]}
        made = await kernel.q_create_trigger(session_id=alice, name="t", workflow=flow, on="job")
        got.append(("q_create_trigger", made))
        got.append(("q_list_triggers", await kernel.q_list_triggers(session_id=alice)))
        trigger_id = made.trigger_id
        runs = await kernel.q_list_triggers(session_id=alice, trigger_id=trigger_id, runs=5)
        got.append(("q_list_triggers", runs))
        gone = await kernel.q_delete_trigger(session_id=alice, trigger_id=trigger_id)
        got.append(("q_delete_trigger", gone))
        got.append(("q_assist", await kernel.q_assist(session_id=alice, prompt="make a Bell pair")))
        return got

    seen = set()
    for method, reply in run_kernel(tmp_path, body, workers=1):
        struct = METHODS[method].reply
        assert isinstance(reply, struct), f"{method} answers a {type(reply).__name__}"
        wire = _wire(reply)
        unknown = set(wire) - set(struct.__struct_fields__)
        assert not unknown, f"{method} sends keys its {struct.__name__} lacks: {unknown}"
        assert struct.from_json(wire).to_json() == wire, method
        seen.add(struct.__name__)
    # a TriggerRun comes inside a Trigger (tests/kernel/running/test_triggers.py)
    # KernelLoad needs CAP_OBSERVE: tests/kernel/syscalls/test_feed.py reads it key for key
    left_out = {"Artifacts", "Device", "Watch", "Unwatch", "CodedError", "TriggerRun", "KernelLoad"}
    assert seen >= set(replies.REPLIES) - left_out
