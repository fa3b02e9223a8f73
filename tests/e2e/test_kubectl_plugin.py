"""`kubectl oncall`, run through the real kubectl (plugin discovery on PATH), on the real API."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.usefixtures("crds")

INCIDENT = """
apiVersion: oncall.dev/v1alpha1
kind: Incident
metadata: {name: api-down}
spec: {title: API down, severity: critical}
"""


def oncall(kubectl: Kubectl, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl oncall ...` as a user types it: kubectl finds kubectl-oncall next to the venv's python."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubectl.kubeconfig),
        "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    return subprocess.run(
        [str(kubectl.binary), "oncall", "-n", namespace, *args], capture_output=True, text=True, env=env, timeout=60
    )


def opened(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=INCIDENT)
    entry = {"at": "2026-03-10T22:00:00Z", "type": "Triggered", "message": "opened"}
    status = json.dumps({"status": {"phase": "Triggered", "timeline": [entry]}})
    kubectl.run("patch", "incident", "api-down", "-n", namespace, "--subresource=status", "--type=merge", "-p", status)


def test_kubectl_lists_the_plugin(kubectl: Kubectl) -> None:
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    listed = subprocess.run([str(kubectl.binary), "plugin", "list"], capture_output=True, text=True, env=env).stdout
    assert "kubectl-oncall" in listed


def test_ack_then_resolve_record_the_authenticated_user(kubectl: Kubectl, namespace: str) -> None:
    opened(kubectl, namespace)
    ack = oncall(kubectl, namespace, "ack", "api-down")
    assert ack.returncode == 0, ack.stderr
    assert ack.stdout.strip() == 'incident "api-down" acknowledged by admin'
    status = kubectl.json("get", "incident/api-down", "-n", namespace)["status"]
    assert (status["phase"], status["acknowledgedBy"]) == ("Acknowledged", "admin")
    again = oncall(kubectl, namespace, "ack", "api-down")
    assert again.returncode == 0 and "already acknowledged by admin" in again.stdout
    done = oncall(kubectl, namespace, "resolve", "api-down", "--note", "rolled back release 42")
    assert done.returncode == 0, done.stderr
    status = kubectl.json("get", "incident/api-down", "-n", namespace)["status"]
    assert (status["phase"], status["resolvedBy"]) == ("Resolved", "admin")
    timeline = oncall(kubectl, namespace, "timeline", "api-down").stdout
    assert "Acknowledged by admin" in timeline and "Resolved by admin: rolled back release 42" in timeline
    late = oncall(kubectl, namespace, "ack", "api-down")
    assert late.returncode == 1 and late.stderr.startswith('error: incident "api-down" is already resolved')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ack", "nope"), 'error: incident "nope" not found in namespace'),
        (("timeline", "nope"), 'error: incident "nope" not found in namespace'),
        (("who", "nope"), 'error: schedule "nope" not found in namespace'),
        (
            ("override", "valeo-oncall", "--user", "Ghost", "--from", "now", "--to", "now+2h"),
            'error: "Ghost" is not a member',
        ),
        (("override", "valeo-oncall", "--user", "Backend Lead", "--from", "now+2h", "--to", "now"), "error: --to ("),
        (
            ("override", "valeo-oncall", "--user", "Backend Lead", "--from", "soon", "--to", "now"),
            "error: 'soon' is not a time",
        ),
        (
            (
                "override",
                "valeo-oncall",
                "--user",
                "Backend Lead",
                "--role",
                "tertiary",
                "--from",
                "now",
                "--to",
                "now+1h",
            ),
            'error: schedule "valeo-oncall" has no role "tertiary"',
        ),
    ],
)
def test_errors_are_one_line_and_non_zero(
    kubectl: Kubectl, namespace: str, args: tuple[str, ...], message: str
) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    proc = oncall(kubectl, namespace, *args)
    assert proc.returncode == 1
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_override_is_added_and_shown_by_who(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    proc = oncall(
        kubectl,
        namespace,
        "override",
        "valeo-oncall",
        "--user",
        "SRE Engineer 2",
        "--from",
        "now",
        "--to",
        "now+2h",
        "--reason",
        "swap",
    )
    assert proc.returncode == 0, proc.stderr
    [override] = kubectl.json("get", "ocs/valeo-oncall", "-n", namespace)["spec"]["overrides"]
    assert (override["role"], override["user"], override["reason"]) == ("primary", "SRE Engineer 2", "swap")
    who = oncall(kubectl, namespace, "who")
    assert who.returncode == 0, who.stderr
    primary = next(line for line in who.stdout.splitlines() if line.strip().startswith("primary"))
    assert "SRE Engineer 2" in primary


def test_calendar_feed_parses_and_agrees_with_who(kubectl: Kubectl, namespace: str) -> None:
    import datetime as dt

    import icalendar
    import recurring_ical_events

    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    proc = oncall(kubectl, namespace, "calendar", "valeo-oncall", "--days", "30")
    assert proc.returncode == 0, proc.stderr
    calendar = icalendar.Calendar.from_ical(proc.stdout)
    now = dt.datetime.now(dt.UTC)
    current = recurring_ical_events.of(calendar).at((now.year, now.month, now.day, now.hour))
    [primary] = [str(e["SUMMARY"]) for e in current if str(e["SUMMARY"]).startswith("primary: ")]
    person = primary.removeprefix("primary: ")
    who = oncall(kubectl, namespace, "who", "valeo-oncall").stdout
    line = next(x for x in who.splitlines() if x.strip().startswith("primary"))
    assert line.split()[1:3] == person.split()[:2]  # the same person, from two independent readings
