"""The modules generated from the method table: current, drift-checked, and honoured by
the kernel and both clients."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
from pathlib import Path

import pytest

from qmk.abi import codegen
from qmk.abi.calls import AsyncSyscallMethods, SyscallMethods
from qmk.abi.methods import METHODS
from qmk.abi.protocol import KernelSyscalls
from qmk.client import AsyncClient, Client, ClientCore
from qmk.errors import StateError
from qmk.kernel.service import Kernel
from qmk.qvm.graph import from_json

ABI = Path(codegen.__file__).resolve().parent


def test_the_generated_modules_are_up_to_date():
    assert codegen.main(["--check"]) == 0


@pytest.mark.parametrize("name", sorted(codegen.FILES))
def test_check_names_a_stale_file_and_write_repairs_it(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    for other in codegen.FILES:
        shutil.copy(ABI / other, tmp_path / other)
    stale = tmp_path / name
    stale.write_text(stale.read_text(encoding="utf-8").replace("q_wait", "q_wiat"))
    assert codegen.main(["--check", "--dir", str(tmp_path)]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and str(stale) in message and codegen.REGENERATE in message
    assert codegen.main(["--write", "--dir", str(tmp_path)]) == 0
    assert stale.read_text(encoding="utf-8") == (ABI / name).read_text(encoding="utf-8")


def test_check_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert codegen.main(["--check", "--dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.count(": missing;") == len(codegen.FILES)


def test_the_protocol_has_one_coroutine_per_method_with_the_tables_params_and_defaults():
    for name, spec in METHODS.items():
        method = getattr(KernelSyscalls, name)
        assert asyncio.iscoroutinefunction(method), name
        params = list(inspect.signature(method).parameters.values())[1:]
        assert [p.name for p in params] == [p.name for p in spec.params], name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), name
        for got, want in zip(params, spec.params, strict=True):
            expected = inspect.Parameter.empty if want.required else want.default
            assert got.default == expected, (name, want.name)


def test_the_kernels_syscalls_have_the_protocols_signatures_defaults_included():
    # mypy checks names, types and that a default exists (qmk.kernel._contract); this
    # checks the default values, which a type check cannot see
    for name in METHODS:
        ours = inspect.signature(getattr(Kernel, name))
        theirs = inspect.signature(getattr(KernelSyscalls, name))
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
            (p.name, p.kind, p.default) for p in theirs.parameters.values()
        ], name


def test_both_clients_take_their_syscall_methods_from_the_generated_classes_only():
    table = set(METHODS)
    for cls, base in ((Client, SyscallMethods), (AsyncClient, AsyncSyscallMethods)):
        assert issubclass(cls, base)
        assert {n for n in dir(cls) if n.startswith("q_")} == table
        for name in table:
            assert getattr(cls, name) is getattr(base, name), (cls.__name__, name)
            returns = inspect.signature(getattr(base, name)).return_annotation
            assert returns == f"replies.{METHODS[name].reply.__name__}", name
        assert all(asyncio.iscoroutinefunction(getattr(AsyncSyscallMethods, n)) for n in table)


def test_a_blocking_method_sends_through_its_clients_call_and_gives_its_reply_or_error():
    checkpoint = json.loads((Path(__file__).parent / "golden" / "Checkpoint.json").read_text())
    sent: list[tuple[str, dict[str, object]]] = []

    class Recording(SyscallMethods):
        def _call(self, method: str, params: dict[str, object]) -> object:
            sent.append((method, params))
            if method == "q_cancel":
                raise StateError("the job is final")
            return checkpoint

    client = Recording()
    reply = client.q_checkpoint("job_1", session_id="s")
    assert reply.checkpoint_id == checkpoint["checkpoint_id"] and reply.epoch == 5
    assert sent == [("q_checkpoint", {"session_id": "s", "job_id": "job_1"})]
    with pytest.raises(StateError, match="the job is final"):
        client.q_cancel("job_1")
    assert sent[-1] == ("q_cancel", {"session_id": None, "job_id": "job_1"})


def test_an_object_param_may_be_a_graph_and_is_sent_as_its_json():
    graph = from_json(
        {
            "version": "0.2",
            "program": {"nodes": [{"id": "a", "op": "ALLOC_LQ", "vqs": ["q0"]}]},
            "resources": {"vqs": ["q0"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    sent = ClientCore(session_id="s").params(METHODS["q_submit"], {"graph": graph})
    assert sent["graph"] == graph.to_json() and sent["session_id"] == "s"
