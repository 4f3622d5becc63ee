"""deploy/k8s: every manifest valid against the Kubernetes JSON schemas, offline
(the kubernetes-validate wheel ships them; strict, so an unknown or misspelt field
is an error), and held to the code and the compose file: the same commands,
ports, probes on /healthz and /readyz, only variables some service reads, secrets
from the Secret, pods non-root as the image's user, consumer-group replicas within
the partitions, and the media volume shared read-only with the publisher."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import (
    ALL_INTERFACES,
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    SERVICES,
    TMP,
    known_variables,
    load_yaml,
    load_yaml_documents,
    require_module,
    secret_variables,
)

K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET = "takeaction-secrets"
CONFIG = "takeaction-config"
#: The oldest Kubernetes these manifests claim to work on; the newest schemas shipped too.
OLDEST = "1.29.0"
#: Members of consumer groups: replicas beyond the partitions idle.
CONSUMER_GROUPS = ("triage-worker", "publish")


def _validator() -> Any:
    return require_module(
        "kubernetes_validate.utils", "`make install` installs it (kubernetes-validate, dev extra)"
    )


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def _resources() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in _manifests() for doc in load_yaml_documents(path)]


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _resources() if doc["kind"] == kind}


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod(workload)["containers"]
    assert isinstance(container, dict)
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def _config() -> dict[str, str]:
    data: dict[str, str] = _of_kind("ConfigMap")[CONFIG]["data"]
    return data


def _version() -> str:
    pyproject = tomllib.loads((K8S.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    version: str = pyproject["project"]["version"]
    return version


def _image_uid() -> int:
    users = re.findall(r"^USER (\d+):\d+$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    return int(users[-1])


# --- schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST, "newest"])
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    utils = _validator()
    version = utils.latest_version() if version == "newest" else version
    for path, doc in _resources():
        where = f"{path.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            utils.validate(doc, version, strict=True)
        except utils.ValidationError as exc:
            field = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{where} (Kubernetes {version}): {field}: {exc.message}")
        except utils.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}")


def test_the_schema_check_can_fail() -> None:
    """A misspelt field and a wrong type are both caught (the check is not vacuous)."""
    utils = _validator()
    deployment = copy.deepcopy(_of_kind("Deployment")["publish"])
    deployment["spec"]["replica"] = 2
    with pytest.raises(utils.ValidationError):
        utils.validate(deployment, OLDEST, strict=True)
    deployment = copy.deepcopy(_of_kind("Deployment")["publish"])
    _container(deployment)["ports"][0]["containerPort"] = "8002"
    with pytest.raises(utils.ValidationError):
        utils.validate(deployment, OLDEST, strict=True)


def test_kustomization_applies_every_manifest_and_this_version() -> None:
    kustomization = load_yaml(KUSTOMIZATION)
    assert sorted(kustomization["resources"]) == sorted(p.name for p in _manifests())
    assert kustomization["images"] == [{"name": "takeaction", "newTag": _version()}]
    for kind in ("Deployment", "Job"):
        for name, workload in _of_kind(kind).items():
            assert _container(workload)["image"] == f"takeaction:{_version()}", name


# --- the same services as compose ------------------------------------------------------


def test_one_deployment_per_service_and_a_topics_job() -> None:
    assert set(_of_kind("Deployment")) == set(SERVICES)
    compose = load_yaml(COMPOSE)["services"]
    (job,) = _of_kind("Job").values()
    assert _container(job)["command"] == compose["kafka-init"]["command"]
    for name, deployment in _of_kind("Deployment").items():
        assert _container(deployment)["command"] == compose[name]["command"], name


def test_ports_and_probes_match_the_settings() -> None:
    services = _of_kind("Service")
    for name, deployment in _of_kind("Deployment").items():
        service, container = SERVICES[name], _container(deployment)
        port = service.port
        env = _env(container)
        internal = []
        if service.internal_port_field and service.internal_host_field:
            internal = [{"name": "internal", "containerPort": service.metrics_port}]
            assert env[service.env(service.internal_port_field)]["value"] == str(
                service.metrics_port
            ), name
            assert env[service.env(service.internal_host_field)]["value"] == ALL_INTERFACES
        assert container["ports"] == [{"name": "http", "containerPort": port}, *internal], name
        assert env[service.env(service.port_field)]["value"] == str(port), name
        assert env[service.env(service.host_field)]["value"] == ALL_INTERFACES, name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(service.metrics_port), name
        assert annotations["prometheus.io/path"] == "/metrics", name
        if name in services:
            assert services[name]["spec"]["ports"] == [
                {"name": "http", "port": port, "targetPort": "http"}
            ]
            selector = services[name]["spec"]["selector"]
            assert selector == deployment["spec"]["selector"]["matchLabels"], name


def test_environment_names_are_real_settings() -> None:
    known = known_variables()
    assert set(_config()) <= known, f"ConfigMap keys no service reads: {set(_config()) - known}"
    for name, deployment in _of_kind("Deployment").items():
        container, service = _container(deployment), SERVICES[name]
        assert container["envFrom"] == [{"configMapRef": {"name": CONFIG}}], name
        for key in _env(container):
            assert key in known, f"{name} sets {key}, which no service reads"
            assert key.startswith(service.prefixes), f"{name} ignores {key}"


def test_secrets_come_from_the_secret() -> None:
    secrets = secret_variables()
    assert not set(_config()) & secrets, "no secret in the ConfigMap"
    for name, deployment in _of_kind("Deployment").items():
        service, env = SERVICES[name], _env(_container(deployment))
        for key in service.required_secrets:
            assert key in env, f"{name} needs {key}"
        for key, entry in env.items():
            # A database URL carries its password.
            if key in secrets or key.endswith("_DATABASE_URL"):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                assert ref is not None, f"{name}.{key} must come from the Secret"
                assert (ref["name"], ref["key"]) == (SECRET, key), f"{name}.{key}"
                optional = key in service.optional_secrets - service.required_secrets
                assert ref.get("optional", False) is optional, f"{name}.{key} optional={optional}"


def test_the_same_secrets_as_compose() -> None:
    secrets = secret_variables()
    compose = load_yaml(COMPOSE)["services"]
    for name, deployment in _of_kind("Deployment").items():
        here = set(_env(_container(deployment))) & secrets
        there = set(compose[name].get("environment", {})) & secrets
        assert here == there, f"{name}: compose and Kubernetes pass different secrets"


# --- how the pods run ---------------------------------------------------------------------


def test_pods_run_as_the_image_user_with_least_privilege() -> None:
    workloads = {**_of_kind("Deployment"), **_of_kind("Job")}
    for name, workload in workloads.items():
        pod, container = _pod(workload), _container(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == _image_uid(), name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        # Service links would set e.g. PUBLISH_PORT=tcp://... for a Service named publish.
        assert pod["enableServiceLinks"] is False, name
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        assert {"mountPath": TMP, "name": "tmp"} in container["volumeMounts"], name
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{name} {bound}"


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    (namespace,) = _of_kind("Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert load_yaml(KUSTOMIZATION)["namespace"] == namespace["metadata"]["name"]


def test_consumer_groups_scale_within_the_partitions() -> None:
    partitions = int(_config()["KAFKA_PARTITIONS"])
    autoscalers = {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa
        for hpa in _of_kind("HorizontalPodAutoscaler").values()
    }
    for name in CONSUMER_GROUPS:
        assert _of_kind("Deployment")[name]["spec"]["replicas"] <= partitions, name
        if name in autoscalers:
            assert autoscalers[name]["spec"]["maxReplicas"] <= partitions, name


def test_the_publisher_reads_the_answers_where_the_web_wrote_them() -> None:
    (claim,) = _of_kind("PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "pods on several nodes share it"
    deployments = _of_kind("Deployment")
    media = _env(_container(deployments["triage-web"]))["TRIAGE_MEDIA_DIR"]["value"]

    def mount(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        pod = _pod(deployments[name])
        (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        (where,) = [
            m for m in _container(deployments[name])["volumeMounts"] if m["name"] == volume["name"]
        ]
        return volume, where

    volume, where = mount("triage-web")
    assert where["mountPath"] == media
    assert not where.get("readOnly", False)
    volume, where = mount("publish")
    assert where["mountPath"] == media
    assert where["readOnly"] is True
    assert volume["persistentVolumeClaim"]["readOnly"] is True


def test_every_secret_a_service_reads_can_be_given() -> None:
    """An optional secret left out of a Deployment turns its feature off for good
    (Bluesky without its app password): each one is offered from the Secret."""
    for name, deployment in _of_kind("Deployment").items():
        service, env = SERVICES[name], _env(_container(deployment))
        missing = service.optional_secrets - set(env)
        assert not missing, f"{name} cannot be given {sorted(missing)}"
