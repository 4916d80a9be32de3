"""Every qSyscall is reachable from a ``qmk`` command, and every command that prints has
``--json``: both read from the commands' own parsers, walked against the method table."""

from __future__ import annotations

import json
import re

from qmk.abi.methods import METHODS
from qmk.commands.service import fields_text
from qmk.commands.syscalls import commands, verbs
from support.cli import qmk
from support.paths import ROOT

#: Commands whose output is the file they make (a QVM graph, assembly, OpenQASM, a JSON
#: Schema), not a report: a JSON form would only wrap it.
MAKES_A_FILE = {"asm", "disasm", "fmt", "qasm", "schema"}


def test_every_syscall_of_the_method_table_has_a_command():
    reachable = set(verbs().values())
    missing = sorted(set(METHODS) - reachable)
    assert not missing, f"syscalls no qmk command makes: {missing}"
    assert reachable <= set(METHODS), "a command names a syscall the table lacks"


def test_the_issue_named_verbs_make_their_syscalls():
    table = verbs()
    assert table["checkpoint"] == "q_checkpoint"
    assert table["restore"] == "q_restore"
    assert {table[f"channel {a}"] for a in ("open", "accept")} == {"q_open_chan"}
    assert table["channel close"] == "q_close_chan"
    assert table["channel list"] == "q_list_channels"
    assert table["device submit"] == "q_submit"  # to the target neutral-atom
    assert table["delegate create"] == "q_delegate_caps"
    assert table["delegate revoke"] == "q_revoke_delegation"
    assert table["delegate list"] == "q_list_delegations"


def test_every_command_that_prints_a_report_takes_json():
    lacking = sorted(
        words
        for words, parser in commands().items()
        if words not in MAKES_A_FILE
        and "--json" not in {o for a in parser._actions for o in a.option_strings}
    )
    assert not lacking, f"commands without --json: {lacking}"


def test_qmk_syscalls_prints_the_table_as_text_and_as_one_json_document():
    code, out, err = qmk("syscalls", "--json")
    assert code == 0, err
    table = json.loads(out)["syscalls"]
    assert list(table) == list(METHODS)
    assert table["q_delegate_caps"] == ["qmk delegate create"]
    assert table["q_open_chan"] == ["qmk channel open", "qmk channel accept"]
    code, out, _ = qmk("syscalls")
    assert code == 0 and "q_checkpoint" in out and "qmk checkpoint" in out


def test_the_cli_page_names_every_command_that_makes_a_syscall():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    absent = sorted(words for words in verbs() if f"qmk {words}" not in page)
    assert not absent, f"docs/cli.md does not mention: {absent}"


def test_each_option_the_cli_page_lists_is_an_option_of_the_command_on_its_line():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    block = page.split("```sh\n", 1)[1].split("```", 1)[0]
    parsers = commands()
    wrong, command = [], None
    for line in block.splitlines():
        text = line.split("#", 1)[0]
        if text.startswith("qmk "):  # a command; an indented line goes on with its options
            tokens = text.split()[1:]
            command = max(
                (" ".join(tokens[:n]) for n in range(1, len(tokens) + 1)),
                key=lambda words: (words in parsers, len(words)),
            )
            assert command in parsers, line
        elif not text.strip() or text.startswith("export "):
            continue
        assert command is not None, line
        known = {o for a in parsers[command]._actions for o in a.option_strings}
        wrong += [(command, o) for o in re.findall(r"--[a-z][a-z-]*", text) if o not in known]
    assert not wrong, f"options docs/cli.md lists under a command that has none such: {wrong}"


def test_a_client_command_without_a_kernel_address_is_one_coded_line_and_exit_2(monkeypatch):
    monkeypatch.delenv("QMK_SOCKET", raising=False)
    monkeypatch.setenv("QMK_TENANT", "alice")
    for argv in (
        ("checkpoint", "job_x"),
        ("channel", "list"),
        ("delegate", "create", "bob", "CAP_MAGIC", "--expires-s", "60"),
        ("session", "--json"),
    ):
        code, out, err = qmk(*argv)
        assert code == 2 and out == "", argv
        assert err.startswith("QW011 bad-option: ") and err.count("\n") == 1, argv


def test_device_submit_of_a_file_that_is_not_there_is_one_coded_line(tmp_path):
    code, out, err = qmk("device", "submit", str(tmp_path / "missing.json"))
    assert code == 2 and out == ""
    assert err.startswith("QD101 job-malformed: ") and err.count("\n") == 1


def test_bad_delegation_options_are_usage_errors():
    code, _, err = qmk("delegate", "create", "bob", "CAP_MAGIC", "--expires-s", "0")
    assert code == 2 and err.startswith("QW011 bad-option: ") and "> 0" in err
    code, _, err = qmk("delegate", "create", "bob", "CAP_MAGIC")
    assert code == 2 and "--expires-s" in err


def test_fields_text_shows_nested_replies_line_by_line():
    text = fields_text({"job_id": "j", "device": {"starts": []}, "telemetry": {"epochs": 4}})
    assert text.splitlines() == [
        "job_id: j",
        "device:",
        "  starts: (none)",
        "telemetry:",
        "  epochs: 4",
    ]
