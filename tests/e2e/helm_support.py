"""Helpers for the chart tests: the real helm, a release's rendered objects, the operator as its ServiceAccount.

The chart is rendered by the helm built from its Go module (``hack/build-tools.sh helm``) and
applied with the real kubectl. An operator "runs as the chart" when it gets the container
arguments and environment of the rendered Deployment (ports moved to free loopback ones, so
several can run on one machine) and a kubeconfig holding a token the TokenRequest API issued
for the chart's ServiceAccount: exactly the identity and permissions a pod of the release has.
"""

import dataclasses
import json
import pathlib
import re
import socket
import subprocess
from typing import Any

import yaml

from oncall_operator import devcluster
from tests.conftest import REPO
from tests.e2e.conftest import Kubectl, OperatorProcess, log_records

CHART = REPO / "deploy" / "helm" / "oncall-operator"
DENIED = re.compile(r'HTTP/1\.1" 403 |\(403\)|forbidden', re.IGNORECASE)
"""A refusal in the operator's log: urllib3's debug line, the client's ApiException, Kopf's errors."""


class Helm:
    def __init__(self, binary: pathlib.Path) -> None:
        self.binary = binary

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
        return proc

    def template(self, release: str, namespace: str, *sets: str, show: str | None = None) -> str:
        args = ["template", release, str(CHART), "--namespace", namespace]
        for s in sets:
            args += ["--set", s]
        if show:
            args += ["--show-only", show]
        return self.run(*args).stdout


def documents(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def find(docs: list[dict[str, Any]], kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (namespace is None or d["metadata"].get("namespace") == namespace)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclasses.dataclass
class Release:
    """A rendered and applied release: its name, namespace, objects and ServiceAccount."""

    name: str
    namespace: str
    docs: list[dict[str, Any]]
    rendered: str

    @property
    def service_account(self) -> str:
        return str(find(self.docs, "ServiceAccount")[0]["metadata"]["name"])

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    @property
    def container(self) -> dict[str, Any]:
        container: dict[str, Any] = find(self.docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        return container

    def operator_args(self, liveness_port: int) -> tuple[str, ...]:
        """The Deployment's arguments, minus the leading ``run`` the test's process adds, on a free port."""
        args = [a for a in self.container["args"] if a != "run"]
        return tuple(
            f"--liveness=http://127.0.0.1:{liveness_port}/healthz" if a.startswith("--liveness=") else a for a in args
        )

    def operator_env(self, pod: str) -> dict[str, str]:
        """The Deployment's literal environment; POD_ID is the pod's name, the intake on a port the OS picks."""
        env = {e["name"]: e["value"] for e in self.container["env"] if "value" in e}
        env.update(POD_ID=pod, ONCALL_HTTP_ADDRESS="127.0.0.1:0")
        return env

    def cluster_scoped(self) -> str:
        """The release's cluster-scoped objects as YAML, for deletion (the namespaced go with the namespace)."""
        kinds = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
        return yaml.safe_dump_all([d for d in self.docs if d["kind"] in kinds])


def install(
    helm: Helm, kubectl: Kubectl, release: str, namespace: str, *sets: str, dry_run_first: bool = True
) -> Release:
    """Render the chart and apply it like ``helm install`` would: the chart's CRDs first, then the templates."""
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kubectl.run("wait", "--for", "condition=established", "--timeout=60s", "crd/clusterkopfpeerings.kopf.dev")
    kubectl.run("wait", "--for", "condition=established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    rendered = helm.template(release, namespace, "admission.enabled=false", *sets)  # its VAPs: test_tenancy
    if dry_run_first:
        kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=rendered)
    kubectl.run("apply", "-f", "-", stdin=rendered)
    return Release(release, namespace, documents(rendered), rendered)


def uninstall(kubectl: Kubectl, release: Release) -> None:
    kubectl.run("delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=release.cluster_scoped(), check=False)


def service_account_kubeconfig(
    control_plane: devcluster.ControlPlane, kubectl: Kubectl, release: Release, path: pathlib.Path
) -> pathlib.Path:
    """A kubeconfig whose only credential is a TokenRequest token of the release's ServiceAccount."""
    token = kubectl.run("create", "token", release.service_account, "-n", release.namespace, "--duration=1h")
    admin = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    for key in ("certificate-authority",):  # make a relative path absolute, if the admin's is one
        if key in cluster and not pathlib.Path(cluster[key]).is_absolute():
            cluster[key] = str((control_plane.kubeconfig.parent / cluster[key]).resolve())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": release.service_account, "user": {"token": token.stdout.strip()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": release.service_account}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    return path


def chart_operator(
    release: Release, kubeconfig: pathlib.Path, log: pathlib.Path, pod: str, **env: str
) -> OperatorProcess:
    """An ``OperatorProcess`` started as the release's pod ``pod`` would start (its HTTP port: ``http_port``).

    The chart's allowlists name the providers' hosts; the tests' receivers (``tests/peers.py``, the
    local SMTP inbox) are on loopback, so these allow loopback too, as a user would list a relay.
    """
    local = {
        "ONCALL_PAGERDUTY_ENDPOINTS": "http://127.0.0.1:*",
        "ONCALL_API_ENDPOINTS": "http://127.0.0.1:*",
        "ONCALL_SMTP_HOSTS": "127.0.0.1",
    }
    return OperatorProcess(
        kubeconfig, log, env={**release.operator_env(pod), **local, **env}, args=release.operator_args(free_port())
    )


def denials(log: str) -> list[str]:
    """The log records (a line with its traceback) in which the API server refused a call (403)."""
    return [r for r in log_records(log) if DENIED.search(r)]


def secret_outside(record: str, allowed: str) -> bool:
    """Whether a refusal is a Secret read outside the namespace ``allowed`` (what the RBAC is for)."""
    path = re.search(r"/namespaces/([^/\s]+)/secrets/", record)
    words = re.search(r'resource \\?"secrets\\?" in API group \\?"\\?" in the namespace \\?"([^"\\]+)', record)
    found = path or words
    return found is not None and found.group(1) != allowed
