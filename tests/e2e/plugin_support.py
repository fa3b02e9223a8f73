"""Running ``kubectl oncall`` through the real kubectl, as a user types it, for the plugin and board tests."""

import os
import pathlib
import subprocess
import sys

from tests.e2e.conftest import Kubectl

INCIDENT = """
apiVersion: oncall.dev/v1alpha1
kind: Incident
metadata: {name: NAME}
spec: {title: API down, severity: SEVERITY, runbookRef: {name: pod-oom-killed}}
"""


def env(kubeconfig: pathlib.Path) -> dict[str, str]:
    """kubectl finds kubectl-oncall (and kubectl_complete-oncall) next to the venv's python."""
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}",
    }


def kubectl_oncall(
    kubectl: Kubectl, *args: str, kubeconfig: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``kubectl oncall ARGS`` exactly as given (flags wherever the caller puts them)."""
    return subprocess.run(
        [str(kubectl.binary), "oncall", *args],
        capture_output=True,
        text=True,
        env=env(kubeconfig or kubectl.kubeconfig),
        timeout=60,
    )


def open_incident(kubectl: Kubectl, namespace: str, name: str = "api-down", severity: str = "critical") -> None:
    """An Incident as the operator would have opened it (Triggered, one timeline entry)."""
    import json

    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=INCIDENT.replace("NAME", name).replace("SEVERITY", severity))
    entry = {"at": "2026-03-10T22:00:00Z", "type": "Triggered", "message": "opened"}
    status = json.dumps({"status": {"phase": "Triggered", "timeline": [entry]}})
    kubectl.run("patch", "incident", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", status)
