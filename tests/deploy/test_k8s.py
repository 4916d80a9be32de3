"""The Helm chart deploy/helm/qmk: rendered offline by Helm's own code (the
helm-python-sdk binding), its built-in resources validated against Kubernetes' schemas
(kubernetes-validate, strict: no unknown field), and the committed manifests of
deploy/k8s/ drift-checked. kubernetes-validate has no schema for the CRDs: of a
DaskCluster its worker and scheduler pod specs are validated as Pods and its scheduler
service as a Service; the DaskAutoscaler, ServiceMonitor and PrometheusRule are checked
here against what they refer to (cluster name, Service labels and port, the rules file)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from support.paths import ROOT

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
kubernetes_validate = pytest.importorskip("kubernetes_validate")
distributed = pytest.importorskip("distributed")

from qmk.docgen import k8s  # noqa: E402

CHART = ROOT / "deploy" / "helm" / "qmk"
OUT = ROOT / "deploy" / "k8s"
RULES = ROOT / "deploy" / "prometheus" / "qmk-alerts.yml"
#: The Kubernetes version the manifests are validated for.
KUBE_VERSION = "1.30.0"
CRDS = {"DaskCluster", "DaskAutoscaler", "ServiceMonitor", "PrometheusRule"}


def _resources(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rendered = helm.Chart.load(CHART).render(values, name=k8s.RELEASE, namespace=k8s.NAMESPACE)
    docs = [doc for text in rendered.values() for doc in yaml.safe_load_all(text)]
    return [doc for doc in docs if doc]


def _by_kind(resources: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        found.setdefault(resource["kind"], []).append(resource)
    return found


def _validate(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBE_VERSION, strict=True)


def _pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _check_all(resources: list[dict[str, Any]]) -> None:
    """Every built-in resource valid; the CRDs' embedded pod and service specs too."""
    for resource in resources:
        if resource["kind"] not in CRDS:
            _validate(resource)
    for cluster in _by_kind(resources)["DaskCluster"]:
        spec = cluster["spec"]
        _validate(_pod("worker", spec["worker"]["spec"]))
        _validate(_pod("scheduler", spec["scheduler"]["spec"]))
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "scheduler"}}
        _validate({**service, "spec": spec["scheduler"]["service"]})


def test_the_committed_manifests_are_the_chart_rendered_with_its_defaults(tmp_path: Path):
    argv = ["--chart", str(CHART), "--out", str(OUT), "--rules", str(RULES)]
    assert k8s.main(["--check", *argv]) == 0
    # and the check sees a drift: a hand edit, or a file of no template
    copy = tmp_path / "k8s"
    shutil.copytree(OUT, copy)
    edited = copy / "statefulset.yaml"
    edited.write_text(edited.read_text().replace("replicas: 1", "replicas: 2"))
    (copy / "stray.yaml").write_text("kind: ConfigMap\n")
    out = ["--chart", str(CHART), "--out", str(copy), "--rules", str(RULES)]
    assert k8s.main(["--check", *out]) == 1
    assert k8s.main(["--write", *out]) == 0
    assert k8s.main(["--check", *out]) == 0
    assert not (copy / "stray.yaml").exists()


