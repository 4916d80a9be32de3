"""Podman for the image tests: why it cannot run here (a skip reason), and the image built
once per run from the working tree (deploy/image/build.sh reuses an image whose
``org.qmk.source`` label matches the sources, so a second run costs seconds)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from support.paths import ROOT

#: The image the tests build and run (make image builds the same tag).
IMAGE = os.environ.get("QMK_TEST_IMAGE", "localhost/qmk:latest")
#: Its base: made here with debootstrap unless one that can be pulled is named.
BASE_IMAGE = os.environ.get("QMK_TEST_BASE_IMAGE", "localhost/qmk-base:bookworm")


def podman_flags() -> list[str]:
    """runc where it is installed (crun fails on cgroup v1 hosts such as this one)."""
    return ["--runtime", "runc"] if shutil.which("runc") else []


def ulimits() -> list[str]:
    """Open files and processes within this machine's hard limits (podman's defaults may
    pass them, and then nothing starts)."""
    flags = []
    for name, limit, want in (
        ("nofile", resource.RLIMIT_NOFILE, 20000),
        ("nproc", resource.RLIMIT_NPROC, 4096),
    ):
        hard = resource.getrlimit(limit)[1]
        value = want if hard == resource.RLIM_INFINITY else min(want, hard)
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return flags


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run ``podman ARGS``; its stdout (a failure raises with its stderr)."""
    proc = subprocess.run(
        ["podman", *podman_flags(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode:
        raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


#: How make image-run and the Helm chart confine the kernel's container.
CONFINE = (
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
)


@cache
def why_not() -> str | None:
    """Why podman cannot build and run images here (None: it can)."""
    if shutil.which("podman") is None:
        return "podman is not installed (make test installs Debian's podman as root)"
    try:
        info = subprocess.run(
            ["podman", *podman_flags(), "info"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman info failed: {exc}"
    if info.returncode:
        return f"podman cannot run here: {info.stderr.strip().splitlines()[-1:]}"
    if BASE_IMAGE.startswith("localhost/qmk-base:"):
        exists = subprocess.run(["podman", "image", "exists", BASE_IMAGE], check=False)
        if exists.returncode and (os.geteuid() != 0 or shutil.which("debootstrap") is None):
            return (
                f"no base image {BASE_IMAGE}, and it is made with debootstrap as root "
                "(or set QMK_TEST_BASE_IMAGE to an image that can be pulled)"
            )
    return None


@contextlib.contextmanager
def _building() -> Iterator[None]:
    """Held while this process builds or tags images: one build at a time for this user,
    whichever test process or run asks (two builds of one tag at once race, and the second
    removes the image the first one's test is about to run)."""
    lock = Path(tempfile.gettempdir()) / f"qmk-image-build-{os.getuid()}.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


@cache
def built_image() -> str:
    """The id of the image built from the working tree (or reused: same sources), once
    per run (one build at a time: parallel test workers share podman's images)."""
    with _building():
        return _build_image()


def _build_image() -> str:
    """The base image made if missing, then the image built (or found up to date)."""
    env = {
        **os.environ,
        "BASE_IMAGE": BASE_IMAGE,
        "PODMAN_FLAGS": " ".join(podman_flags()),
        "BUILD_FLAGS": " ".join(ulimits()),
    }
    if BASE_IMAGE.startswith("localhost/qmk-base:"):
        subprocess.run(
            ["sh", str(ROOT / "deploy/image/base.sh"), BASE_IMAGE], env=env, check=True, timeout=900
        )
    build = subprocess.run(
        ["sh", str(ROOT / "deploy/image/build.sh"), IMAGE],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert build.returncode == 0, f"the image did not build:\n{build.stdout[-4000:]}{build.stderr}"
    # its id, not its tag: another run may build the tag from other sources meanwhile
    return podman("image", "inspect", "--format", "{{.Id}}", IMAGE).strip()


#: The Prometheus image of the compose test: given, or built here on the local base.
PROMETHEUS_IMAGE = os.environ.get("QMK_TEST_PROMETHEUS_IMAGE", "")


@cache
def prometheus_image() -> str:
    """A Prometheus image for deploy/compose.yaml: ``QMK_TEST_PROMETHEUS_IMAGE``, or
    deploy/prometheus/Containerfile built on the tests' base image (kept once built)."""
    if PROMETHEUS_IMAGE:
        return PROMETHEUS_IMAGE
    tag = "localhost/qmk-prometheus:latest"
    if _exists(tag):
        return tag
    built_image()  # makes the base image too
    with _building():
        if not _exists(tag):  # another test process may have built it meanwhile
            podman(
                "build", *ulimits(), "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag,
                "-f", str(ROOT / "deploy/prometheus/Containerfile"),
                str(ROOT / "deploy/prometheus"), timeout=900,
            )  # fmt: skip
    return tag


def _exists(image: str) -> bool:
    return subprocess.run(["podman", "image", "exists", image], check=False).returncode == 0
