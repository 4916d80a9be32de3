"""The README holds true for a new user: what ``make demo`` installs is the fast install,
and every Python snippet in it runs (the kernel's against a real ``qmk serve``)."""

from __future__ import annotations

import re
import subprocess
import sys

from support.kernel import ServeFactory
from support.paths import ROOT

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
