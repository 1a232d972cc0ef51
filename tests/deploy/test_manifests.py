"""The Kubernetes manifests in deploy/, rendered by kustomize and checked as an operator would.

Each overlay is rendered with `kubectl kustomize` (offline), every document is validated
against the Kubernetes schemas, and the references between documents (selectors, ports,
ConfigMaps and Secrets, autoscaler targets, settings, mounted files) are followed.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from core.runtime.health import LIVENESS
from core.runtime.settings import Settings
from core.security.crypto import KeyRing
from core.security.tenants import load_tenants
from emulator.config import load_grants

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "tuning-dev", "prod": "tuning"}
KUBERNETES_VERSION = "1.30"
IMAGE = "tuning-platform"
# Secrets an operator creates before applying prod (deploy/README.md says how).
EXTERNAL_SECRETS = frozenset(
    {"tuning-redis", "tuning-tenants", "tuning-oauth", "tuning-encryption-keys"}
)
SETTINGS_ENV = frozenset(f.metadata["env"] for f in dataclasses.fields(Settings))
DRAIN_MARGIN_S = 5
PLACEHOLDER = "SET-IN-OVERLAY"
TMP_DIR = "/tmp"  # noqa: S108 (a mount path in a manifest, not a file written here)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")

Manifest = dict[str, Any]


@functools.cache
def render(overlay: str) -> tuple[Manifest, ...]:
    """The documents `kubectl kustomize deploy/overlays/<overlay>` renders."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with kustomize v5) is needed to render deploy/")
    result = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    matches = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name!r}"
    return matches[0]


def deployment(docs: tuple[Manifest, ...], component: str) -> Manifest:
    """The one Deployment of the platform's `component` (api or worker)."""
    matches = [d for d in of_kind(docs, "Deployment") if component_of(d) == component]
    assert len(matches) == 1, f"{len(matches)} Deployments of component {component!r}"
    return matches[0]


def component_of(doc: Manifest) -> str | None:
    labels: dict[str, str] = doc["metadata"].get("labels", {})
    if labels.get("app.kubernetes.io/name") != IMAGE:
        return None
    return labels.get("app.kubernetes.io/component")


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def only_container(workload: Manifest) -> Manifest:
    containers: list[Manifest] = pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def workloads(docs: tuple[Manifest, ...]) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def all_containers(docs: tuple[Manifest, ...]) -> Iterator[tuple[Manifest, Manifest]]:
    """(workload, container) for every container, init containers included."""
    for workload in workloads(docs):
        spec = pod_spec(workload)
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield workload, container


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def config(docs: tuple[Manifest, ...]) -> dict[str, str]:
    """The data of the ConfigMap the API and worker take their settings from."""
    name = only_container(deployment(docs, "api"))["envFrom"][0]["configMapRef"]["name"]
    data: dict[str, str] = named(docs, "ConfigMap", name).get("data", {})
    return data


def environment(docs: tuple[Manifest, ...], container: Manifest) -> dict[str, str]:
    """The container's literal environment: its ConfigMaps, then its own `value`s."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= named(docs, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env


def settings(docs: tuple[Manifest, ...], component: str) -> Settings:
    """The settings the component's process builds from its environment."""
    container = only_container(deployment(docs, component))
    return Settings.from_env(environment(docs, container))


def listen_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def container_port(container: Manifest, port: int | str) -> int | None:
    """The number of the container's port `port` (a name or a number), None if none."""
    for declared in container.get("ports", []):
        if port in (declared["containerPort"], declared.get("name")):
            number: int = declared["containerPort"]
            return number
    return None


def probe_port(probe: Manifest) -> int | str:
    handler = next(probe[k] for k in ("grpc", "httpGet", "tcpSocket") if k in probe)
    port: int | str = handler["port"]
    return port


def prestop_sleep_s(container: Manifest) -> int:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        seconds: int = pre_stop["sleep"]["seconds"]
        return seconds
    command = pre_stop.get("exec", {}).get("command", [])
    return int(command[1]) if command[:1] == ["sleep"] else 0


def quantity(value: str | int) -> float:
    """A Kubernetes resource quantity as a number (only the suffixes used here)."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def referenced_objects(workload: Manifest) -> Iterator[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod template names."""
    yield from volume_references(workload)
    yield from env_references(workload)


def volume_references(workload: Manifest) -> Iterator[tuple[str, str]]:
    for volume in pod_spec(workload).get("volumes", []):
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"]
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
        for source in volume.get("projected", {}).get("sources", []):
            for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if key in source:
                    yield kind, source[key]["name"]


