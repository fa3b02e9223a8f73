"""Helpers for the OOM remediation tests: the test plays the kubelet, and reads what happened.

There is no kubelet on the local control plane, so the test writes what a kubelet would into
pod status through the ``pods/status`` subresource: an OOM kill (``lastState.terminated`` after
a restart, or ``state.terminated`` while down) and readiness. The client here announces itself
as ``AGENT``, so a pod's managedFields tell the test's writes from anybody else's.
"""

import datetime as dt
import itertools
import json
import uuid
from collections.abc import Callable
from typing import Any

import kubernetes

from oncall_operator.api import GROUP, VERSION
from oncall_operator.domain import oom_incident
from tests.conftest import eventually
from tests.e2e.conftest import Kubectl

AGENT = "oncall-e2e-oom"
ALLOWED_POD_MANAGERS = {"kube-controller-manager", AGENT}
_KILLS = itertools.count()
_BASE = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


class Cluster:
    """The python client (as ``AGENT``) and kubectl, with the reads and writes the tests need."""

    def __init__(self, client: kubernetes.client.ApiClient, kubectl: Kubectl) -> None:
        self.client, self.kubectl = client, kubectl
        self.core: Any = kubernetes.client.CoreV1Api(client)
        self.apps: Any = kubernetes.client.AppsV1Api(client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(client)

    def apply(self, namespace: str, *objs: dict[str, Any]) -> None:
        for obj in objs:
            self.kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        raw = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        return list(json.loads(raw.data)["items"])

    def wait_pod(self, namespace: str, selector: str, limit: str | None = None) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            for pod in self.pods(namespace, selector):
                if limit is None or memory(pod["spec"]["containers"][0]) == limit:
                    return pod
            return None

        return eventually(probe, 60, what=f"a pod {selector} with limit {limit} from the controller")

    def workload(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        read = self.apps.read_namespaced_deployment if kind == "Deployment" else self.apps.read_namespaced_stateful_set
        return dict(json.loads(read(name, namespace, _preload_content=False).data))

    def wait_limit(self, kind: str, namespace: str, name: str, limit: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            obj = self.workload(kind, namespace, name)
            return obj if memory(obj["spec"]["template"]["spec"]["containers"][0]) == limit else None

        return eventually(probe, 30, what=f"{kind} {name} limit {limit}")

    def settled(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The workload once its controller has caught up, for a resourceVersion to compare later."""
        return settled(lambda: self.workload(kind, namespace, name), f"{kind} {name}")

    def assert_not_written_by_operator(self, kind: str, namespace: str, name: str, before: dict[str, Any]) -> None:
        """Same resourceVersion as ``before``, and no field of it ever managed by the operator."""
        obj = self.workload(kind, namespace, name)
        managers = {m["manager"] for m in obj["metadata"].get("managedFields") or ()}
        assert "oncall-operator" not in managers and "kopf" not in managers, managers
        assert obj["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], managers

    def incident(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "incidents", oom_incident.incident_name(kind, namespace, name)
                )
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def wait_incident(self, namespace: str, kind: str, name: str, what: str, **want: Any) -> dict[str, Any]:
        """Wait until the Incident's status has every ``want`` (phase=..., occurrences=...; action=<reason>)."""

        def probe() -> dict[str, Any] | None:
            found = self.incident(namespace, kind, name)
            status = (found or {}).get("status") or {}
            reason = want.get("action")
            last = (status.get("actions") or [{}])[-1].get("reason", "")
            if reason and not last.startswith(f"{reason}:"):
                return None
            if all(status.get(k) == v for k, v in want.items() if k != "action"):
                return found
            return None

        return eventually(probe, 30, what=f"Incident of {kind} {name}: {what} {want}")

    def kill(
        self,
        namespace: str,
        pod: dict[str, Any],
        restarts: int = 1,
        finished: str | None = None,
        down: bool = False,
        resources: dict[str, Any] | None = None,
    ) -> str:
        """Write an OOM kill of the pod's first container into its status; returns finishedAt.

        ``resources``: the container's running resources, as a kubelet that can resize pods in
        place reports them (the API server refuses a resize of a pod whose kubelet does not).
        """
        n = next(_KILLS)
        finished = finished or stamp(_BASE + dt.timedelta(seconds=10 * n + 5))
        container = pod["spec"]["containers"][0]
        term = {
            "reason": "OOMKilled",
            "exitCode": 137,
            "startedAt": stamp(_BASE + dt.timedelta(seconds=10 * n)),
            "finishedAt": finished,
            "containerID": f"containerd://{uuid.uuid4().hex}",
        }
        status = {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": False,
            "restartCount": restarts,
            "started": not down,
            "state": {"terminated": term} if down else {"running": {"startedAt": finished}},
            "lastState": {} if down else {"terminated": term},
            **({"resources": resources} if resources is not None else {}),
        }
        body = {"status": {"phase": "Running", "containerStatuses": [status]}}
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], namespace, body)
        return finished

    def make_ready(self, namespace: str, pod: dict[str, Any]) -> None:
        container = pod["spec"]["containers"][0]
        ready = [{"type": t, "status": "True"} for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        status = {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": True,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": stamp(dt.datetime.now(dt.UTC))}},
        }
        body = {"status": {"phase": "Running", "conditions": ready, "containerStatuses": [status]}}
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], namespace, body)

    def assert_pods_untouched(self, namespace: str) -> None:
        """No pod got a write, annotation, label or finalizer from anyone but its controller and the test."""
        for pod in self.pods(namespace):
            meta = pod["metadata"]
            managers = {m["manager"] for m in meta.get("managedFields") or ()}
            strangers = {m for m in managers if m not in ALLOWED_POD_MANAGERS and not m.startswith("kubectl")}
            assert not strangers, f"pod {meta['name']} written by {strangers}"
            keys = [*(meta.get("annotations") or {}), *(meta.get("labels") or {}), *(meta.get("finalizers") or ())]
            assert not [k for k in keys if k.startswith(("oncall.dev", "kopf"))], f"pod {meta['name']}: {keys}"