def test_the_chart_lints_clean_and_its_resources_are_valid_kubernetes():
    report = helm.lint(str(CHART), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    resources = _resources()
    assert set(_by_kind(resources)) == {
        "Secret", "StatefulSet", "Service", *CRDS,
    }  # fmt: skip
    _check_all(resources)


def test_a_schema_error_is_caught_by_the_validation():
    (statefulset,) = _by_kind(_resources())["StatefulSet"]
    statefulset["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(statefulset)


def test_one_non_root_kernel_keeps_its_data_volume_and_reaches_the_dask_scheduler():
    kinds = _by_kind(_resources())
    (kernel,) = kinds["StatefulSet"]
    spec = kernel["spec"]
    assert spec["replicas"] == 1  # one kernel per data directory (it also locks it)
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    container, gateway, bridge = pod["containers"]
    args = container["args"]
    assert args[:2] == ["serve", "--kernel-only"]  # its wires are the gateway's
    # the gateway: a client of the kernel's socket on a volume they share, and nothing of
    # the kernel's data or config (it holds no credentials)
    socket = args[args.index("--socket") + 1]
    assert gateway["args"][:2] == ["gateway", "http"]
    assert gateway["args"][gateway["args"].index("--kernel") + 1] == socket
    mounts = {m["name"]: m["mountPath"] for m in gateway["volumeMounts"]}
    assert "data" not in mounts and "config" not in mounts
    kernel_mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["run"] == kernel_mounts["run"] == str(Path(socket).parent)
    assert {m["mountPath"]: m["name"] for m in container["volumeMounts"]}["/var/lib/qmk"] == "data"
    assert args[args.index("--data-dir") + 1] == "/var/lib/qmk"
    (cluster,) = kinds["DaskCluster"]
    scheduler = f"tcp://{cluster['metadata']['name']}-scheduler:8786"
    # the Dask client is the bridge's, a container of its own: the kernel reaches it on
    # its socket on the shared volume; it mounts neither the data nor the config
    assert "--dask" not in args
    assert bridge["args"][0] == "dask-bridge"
    assert bridge["args"][bridge["args"].index("--dask") + 1] == scheduler
    listen = bridge["args"][bridge["args"].index("--listen") + 1]
    assert args[args.index("--dask-bridge") + 1] == listen
    assert str(Path(listen).parent) == kernel_mounts["run"]
    bridge_mounts = {m["name"] for m in bridge["volumeMounts"]}
    assert "data" not in bridge_mounts and "config" not in bridge_mounts
    secret = next(s for s in kinds["Secret"] if "kernel.toml" in s["stringData"])
    secret_volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert secret_volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert "[tenants." in secret["stringData"]["kernel.toml"]
    (autoscaler,) = kinds["DaskAutoscaler"]
    assert autoscaler["spec"]["cluster"] == cluster["metadata"]["name"]
    assert 1 <= autoscaler["spec"]["minimum"] <= autoscaler["spec"]["maximum"]
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert {"name": "DASK_DISTRIBUTED__WORKER__DAEMON", "value": "False"} in worker["env"]
    # the scheduler serves the HTTP API the autoscaler asks, and keeps Dask's own routes
    scheduler_env = cluster["spec"]["scheduler"]["spec"]["containers"][0]["env"]
    routes = next(e["value"] for e in scheduler_env if e["name"].endswith("HTTP__ROUTES"))
    defaults = yaml.safe_load((Path(distributed.__file__).parent / "distributed.yaml").read_text())
    default_routes = defaults["distributed"]["scheduler"]["http"]["routes"]
    assert ast.literal_eval(routes) == [*default_routes, "distributed.http.scheduler.api"]


def test_the_service_monitor_scrapes_the_kernel_service_and_the_rules_are_the_alerts_file():
    kinds = _by_kind(_resources())
    (monitor,) = kinds["ServiceMonitor"]
    kernel = next(s for s in kinds["Service"] if s["spec"].get("clusterIP") != "None")
    labels = kernel["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {port["name"] for port in kernel["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    # the job label the alert rules expect (up{job="qmk"})
    assert labels[monitor["spec"]["jobLabel"]] == "qmk"
    (rule,) = kinds["PrometheusRule"]
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    # the scrape logs in as a tenant of the kernel's config that holds CAP_OBSERVE
    (endpoint,) = monitor["spec"]["endpoints"]
    auth = endpoint["basicAuth"]
    secrets = {s["metadata"]["name"]: s["stringData"] for s in kinds["Secret"]}
    login = secrets[auth["username"]["name"]]
    assert auth["password"]["name"] == auth["username"]["name"]
    config = tomllib.loads(next(s["kernel.toml"] for s in secrets.values() if "kernel.toml" in s))
    tenant = config["tenants"][login[auth["username"]["key"]]]
    assert tenant["caps"] == ["CAP_OBSERVE"] and tenant["key"] == login[auth["password"]["key"]]


def test_an_existing_secret_and_no_autoscaler_render_valid_manifests_without_them():
    values = {
        "kernel": {"existingSecret": "my-qmk-config"},
        "dask": {"autoscaler": {"enabled": False}},
        "monitoring": {"scrape": {"existingSecret": "my-qmk-scrape"}},
    }
    resources = _resources(values)
    kinds = _by_kind(resources)
    assert "Secret" not in kinds and "DaskAutoscaler" not in kinds
    (monitor,) = kinds["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["basicAuth"]["username"]["name"] == "my-qmk-scrape"
    (kernel,) = kinds["StatefulSet"]
    volumes = kernel["spec"]["template"]["spec"]["volumes"]
    assert {"secretName": "my-qmk-config", "defaultMode": 0o400} in [
        v.get("secret") for v in volumes
    ]
    _check_all(resources)