def env_references(workload: Manifest) -> Iterator[tuple[str, str]]:
    for _, container in all_containers((workload,)):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"]["name"]
            if "secretRef" in source:
                yield "Secret", source["secretRef"]["name"]
        for env in container.get("env", []):
            ref = env.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                yield "ConfigMap", ref["configMapKeyRef"]["name"]
            if "secretKeyRef" in ref:
                yield "Secret", ref["secretKeyRef"]["name"]


def external_name(docs: tuple[Manifest, ...], kind: str, name: str) -> bool:
    """True if `name` is one of the documented Secrets the operator provides."""
    return kind == "Secret" and name in EXTERNAL_SECRETS and not of_kind(docs, "Secret")


def files_provided(docs: tuple[Manifest, ...], volume: Manifest) -> set[str] | None:
    """Relative paths the volume holds; None when it projects a whole external Secret."""
    sources = volume.get("projected", {}).get("sources", [])
    if "secret" in volume:
        sources = [{"secret": {**volume["secret"], "name": volume["secret"]["secretName"]}}]
    paths: set[str] = set()
    for source in sources:
        secret = source.get("secret")
        if secret is None:
            continue
        if "items" in secret:
            paths |= {item["path"] for item in secret["items"]}
        elif of_kind(docs, "Secret"):
            paths |= set(named(docs, "Secret", secret["name"]).get("data", {}))
        else:
            return None
    return paths


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def docs(overlay: str) -> tuple[Manifest, ...]:
    return render(overlay)


def test_every_document_is_valid_for_kubernetes(docs: tuple[Manifest, ...]) -> None:
    errors = []
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: test_the_worker_scales_on_its_backlog checks it
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not errors


def test_every_namespaced_object_lands_in_the_overlays_namespace(overlay: str) -> None:
    for doc in render(overlay):
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACES[overlay]
        else:
            assert doc["metadata"].get("namespace") == NAMESPACES[overlay], doc["kind"]


def test_no_placeholder_is_left_for_the_cluster(overlay: str) -> None:
    assert PLACEHOLDER not in yaml.safe_dump_all(render(overlay))


