"""``qmk serve --dask local:N`` is a cluster only the kernel can use: TLS with a
certificate the kernel made and holds, loopback only, no dashboard unless asked; a
scheduler's address without TLS is refused unless ``--dask-insecure``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from qmk.execution.runs import run
from qmk.kernel.service import Kernel
from support.cli import qmk
from support.kernel import BELL, config_toml, login, make_config

distributed = pytest.importorskip("distributed")
pytest.importorskip("cryptography")

from qmk.kernel.pools.dask_pool import dask_pool  # noqa: E402


def _refused_plainly(address: str) -> bool:
    """True when a Dask client with no credentials cannot talk to ``address``."""
    from distributed import Client

    try:
        client = Client(address, timeout=3, set_as_default=False)
    except Exception:  # what Dask raises differs by version: refused is all we ask
        return True
    client.close()
    return False


def _tls_handshake_without_certificate(address: str) -> bool:
    """True when a TLS client that shows no certificate completes a request/answer."""
    host, _, port = address.removeprefix("tls://").rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.settimeout(5)
            tls.sendall(b"\x00" * 8)
            return bool(tls.recv(1))  # TLS 1.3: a refused certificate shows on first read
    except (OSError, ssl.SSLError):
        return False


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_local_cluster_refuses_clients_without_its_credentials_and_runs_the_kernels_jobs(
    tmp_path: Path,
) -> None:
    config = make_config()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pool = await asyncio.to_thread(dask_pool, "local:1", config, loop=loop)
        kernel = await Kernel.open(config, tmp_path / "data", pool=pool)
        try:
            address = pool.address
            assert address.startswith("tls://127.0.0.1:")
            assert await asyncio.to_thread(_refused_plainly, address)
            assert await asyncio.to_thread(_refused_plainly, address.replace("tls://", "tcp://"))
            assert not await asyncio.to_thread(_tls_handshake_without_certificate, address)
            http = pool.cluster.scheduler.http_server
            assert http.address == "127.0.0.1"  # never every interface
            base = f"http://127.0.0.1:{http.port}"
            assert await asyncio.to_thread(_http_status, f"{base}/health") == 200
            for hidden in ("/info/main/workers.html", "/json/counts.json", "/metrics"):
                assert await asyncio.to_thread(_http_status, base + hidden) == 404, hidden
            sid = await login(kernel, "alice")
            job = await kernel.q_submit(session_id=sid, graph=BELL, shots=200, seed=5)
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"
            assert done.result["counts"] == run(BELL, shots=200, seed=5).counts
        finally:
            await kernel.close()

    asyncio.run(main())


def _serve(tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml(physical_qubits=2_000_000))
    argv = ["serve", "--socket", str(tmp_path / "k.sock"), "--config", str(config)]
    return qmk(*argv, "--data-dir", str(tmp_path / "data"), *extra)


def test_a_tcp_scheduler_is_refused_with_qk120_before_anything_starts(tmp_path: Path) -> None:
    code, out, err = _serve(tmp_path, "--dask", "tcp://127.0.0.1:1")
    assert code == 2 and out == ""
    assert err.startswith("QK120 insecure-dask: --dask tcp://127.0.0.1:1 is not TLS")
    assert err.count("\n") == 1
    assert not (tmp_path / "data").exists()


def test_dask_insecure_lets_a_tcp_scheduler_through_the_check(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # nothing listens on port 1: past the exposure check, the connection is what fails
    # (after --dask-connect-s, not the default 10 s), in the Dask bridge's process, whose
    # line is on the stderr it shares with qmk serve; the kernel then stops
    code, _, err = _serve(
        tmp_path, "--dask", "tcp://127.0.0.1:1", "--dask-insecure", "--dask-connect-s", "0.5"
    )
    assert code != 0 and "QK120" not in err
    assert "the Dask bridge ended before it served" in err, err
    assert "QS1011 unavailable" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--dask-insecure",), "QW011 bad-option: --dask-insecure"),
        (("--dask", "tls://127.0.0.1:1", "--dask-dashboard"), "QK101 bad-config: --dask-dash"),
        (("--dask-connect-s", "5"), "QW011 bad-option: --dask-connect-s goes with --dask"),
    ],
)
def test_the_dask_exposure_flags_need_their_dask_option(
    tmp_path: Path, extra: tuple[str, ...], says: str
) -> None:
    code, _, err = _serve(tmp_path, *extra)
    assert code == 2 and err.startswith(says), err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_dask_connect_s_takes_a_finite_number_of_seconds(tmp_path: Path, value: str) -> None:
    code, out, err = _serve(tmp_path, "--dask", "local:1", "--dask-connect-s", value)
    assert code == 2 and out == "" and "--dask-connect-s" in err
    assert not (tmp_path / "data").exists()
