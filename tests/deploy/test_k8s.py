"""The Kubernetes manifests: they parse, validate against the Kubernetes schemas offline, and
run commands the CLI has, in the runtime classes and with the probes the issue asks for."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.files import ROOT, assert_cli_accepts

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    files = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    return [doc for path in files for doc in _documents(path)]


def _kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def _pod_specs(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    workloads = {**_kind(manifests, "Deployment"), **_kind(manifests, "StatefulSet")}
    return {name: w["spec"]["template"] for name, w in workloads.items()}


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = _documents(K8S / "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_manifests_validate_against_the_kubernetes_schemas(
    manifests: list[dict[str, Any]],
) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    for manifest in manifests:
        validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_schema_validation_catches_a_misplaced_field(manifests: list[dict[str, Any]]) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    broken = copy.deepcopy(_kind(manifests, "Deployment")["enclava-gateway"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(validate.ValidationError):
        validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_everything_lives_in_the_enclava_namespace(manifests: list[dict[str, Any]]) -> None:
    assert set(_kind(manifests, "Namespace")) == {"enclava"}
    for m in manifests:
        if m["kind"] != "Namespace":
            assert m["metadata"]["namespace"] == "enclava", m["metadata"]["name"]


def test_workers_run_in_confidential_containers(manifests: list[dict[str, Any]]) -> None:
    sets = _kind(manifests, "StatefulSet")
    classes = {name: s["spec"]["template"]["spec"]["runtimeClassName"] for name, s in sets.items()}
    assert classes == {
        "enclava-worker": "kata-qemu-tdx",
        "enclava-worker-gpu": "kata-qemu-nvidia-gpu-tdx",
    }
    gpu = sets["enclava-worker-gpu"]["spec"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/pgpu"] == "1"
    assert gpu["image"].endswith("-gpu")
    gateway = _kind(manifests, "Deployment")["enclava-gateway"]
    assert gateway["spec"]["template"]["spec"]["runtimeClassName"] == "kata-qemu-tdx"


def test_every_pod_is_probed_on_healthz_and_scraped_on_its_port(
    manifests: list[dict[str, Any]],
) -> None:
    for name, template in _pod_specs(manifests).items():
        (container,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] == "/healthz", (name, probe)
            assert get["port"] in ports, (name, probe)
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == ports["http"], name


def test_pods_run_unprivileged_as_uid_10001(manifests: list[dict[str, Any]]) -> None:
    for name, template in _pod_specs(manifests).items():
        assert template["spec"]["securityContext"]["runAsUser"] == 10001, name
        (container,) = template["spec"]["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name


def test_attestation_service_is_autoscaled_behind_a_service(
    manifests: list[dict[str, Any]],
) -> None:
    (hpa,) = _kind(manifests, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "enclava-attestation"
    services = _kind(manifests, "Service")
    selector = services["enclava-attestation"]["spec"]["selector"]
    labels = _pod_specs(manifests)["enclava-attestation"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_attestation_config_is_valid_service_settings(manifests: list[dict[str, Any]]) -> None:
    import tomllib

    from attestation.service import ServiceSettings

    config = _kind(manifests, "ConfigMap")["enclava-attestation"]["data"]["attest.toml"]
    settings = ServiceSettings(**tomllib.loads(config))
    assert settings.host == "0.0.0.0"
    container = _pod_specs(manifests)["enclava-attestation"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == settings.port


def test_container_command_lines_exist_in_the_cli(manifests: list[dict[str, Any]]) -> None:
    """Each container's args (the image's ENTRYPOINT is `enclava`), run with --help."""
    for name, template in _pod_specs(manifests).items():
        (container,) = template["spec"]["containers"]
        assert "command" not in container, f"{name} must keep the image's entrypoint"
        assert_cli_accepts([str(a) for a in container["args"]])


def test_env_references_in_args_are_defined(manifests: list[dict[str, Any]]) -> None:
    configs = _kind(manifests, "ConfigMap")
    for name, template in _pod_specs(manifests).items():
        (container,) = template["spec"]["containers"]
        defined = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            defined |= set(configs[source["configMapRef"]["name"]]["data"])
        for arg in container["args"]:
            if str(arg).startswith("$("):
                assert str(arg)[2:-1] in defined, (name, arg)