def test_the_worker_scales_on_its_backlog() -> None:
    docs = render("prod")
    (scaled,) = of_kind(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == deployment(docs, "worker")["metadata"]["name"]
    # The backlog metric comes from the workers themselves: never scale them to zero.
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert re.fullmatch(r"https?://[\w.-]+(:\d+)?/?", trigger["metadata"]["serverAddress"])
    assert {"tuning_queue_depth", "tuning_schedule_due"} <= set(
        re.findall(r"tuning_\w+", trigger["metadata"]["query"])
    )
    assert 'namespace="tuning"' in trigger["metadata"]["query"]
    assert float(trigger["metadata"]["threshold"]) > 0


def test_the_worker_is_not_also_scaled_by_a_plain_autoscaler() -> None:
    docs = render("prod")
    worker = deployment(docs, "worker")["metadata"]["name"]
    targets = [
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")
    ]
    assert worker not in targets


def test_dev_runs_one_of_each_without_autoscalers() -> None:
    docs = render("dev")
    assert not of_kind(docs, "HorizontalPodAutoscaler") and not of_kind(docs, "ScaledObject")
    for component in ("api", "worker"):
        assert deployment(docs, component)["spec"]["replicas"] == 1


def test_the_service_sends_grpc_and_metrics_to_the_api_pods(docs: tuple[Manifest, ...]) -> None:
    api = deployment(docs, "api")
    service = named(docs, "Service", api["metadata"]["name"])
    assert service["spec"]["type"] == "ClusterIP"
    assert selects(service["spec"]["selector"], pod_labels(api))
    assert not selects(service["spec"]["selector"], pod_labels(deployment(docs, "worker")))
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc"
    api_settings = settings(docs, "api")
    container = only_container(api)
    assert container_port(container, ports["grpc"]["targetPort"]) == listen_port(
        api_settings.grpc_listen
    )
    assert container_port(container, ports["metrics"]["targetPort"]) == listen_port(
        api_settings.metrics_listen
    )


def test_every_service_target_port_exists_on_the_pods_it_selects(
    docs: tuple[Manifest, ...],
) -> None:
    for service in of_kind(docs, "Service"):
        pods = [w for w in workloads(docs) if selects(service["spec"]["selector"], pod_labels(w))]
        assert pods, f"Service {service['metadata']['name']} selects no pods"
        for port in service["spec"]["ports"]:
            for pod in pods:
                assert container_port(only_container(pod), port["targetPort"]) is not None


def test_every_probe_names_a_declared_container_port(docs: tuple[Manifest, ...]) -> None:
    for workload, container in all_containers(docs):
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in container:
                port = probe_port(container[kind])
                assert container_port(container, port) is not None, (
                    workload["metadata"]["name"],
                    kind,
                )


def test_api_probes_ask_the_grpc_health_service_on_the_listen_port(
    docs: tuple[Manifest, ...],
) -> None:
    container = only_container(deployment(docs, "api"))
    port = listen_port(settings(docs, "api").grpc_listen)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[kind]["grpc"]["port"] == port, kind
    assert container["readinessProbe"]["grpc"]["service"] == "tuning.v1.TuningService"
    # Liveness must not follow Redis, or an outage restarts every replica.
    assert container["livenessProbe"]["grpc"]["service"] == LIVENESS


def test_worker_probes_ask_its_health_port(docs: tuple[Manifest, ...]) -> None:
    worker = settings(docs, "worker")
    container = only_container(deployment(docs, "worker"))
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[kind]["grpc"]["port"] == listen_port(worker.worker_health_listen)
    assert container["livenessProbe"]["grpc"]["service"] == LIVENESS
    assert container_port(container, "metrics") == listen_port(worker.metrics_listen)


def test_every_tuning_variable_is_a_real_setting_with_a_valid_value(
    docs: tuple[Manifest, ...],
) -> None:
    names = set(config(docs))
    for _, container in all_containers(docs):
        names |= {e["name"] for e in container.get("env", [])}
    unknown = {n for n in names if n.startswith("TUNING_")} - SETTINGS_ENV
    assert not unknown
    Settings.from_env(config(docs))  # a value the processes cannot parse exits them


@pytest.mark.parametrize("component", ["api", "worker"])
def test_every_file_setting_names_a_file_a_volume_provides(
    docs: tuple[Manifest, ...], component: str
) -> None:
    workload = deployment(docs, component)
    mounts = only_container(workload)["volumeMounts"]
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    values = dataclasses.asdict(settings(docs, component))
    files = [values[f.name] for f in dataclasses.fields(Settings) if f.name.endswith("_file")]
    for file in filter(None, files):
        path = PurePosixPath(file)
        mount = next(m for m in mounts if path.is_relative_to(m["mountPath"]))
        provided = files_provided(docs, volumes[mount["name"]])
        assert provided is None or str(path.relative_to(mount["mountPath"])) in provided, file


def test_every_referenced_config_map_and_secret_exists_or_is_documented(
    docs: tuple[Manifest, ...],
) -> None:
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for workload in workloads(docs):
        for kind, name in referenced_objects(workload):
            assert (kind, name) in present or external_name(docs, kind, name), (kind, name)


def test_prod_keeps_every_secret_value_out_of_git() -> None:
    docs = render("prod")
    assert not of_kind(docs, "Secret")
    referenced = {n for w in workloads(docs) for k, n in referenced_objects(w) if k == "Secret"}
    assert referenced == EXTERNAL_SECRETS


def test_the_readme_tells_how_to_create_every_external_secret() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for name in EXTERNAL_SECRETS:
        assert re.search(rf"kubectl .*create secret generic {name} ", readme), name


def test_dev_fake_secrets_are_usable_by_the_processes(tmp_path: Path) -> None:
    docs = render("dev")
    api = deployment(docs, "api")
    volumes = {v["name"]: v for v in pod_spec(api)["volumes"]}
    for mount in only_container(api)["volumeMounts"]:
        for source in volumes[mount["name"]].get("projected", {}).get("sources", []):
            write_secret(docs, source["secret"]["name"], tmp_path / mount["name"])
    secret_volume = volumes["encryption-keys"]["secret"]
    write_secret(docs, secret_volume["secretName"], tmp_path / "encryption-keys")
    tenants = load_tenants(tmp_path / "tenants" / "tenants.json")
    for tenant in tenants.values():
        assert tenant.credentials_file is None or tenant.credentials_file.is_file()
    assert KeyRing.load(tmp_path / "encryption-keys" / "keys.json").primary_id


def test_dev_emulator_grants_the_dev_oauth_credential(tmp_path: Path) -> None:
    docs = render("dev")
    secrets = {s["metadata"]["name"]: s for s in of_kind(docs, "Secret")}
    grants_secret = next(n for n in secrets if n.startswith("tuning-emulator-grants"))
    write_secret(docs, grants_secret, tmp_path)
    oauth = next(n for n in secrets if n.startswith("tuning-oauth"))
    for encoded in secrets[oauth]["data"].values():
        credential = json.loads(base64.b64decode(encoded))
        clients = {g.client_id for g in load_grants(tmp_path / "grants.json")}
        assert credential["client_id"] in clients


def write_secret(docs: tuple[Manifest, ...], name: str, directory: Path) -> None:
    """Lay the Secret's keys out as files, as the kubelet mounts them."""
    directory.mkdir(parents=True, exist_ok=True)
    for key, encoded in named(docs, "Secret", name).get("data", {}).items():
        (directory / key).write_bytes(base64.b64decode(encoded))


def test_autoscalers_and_budgets_target_the_platforms_deployments(
    docs: tuple[Manifest, ...],
) -> None:
    names = {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
    for hpa in of_kind(docs, "HorizontalPodAutoscaler") + of_kind(docs, "ScaledObject"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in names
    for component in ("api", "worker"):
        labels = pod_labels(deployment(docs, component))
        budgets = [
            p
            for p in of_kind(docs, "PodDisruptionBudget")
            if selects(p["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(budgets) == 1, component


def test_prod_keeps_three_api_replicas_and_budgets_leave_room_to_drain() -> None:
    docs = render("prod")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] >= 3
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu"}
    (scaled,) = of_kind(docs, "ScaledObject")
    minimums = {"api": hpa["spec"]["minReplicas"], "worker": scaled["spec"]["minReplicaCount"]}
    for component, minimum in minimums.items():
        labels = pod_labels(deployment(docs, component))
        (pdb,) = [
            p
            for p in of_kind(docs, "PodDisruptionBudget")
            if selects(p["spec"]["selector"]["matchLabels"], labels)
        ]
        # minAvailable equal to the minimum would block every node drain.
        assert 1 <= pdb["spec"]["minAvailable"] < minimum, component


def test_every_container_is_locked_down(docs: tuple[Manifest, ...]) -> None:
    for workload, container in all_containers(docs):
        pod = pod_spec(workload).get("securityContext", {})
        own = container.get("securityContext", {})
        effective = pod | own
        assert effective.get("runAsNonRoot") is True
        assert effective.get("runAsUser") == 10001
        assert effective.get("seccompProfile") == {"type": "RuntimeDefault"}
        assert own.get("readOnlyRootFilesystem") is True
        assert own.get("allowPrivilegeEscalation") is False
        assert own.get("capabilities", {}).get("drop") == ["ALL"]
        assert pod_spec(workload).get("automountServiceAccountToken") is False


@pytest.mark.parametrize("component", ["api", "worker", "emulator"])
def test_processes_of_the_image_get_a_writable_tmp(overlay: str, component: str) -> None:
    docs = render(overlay)
    matches = [d for d in of_kind(docs, "Deployment") if component_of(d) == component]
    for workload in matches:
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        (tmp,) = [m for m in only_container(workload)["volumeMounts"] if m["mountPath"] == TMP_DIR]
        assert "emptyDir" in volumes[tmp["name"]]
        assert not tmp.get("readOnly", False)


def test_api_termination_grace_covers_endpoint_removal_and_drain(
    docs: tuple[Manifest, ...],
) -> None:
    api = deployment(docs, "api")
    sleep_s = prestop_sleep_s(only_container(api))
    assert sleep_s >= 1, "without a preStop pause the API drains while still an endpoint"
    drain_s = settings(docs, "api").grpc_grace_s
    assert pod_spec(api)["terminationGracePeriodSeconds"] >= sleep_s + drain_s + DRAIN_MARGIN_S


def test_worker_termination_grace_covers_its_lease(docs: tuple[Manifest, ...]) -> None:
    worker = deployment(docs, "worker")
    lease_s = settings(docs, "worker").job_lease_s
    assert pod_spec(worker)["terminationGracePeriodSeconds"] >= lease_s + DRAIN_MARGIN_S


@pytest.mark.parametrize(("component", "module"), [("api", "service"), ("worker", "worker")])
def test_the_container_command_runs_the_projects_module(
    docs: tuple[Manifest, ...], component: str, module: str
) -> None:
    command = only_container(deployment(docs, component))["command"]
    assert command == ["python", "-m", module]
    assert importlib.util.find_spec(f"{module}.__main__") is not None


def test_every_image_names_a_version(overlay: str) -> None:
    for _, container in all_containers(render(overlay)):
        image = container["image"]
        assert re.search(r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", image), image
        if overlay == "prod":
            assert not image.endswith(":latest"), image


def test_every_container_has_cpu_and_memory_requests_within_limits(
    docs: tuple[Manifest, ...],
) -> None:
    for workload, container in all_containers(docs):
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, (workload["metadata"]["name"], resource)


@pytest.mark.parametrize("component", ["api", "worker"])
def test_replicas_spread_across_nodes(docs: tuple[Manifest, ...], component: str) -> None:
    workload = deployment(docs, component)
    constraints = pod_spec(workload)["topologySpreadConstraints"]
    by_node = [c for c in constraints if c["topologyKey"] == "kubernetes.io/hostname"]
    assert by_node and selects(by_node[0]["labelSelector"]["matchLabels"], pod_labels(workload))


@pytest.mark.parametrize("component", ["api", "worker"])
def test_every_platform_object_carries_the_recommended_labels(
    docs: tuple[Manifest, ...], component: str
) -> None:
    labels = pod_labels(deployment(docs, component))
    assert labels["app.kubernetes.io/part-of"] == IMAGE
    assert labels["app.kubernetes.io/component"] == component
    for doc in docs:
        if component_of(doc) is not None:
            assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == IMAGE


def policies_for(docs: tuple[Manifest, ...], component: str) -> list[Manifest]:
    labels = pod_labels(deployment(docs, component))
    return [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)
        and all(
            labels.get(e["key"]) in e["values"]
            for e in p["spec"]["podSelector"].get("matchExpressions", [])
        )
    ]


def ingress_ports(policies: list[Manifest]) -> dict[int | str, list[Manifest]]:
    """Every port the policies let in, with the peers allowed to use it."""
    ports: dict[int | str, list[Manifest]] = {}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for port in rule["ports"]:
                ports.setdefault(port["port"], []).extend(rule.get("from", [{}]))
    return ports


def egress_ports(policies: list[Manifest]) -> set[int | str]:
    return {p["port"] for pol in policies for r in pol["spec"]["egress"] for p in r["ports"]}


@pytest.mark.parametrize("component", ["api", "worker"])
def test_network_policy_denies_by_default(docs: tuple[Manifest, ...], component: str) -> None:
    types = {t for p in policies_for(docs, component) for t in p["spec"]["policyTypes"]}
    assert types == {"Ingress", "Egress"}


def test_api_accepts_grpc_from_clients_and_metrics_from_monitoring_only(
    docs: tuple[Manifest, ...],
) -> None:
    container = only_container(deployment(docs, "api"))
    ports = ingress_ports(policies_for(docs, "api"))
    numbers = {container_port(container, port) for port in ports}
    api = settings(docs, "api")
    # gRPC and the express-mode REST facade for clients; metrics for monitoring.
    listens = (api.grpc_listen, api.express_listen, api.metrics_listen)
    assert numbers == {listen_port(address) for address in listens}
    metrics_from = next(v for k, v in ports.items() if k in ("metrics", 9090))
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    assert all(peer["namespaceSelector"]["matchLabels"] == monitoring for peer in metrics_from)


def test_worker_accepts_only_metrics_scrapes(docs: tuple[Manifest, ...]) -> None:
    container = only_container(deployment(docs, "worker"))
    ports = ingress_ports(policies_for(docs, "worker"))
    assert {container_port(container, port) for port in ports} == {
        listen_port(settings(docs, "worker").metrics_listen)
    }


@pytest.mark.parametrize("component", ["api", "worker"])
def test_egress_reaches_dns_redis_and_https(docs: tuple[Manifest, ...], component: str) -> None:
    assert {53, 6379, 443} <= egress_ports(policies_for(docs, component))


@pytest.mark.parametrize("component", ["api", "worker"])
def test_dev_processes_may_reach_the_emulator(component: str) -> None:
    docs = render("dev")
    upstream = settings(docs, component).upstream_base_url
    emulator = named(docs, "Service", "tuning-emulator")
    assert upstream == f"http://tuning-emulator:{emulator['spec']['ports'][0]['port']}"
    assert emulator["spec"]["ports"][0]["port"] in egress_ports(policies_for(docs, component))
