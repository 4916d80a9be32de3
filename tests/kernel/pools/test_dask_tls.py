"""The kernel and its Dask cluster over TLS (``qmk serve --dask tls://... --dask-tls-*``).

A CA is made here (the cryptography package); it signs the cluster's certificate (the
scheduler's and workers') and the kernel's. The cluster requires encryption and a
certificate of that CA from everyone who connects.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qmk.errors import UnavailableError
from qmk.execution.runs import run
from qmk.kernel.service import Kernel
from support.cli import qmk
from support.dask_cluster import local_cluster
from support.kernel import BELL, TENANTS, ServerProcess, config_toml, login, make_config

distributed = pytest.importorskip("distributed")
x509 = pytest.importorskip("cryptography.x509")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from qmk.kernel.pools.dask_options import check_tls  # noqa: E402
from qmk.kernel.pools.dask_pool import DaskPool, dask_pool  # noqa: E402


@dataclass(frozen=True, slots=True, kw_only=True)
class Pem:
    """A certificate and its key, as PEM files."""

    cert: str
    key: str


class Authority:
    """A self-signed CA that issues certificates for 127.0.0.1."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = str(folder / f"{name}.pem")
        Path(self.path).write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str) -> Pem:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        pem = Pem(cert=str(self.folder / f"{name}.pem"), key=str(self.folder / f"{name}.key"))
        Path(pem.cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        Path(pem.key).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pem


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsCluster:
    address: str
    ca: str
    kernel: Pem


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    """One Dask worker behind a scheduler that speaks only TLS, certificates of one CA."""
    from distributed.security import Security

    folder = tmp_path_factory.mktemp("tls")
    ca = Authority(folder, "qmk-test-ca")
    node, kernel = ca.issue("cluster"), ca.issue("kernel")
    security = Security(
        tls_ca_file=ca.path,
        tls_scheduler_cert=node.cert,
        tls_scheduler_key=node.key,
        tls_worker_cert=node.cert,
        tls_worker_key=node.key,
        tls_client_cert=node.cert,
        tls_client_key=node.key,
        require_encryption=True,
    )
    with local_cluster(1, protocol="tls://", security=security) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        yield TlsCluster(address=cluster.scheduler_address, ca=ca.path, kernel=kernel)


def test_a_kernel_with_the_ca_and_its_certificate_runs_jobs_on_a_tls_cluster(
    tls_cluster: TlsCluster, tmp_path: Path
) -> None:
    tls = check_tls(
        tls_cluster.address, tls_cluster.ca, tls_cluster.kernel.cert, tls_cluster.kernel.key
    )
    config = make_config()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pool = await asyncio.to_thread(dask_pool, tls_cluster.address, config, tls=tls, loop=loop)
        kernel = await Kernel.open(config, tmp_path / "data", pool=pool)
        try:
            sid = await login(kernel, "alice")
            job = await kernel.q_submit(session_id=sid, graph=BELL, shots=200, seed=5)
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"
            assert done.result["counts"] == run(BELL, shots=200, seed=5).counts
        finally:
            await kernel.close()

    asyncio.run(main())


def test_a_kernel_without_a_certificate_of_the_clusters_ca_is_refused(
    tls_cluster: TlsCluster, tmp_path: Path
) -> None:
    from distributed.security import Security

    with pytest.raises(UnavailableError):  # plain TCP to a TLS scheduler
        DaskPool(tls_cluster.address.replace("tls://", "tcp://"), connect_s=2)
    stranger = Authority(tmp_path, "another-ca")
    mine = stranger.issue("kernel")
    other = Security(
        tls_ca_file=stranger.path,
        tls_client_cert=mine.cert,
        tls_client_key=mine.key,
        require_encryption=True,
    )
    with pytest.raises(UnavailableError):  # TLS, but a certificate the cluster refuses
        DaskPool(tls_cluster.address, security=other, connect_s=2)


def serve_argv(tmp_path: Path, *extra: str) -> list[str]:
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml(physical_qubits=2_000_000))
    argv = ["serve", "--socket", str(tmp_path / "k.sock"), "--config", str(config)]
    return [*argv, "--data-dir", str(tmp_path / "data"), *extra]


def test_serve_over_tls_runs_jobs_with_the_counts_of_qmk_run(
    tls_cluster: TlsCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml(physical_qubits=2_000_000))
    tls = ("--dask-tls-ca", tls_cluster.ca, "--dask-tls-cert", tls_cluster.kernel.cert)
    server = ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=2,
        log=tmp_path / "serve.log",
        extra=("--dask", tls_cluster.address, *tls, "--dask-tls-key", tls_cluster.kernel.key),
    )
    sock = server.socket
    server.start(timeout_s=120)  # a guard against a hang, not a timing
    try:
        monkeypatch.setenv("QMK_SOCKET", str(sock))
        monkeypatch.setenv("QMK_TENANT", "alice")
        monkeypatch.setenv("QMK_KEY", TENANTS["alice"]["key"])
        bell = json.dumps(BELL)
        (tmp_path / "bell.qvm.json").write_text(bell)
        code, out, err = qmk(
            "submit",
            str(tmp_path / "bell.qvm.json"),
            "--shots",
            "300",
            "--seed",
            "7",
            "--wait",
            "--json",
        )
        assert code == 0, err
        assert json.loads(out)["result"]["counts"] == run(BELL, shots=300, seed=7).counts
    finally:
        status = server.stop()
    assert status == 0, server.output()


@pytest.mark.parametrize(
    ("dask", "given", "says"),
    [
        ("tls://127.0.0.1:1", ("ca",), "go together: --dask-tls-cert, --dask-tls-key is missing"),
        ("tcp://127.0.0.1:1", ("ca", "cert", "key"), "need a tls:// scheduler address"),
        ("local:2", ("ca", "cert", "key"), "need a tls:// scheduler address"),
        (None, ("ca", "cert", "key"), "need a tls:// scheduler address"),
        ("tls://127.0.0.1:1", ("ca", "cert", "nokey"), "--dask-tls-key: no such file"),
        ("tls://127.0.0.1:1", ("empty", "cert", "key"), "Dask cannot load them"),
        ("tls://127.0.0.1:1", ("ca", "other", "key"), "Dask cannot load them"),
    ],
)
def test_serve_checks_its_tls_options_before_anything_starts(
    tmp_path: Path, dask: str | None, given: tuple[str, ...], says: str
) -> None:
    ca = Authority(tmp_path, "ca")
    kernel, other = ca.issue("kernel"), ca.issue("other")
    files = {
        "ca": ca.path,
        "cert": kernel.cert,
        "key": kernel.key,
        "other": other.cert,
        "nokey": str(tmp_path / "missing.key"),
        "empty": str(tmp_path / "empty.pem"),
    }
    Path(files["empty"]).write_text("")
    extra: list[str] = [] if dask is None else ["--dask", dask]
    for option, name in zip(("ca", "cert", "key"), given, strict=False):
        extra += [f"--dask-tls-{option}", files[name]]
    code, out, err = qmk(*serve_argv(tmp_path, *extra))
    assert code == 2 and out == ""
    assert err.startswith("QK101 bad-config: ") and err.count("\n") == 1, err
    assert says in err
    assert not (tmp_path / "data").exists()  # stopped before the kernel started
