"""The README holds true for a new user: what ``make demo`` installs is the fast install,
every Python snippet in it runs (the kernel's against a real ``qmk serve``), and so does
its kernel session, line by line, on the kernel it starts (``examples/kernel.toml``)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from support.kernel import ServeFactory, ServerProcess
from support.paths import EXAMPLES, ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

README = ROOT / "README.md"


def _snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[; ]", item, maxsplit=1)[0].lower() for item in requirements}


def _installed_by(extras: list[str]) -> set[str]:
    """The distributions an install of ``.[extras]`` asks for, extras expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    names = _requirement_names(project["dependencies"])
    todo = list(extras)
    while todo:
        extra = todo.pop()
        for item in optional[extra]:
            inner = re.fullmatch(r"quantum-microkernel\[(.*)\]", item)
            if inner:
                todo.extend(inner.group(1).split(","))
            else:
                names |= _requirement_names([item])
    return names


def test_make_demo_installs_the_compiled_kernels_progress_bars_and_qiskit():
    makefile = (ROOT / "Makefile").read_text()
    extras = re.search(r"^DEMO_EXTRAS := (.*)$", makefile, re.MULTILINE)
    assert extras is not None
    assert "-e '.[$(DEMO_EXTRAS)]'" in makefile
    installed = _installed_by(extras.group(1).split(","))
    assert {"llvmlite", "rich", "qiskit", "starlette", "uvicorn"} <= installed


def test_the_default_install_runs_the_statevector_engine_on_its_compiled_kernels():
    from qmk.engines import kernels

    assert kernels.default_kernels() == "simd", kernels.simd.unavailable_reason()


def test_the_readme_says_how_to_put_qmk_on_path():
    text = README.read_text()
    assert ". .venv/bin/activate" in text and 'export PATH="$PWD/.venv/bin:$PATH"' in text


def test_every_python_snippet_of_the_readme_runs(serve: ServeFactory):
    snippets = _snippets()
    assert len(snippets) >= 5
    server = serve()
    env = {**server.env("alice"), "MPLBACKEND": "Agg"}
    for number, code in enumerate(snippets):
        # each as a new user would paste it: a fresh interpreter in the repository root
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"snippet {number}:\n{code}\n{done.stderr[-2000:]}"


#: The lines of a table of outcomes (``  11       501   0.5010``), as run and submit print it.
_OUTCOME = re.compile(r"^\s+[01 ]+\s+\d+\s+\d\.\d{4}$")


def _session_block() -> list[str]:
    """The README's kernel session: the ``sh`` block that starts a kernel and uses it."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.DOTALL)
    found = [b.splitlines() for b in blocks if b.startswith("qmk serve ") and "qmk submit" in b]
    assert len(found) == 1, "the README has no kernel session (qmk serve, then qmk submit)"
    return found[0]


def _qmk(words: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qmk", *words],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_readmes_kernel_session_runs_line_by_line_as_it_says(tmp_path: Path) -> None:
    serve_line, *lines = _session_block()
    assert "--config examples/kernel.toml &" in serve_line
    server = ServerProcess(
        socket=tmp_path / "qmk.sock",
        data_dir=tmp_path / "qmk-data",
        config=EXAMPLES / "kernel.toml",
        workers=2,
        log=tmp_path / "serve.log",
    )
    server.start()
    places = {"/tmp/qmk.sock": str(server.socket), "/tmp/qmk-data": str(server.data_dir)}
    env = dict(os.environ)
    printed: dict[str, str] = {}
    try:
        for line in lines:
            command = line.split("  #")[0].strip()
            if command.startswith("for i in $(seq 50); do [ -S /tmp/qmk.sock ] && break;"):
                assert server.socket.exists()  # the wait start() did
                continue
            for shown, real in places.items():
                command = command.replace(shown, real)
            for part in command.split("; "):
                words = shlex.split(part)
                if words[0] == "export":
                    env.update(word.split("=", 1) for word in words[1:])
                    continue
                if words == ["kill", "-TERM", "%1"]:
                    assert server.stop() == 0, server.output()
                    assert not server.socket.exists()
                    continue
                if words == ["wait"]:  # for the kernel's exit, which stop() waited for
                    assert server.stopped
                    continue
                assigned = {}
                while "=" in words[0]:
                    name, _, value = words.pop(0).partition("=")
                    assigned[name] = value
                assert words[0] == "qmk", f"the README's session runs {part!r}"
                done = _qmk(words[1:], {**env, **assigned})
                assert done.returncode == 0, f"{part}: {done.stderr}"
                printed[part] = done.stdout
    finally:
        if not server.stopped:
            server.stop()
    assert server.stopped, "the session never stops its kernel"
    # "same counts as qmk run": the same program, shots and seed, run in-process
    submit, submitted = next(
        (part, out) for part, out in printed.items() if part.startswith("qmk submit ")
    )
    ran = _qmk(["run", *(word for word in shlex.split(submit)[2:] if word != "--wait")], env)
    assert ran.returncode == 0, ran.stderr
    outcomes = [line for line in submitted.splitlines() if _OUTCOME.match(line)]
    assert outcomes, submitted
    assert {o.strip() for o in outcomes} == {
        line.strip() for line in ran.stdout.splitlines() if _OUTCOME.match(line)
    }, "qmk submit --wait's counts are not qmk run's"
