"""What the README and the pages of docs/ tell a new user to run is there and does what they
show: every example file they name exists, and every source file they point a reader at
(``kernel/records/jobs.py``), what a shipped example needs is installed with QMK, and each
``$ qmk ...`` transcript of a command that runs without a kernel prints the lines the page
shows (a wall time aside), on its output or its errors."""

from __future__ import annotations

import re
import shlex

import pytest

from support.cli import qmk
from support.paths import DOCS, EXAMPLES, ROOT, SRC

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PAGES = (ROOT / "README.md", *sorted(DOCS.glob("*.md")))

#: A path of the repository a page names (``examples/...``, ``tests/.../x.qasm``); a
#: placeholder in capitals (``examples/machine/NAME.yaml``) is not one.
_PATH = re.compile(r"(?<![\w/.-])((?:examples|tests|clients|deploy)/[\w./-]*\w)")

#: A source file a page names: a path in a room of the package (``kernel/records/jobs.py``,
#: ``qmk/abi/kernel.proto``, ``src/qmk/qvm/schema.json``), a top module of it
#: (``qmk/client.py``) or a benchmark (``bench/bench_service.py``); a room's path is read
#: under ``src/qmk/`` however much of that prefix the page writes.
_ROOMS = "|".join(sorted(p.name for p in SRC.iterdir() if p.is_dir() and p.name[0].isalpha()))
_SOURCE = re.compile(
    rf"(?<![\w/.-])((?:src/)?(?:qmk/)?(?:{_ROOMS})/[\w/.-]*\.\w+|(?:src/)?qmk/\w+\.py"
    r"|bench/[\w/]*\.py)(?![\w/])"
)

#: The commands whose transcripts run here: they need no kernel, no model and no network.
_LOCAL = (
    "run",
    "validate",
    "qasm",
    "plan",
    "info",
    "disasm",
    "device run",
    "machine show",
    "machine simulate",
    "machine policies",
)

#: A wall time in a line (``0.096 s``): it differs from run to run.
_WALL = re.compile(r"\b\d+\.\d+ s\b")


def _named_paths() -> list[tuple[str, str]]:
    named = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        paths = {path for path in _PATH.findall(text) if not re.search(r"/[A-Z_]+(\.\w+)?$", path)}
        for path in _SOURCE.findall(text):
            paths.add(
                path if path.startswith("bench/") else re.sub(r"^(src/)?(qmk/)?", "src/qmk/", path)
            )
        named += [(page.name, path) for path in sorted(paths)]
    return named


@pytest.mark.parametrize(("page", "path"), _named_paths())
def test_every_file_a_page_names_is_in_the_repository(page: str, path: str):
    assert (ROOT / path).exists(), f"{page} names {path}, which is not in the repository"


def test_the_kernel_pages_module_table_names_every_module_of_the_kernel():
    """docs/kernel.md's table names each module by its path; the machine's are machine.md's."""
    text = (DOCS / "kernel.md").read_text(encoding="utf-8")
    kernel = SRC / "kernel"
    modules = [
        path.relative_to(SRC).as_posix()
        for path in sorted(kernel.rglob("*.py"))
        if path.name != "__init__.py" and path.relative_to(kernel).parts[0] != "machine"
    ]
    assert "`kernel/machine/`" in text
    assert [module for module in modules if f"`{module}`" not in text] == []


#: What a page shows a command refused for its usage print: the parser answers it before
#: any file is read or any kernel reached, so any command's such transcript runs here.
_USAGE = "QW011 bad-option: "


def _transcripts() -> list[tuple[str, str, list[str]]]:
    """(page, command, the lines the page shows it print) of each local ``$ qmk`` line
    whose files are all in the repository (``broken.qvm.json`` is a page's own example),
    and of each ``$ qmk`` line the page shows refused for its usage (``qmk rn ...``)."""
    found = []
    for page in PAGES:
        for body in re.findall(r"```\w*\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL):
            lines = body.splitlines()
            for i, line in enumerate(lines):
                if not line.startswith("$ qmk "):
                    continue
                command = line[2:].split("  #")[0].strip()
                words = shlex.split(command)[1:]
                shown = []
                for out in lines[i + 1 :]:
                    if out.startswith("$"):
                        break
                    shown.append(out)
                if shown and shown[0].startswith(_USAGE):
                    found.append((page.name, command, shown))
                    continue
                if not any(f"{' '.join(words)} ".startswith(f"{name} ") for name in _LOCAL):
                    continue
                files = [w for w in words if not w.startswith("-") and "." in w]
                if not all((ROOT / f).exists() for f in files):
                    continue
                if shown:
                    found.append((page.name, command, shown))
    return found


@pytest.mark.parametrize(
    ("page", "command", "shown"), _transcripts(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_pages_transcript_of_a_local_command_is_what_it_prints(
    page: str, command: str, shown: list[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(ROOT)  # the pages' paths are the repository's
    status, out, err = qmk(*shlex.split(command)[1:])  # in-process, as every CLI test runs it
    # 1: the program's findings, shown; 2: a usage error, shown
    assert status in ((2,) if shown[0].startswith(_USAGE) else (0, 1)), err
    printed = [line.rstrip() for line in (out + err).splitlines()]
    for line in shown:
        if line.strip() in ("...", "") or _WALL.search(line):
            continue
        assert line.rstrip() in printed, f"{page}: {command} does not print {line!r}"


def test_what_a_shipped_example_is_written_in_is_read_by_a_default_install():
    # examples/machine/*.yaml are qmk machine simulate's workloads: PyYAML reads them
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        re.split(r"[<>=!\[; ]", item, maxsplit=1)[0].lower() for item in project["dependencies"]
    }
    assert list(EXAMPLES.rglob("*.yaml")), "no YAML example: this test checks nothing"
    assert "pyyaml" in names