def settled(read: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
    """A workload (as ``read`` returns it) once its controller has caught up: its status is for the
    current generation and replica count, and two reads in a row show the same resourceVersion."""
    last: list[str] = []

    def probe() -> dict[str, Any] | None:
        obj = read()
        status, rv = obj.get("status") or {}, obj["metadata"]["resourceVersion"]
        current = status.get("observedGeneration") == obj["metadata"]["generation"]
        stable = current and status.get("replicas") == obj["spec"]["replicas"] and last[-1:] == [rv]
        last.append(rv)
        return obj if stable else None

    return eventually(probe, 30, interval=0.5, what=f"{what} settled by its controller")


def stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def memory(container: dict[str, Any]) -> str | None:
    return ((container.get("resources") or {}).get("limits") or {}).get("memory")


def runbook(name: str = "oom", rule: dict[str, Any] | None = None, **guard: Any) -> dict[str, Any]:
    rule = {"maxLimit": "1Gi", **(rule or {})}
    return {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Runbook",
        "metadata": {"name": name},
        "spec": {
            "trigger": {"event": "OOMKilled"},
            "steps": [{"title": "Check memory usage"}],
            "actions": [{"name": "raise-memory", "type": "raiseMemoryLimit", "raiseMemoryLimit": rule}],
            "guardrails": {"cooldown": "0", "quietPeriod": "2s", **guard},
        },
    }


def workload(
    kind: str,
    name: str,
    limit: str,
    request: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"limits": {"memory": limit}}
    if request:
        resources["requests"] = {"memory": request}
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": f"registry.invalid/{name}:1", "resources": resources}]},
        },
    }
    if kind == "StatefulSet":
        spec.update(serviceName=name, podManagementPolicy="Parallel")
    meta: dict[str, Any] = {"name": name, "labels": labels or {}, "annotations": annotations or {}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}
