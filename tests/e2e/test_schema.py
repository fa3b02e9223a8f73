"""The CRDs on a real API server: installed, listed, and refusing bad objects at apply time."""

import pathlib
import textwrap

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.usefixtures("crds")

SCHEDULE = """
apiVersion: oncall.dev/v1alpha1
kind: OnCallSchedule
metadata: {name: bad}
spec:
  timeZone: Europe/Berlin
  roles:
    - name: primary
      layers:
        - name: weekly
          rotation: {participants: [Ada], turnLength: 1w, handoffTime: "09:00", start: "2026-01-05"}
"""

POLICY = """
apiVersion: oncall.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: bad}
spec:
  levels:
    - {name: l1, after: "0", targets: [{user: Ada}], channels: [slack]}
  channels: [{name: slack, type: Slack, secretRef: {name: s, key: url}}]
  severities: [{severity: critical, response: Page, responseTime: 5m, channels: [slack]}]
"""

RUNBOOK = """
apiVersion: oncall.dev/v1alpha1
kind: Runbook
metadata: {name: bad}
spec:
  trigger: {event: OOMKilled}
  actions:
    - {name: raise, type: raiseMemoryLimit, raiseMemoryLimit: {maxLimit: 2Gi}}
"""

INCIDENT = """
apiVersion: oncall.dev/v1alpha1
kind: Incident
metadata: {name: bad}
spec: {title: Something broke, severity: critical}
"""


def test_crds_are_established(kubectl: Kubectl) -> None:
    for plural in ("oncallschedules", "escalationpolicies", "runbooks", "incidents"):
        crd = kubectl.json("get", "crd", f"{plural}.oncall.dev")
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True", plural


def test_every_example_applies_and_get_oncall_lists_all_four_kinds(kubectl: Kubectl, namespace: str) -> None:
    examples = sorted(pathlib.Path(REPO / "examples").glob("*.yaml"))
    assert len(examples) >= 4
    for path in examples:
        kubectl.run("apply", "-n", namespace, "-f", str(path))
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=INCIDENT.replace("name: bad", "name: db-down"))
    listed = kubectl.run("get", "oncall", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(listed) == sorted(
        [
            "oncallschedule.oncall.dev/valeo-oncall",
            "escalationpolicy.oncall.dev/valeo-escalation",
            "runbook.oncall.dev/api-error-rate",
            "runbook.oncall.dev/pod-oom-killed",
            "runbook.oncall.dev/connection-pool-exhaustion",
            "runbook.oncall.dev/compliance-violation",
            "incident.oncall.dev/db-down",
        ]
    )
    short = kubectl.run("get", "ocs,escpol,rb,inc", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(short) == sorted(listed)


def _edit(doc: str, old: str, new: str) -> str:
    assert old in doc, old
    return doc.replace(old, new)


INVALID = [
    (
        "empty-rotation",
        _edit(SCHEDULE, "participants: [Ada]", "participants: []"),
        "spec.roles[0].layers[0].rotation.participants",
    ),
    ("no-roles", SCHEDULE.split("  roles:")[0] + "  roles: []\n", "spec.roles"),
    (
        "bad-duration",
        _edit(SCHEDULE, "turnLength: 1w", "turnLength: 1 week"),
        "spec.roles[0].layers[0].rotation.turnLength",
    ),
    (
        "bad-handoff-time",
        _edit(SCHEDULE, 'handoffTime: "09:00"', 'handoffTime: "25:00"'),
        "spec.roles[0].layers[0].rotation.handoffTime",
    ),
    ("timezone-shape", _edit(SCHEDULE, "Europe/Berlin", "Europe Berlin"), "spec.timeZone"),
    (
        "override-ends-before-start",
        SCHEDULE
        + "  overrides: [{role: primary, user: Bob, start: '2026-02-02T00:00:00Z', end: '2026-02-01T00:00:00Z'}]\n",
        "spec.overrides[0].end",
    ),
    (
        "override-unknown-role",
        SCHEDULE
        + "  overrides: [{role: tertiary, user: Bob, start: '2026-02-01T00:00:00Z', end: '2026-02-02T00:00:00Z'}]\n",
        "spec.overrides",
    ),
    (
        "restriction-empty-window",
        _edit(
            SCHEDULE,
            'start: "2026-01-05"}',
            'start: "2026-01-05"}\n          restrictions: [{from: "08:00", to: "08:00"}]',
        ),
        "spec.roles[0].layers[0].restrictions[0].to",
    ),
    (
        "bad-ack-timeout",
        POLICY.replace("spec:\n", "spec:\n  ackTimeout: 5 minutes\n"),
        "spec.ackTimeout",
    ),
    ("first-level-not-at-zero", _edit(POLICY, 'after: "0"', "after: 5m"), "spec.levels"),
    ("undeclared-channel", _edit(POLICY, "channels: [slack]}", "channels: [sms]}"), "spec.levels"),
    (
        "target-with-two-kinds",
        _edit(POLICY, "targets: [{user: Ada}]", "targets: [{user: Ada, team: sre}]"),
        "spec.levels[0].targets[0]",
    ),
    (
        "unknown-severity-in-policy",
        _edit(POLICY, "severity: critical", "severity: urgent"),
        "spec.severities[0].severity",
    ),
    (
        "unknown-severity",
        _edit(INCIDENT, "severity: critical", "severity: urgent"),
        "spec.severity",
    ),
    ("incident-without-title", _edit(INCIDENT, "title: Something broke, ", ""), "spec.title"),
    (
        "trigger-names-nothing",
        _edit(RUNBOOK, "trigger: {event: OOMKilled}", "trigger: {matchers: []}"),
        "spec.trigger",
    ),
    ("unknown-event", _edit(RUNBOOK, "event: OOMKilled", "event: CrashLoop"), "spec.trigger.event"),
    (
        "action-without-settings",
        _edit(RUNBOOK, ", raiseMemoryLimit: {maxLimit: 2Gi}", ""),
        "spec.actions[0].raiseMemoryLimit",
    ),
    (
        "factor-not-above-one",
        _edit(RUNBOOK, "{maxLimit: 2Gi}", "{maxLimit: 2Gi, factor: 0.5}"),
        "spec.actions[0].raiseMemoryLimit.factor",
    ),
    (
        "negative-cap",
        _edit(
            RUNBOOK,
            "{name: raise, type: raiseMemoryLimit, raiseMemoryLimit: {maxLimit: 2Gi}}",
            "{name: up, type: scale, scale: {maxReplicas: -1}}",
        ),
        "spec.actions[0].scale.maxReplicas",
    ),
    (
        "bad-quantity",
        _edit(RUNBOOK, "maxLimit: 2Gi", "maxLimit: two gigs"),
        "spec.actions[0].raiseMemoryLimit.maxLimit",
    ),
    (
        "guardrail-zero-actions",
        RUNBOOK + "  guardrails: {maxActions: 0}\n",
        "spec.guardrails.maxActions",
    ),
    ("unknown-field", RUNBOOK + "  autoFix: true\n", "autoFix"),
    # a person's contact fields, hostile or wrong
    ("phone-not-e164", SCHEDULE + '  members: [{name: Ada, phone: "+49-XXX-XXXXXXX"}]\n', "spec.members[0].phone"),
    ("phone-injection", SCHEDULE + '  members: [{name: Ada, phone: "+4930<Dial>1"}]\n', "spec.members[0].phone"),
    ("slack-broadcast", SCHEDULE + '  members: [{name: Ada, slack: "<!channel>"}]\n', "spec.members[0].slack"),
    (
        "email-header-injection",
        SCHEDULE + '  members: [{name: Ada, email: "a@b.c>, x@evil"}]\n',
        "spec.members[0].email",
    ),
    (
        "sms-rule-without-phone",
        SCHEDULE + "  members: [{name: Ada, notificationRules: [{method: SMS}]}]\n",
        "spec.members[0].phone",
    ),
    (
        "unknown-contact-method",
        SCHEDULE + "  members: [{name: Ada, notificationRules: [{method: Pigeon}]}]\n",
        "spec.members[0].notificationRules[0].method",
    ),
    (
        "routing-key-secret-name",
        SCHEDULE + "  members: [{name: Ada, pagerDutyRoutingKey: {name: ../etc, key: k}}]\n",
        "spec.members[0].pagerDutyRoutingKey.name",
    ),
    (
        "twilio-without-from",
        _edit(POLICY, "channels: [{name: slack, type: Slack,", "channels: [{name: slack, type: Twilio,"),
        "spec.channels[0].twilio",
    ),
    ("link-not-http", POLICY + "  links: [{name: x, url: 'javascript:alert(1)'}]\n", "spec.links[0].url"),
    # noise control: a budget of no pages would hold everything; flap thresholds that mean nothing
    ("page-budget-zero", POLICY + "  noise: {maxPagesPerPersonPerHour: 0}\n", "spec.noise.maxPagesPerPersonPerHour"),
    (
        "page-budget-huge",
        POLICY + "  noise: {maxPagesPerPersonPerHour: 100000}\n",
        "spec.noise.maxPagesPerPersonPerHour",
    ),
    ("flap-zero-resolutions", POLICY + "  noise: {flapResolutions: 0}\n", "spec.noise.flapResolutions"),
    ("flap-window-not-duration", POLICY + "  noise: {flapWindow: soon}\n", "spec.noise.flapWindow"),
]


@pytest.mark.parametrize(("case", "manifest", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_object_is_rejected_naming_the_field(
    kubectl: Kubectl, namespace: str, case: str, manifest: str, field: str
) -> None:
    proc = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=textwrap.dedent(manifest), check=False)
    assert proc.returncode != 0, f"{case}: the API server accepted it"
    assert field in proc.stderr, f"{case}: the error does not name {field}: {proc.stderr}"


def test_kubectl_get_incidents_shows_the_board_columns(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=_edit(INCIDENT, "name: bad", "name: api-down"))
    status = (
        '{"status": {"phase": "Acknowledged", "acknowledgedBy": "jane", "onCall": "DevOps Lead", '
        '"target": "Deployment/shop/api", "escalation": {"level": 2}}}'
    )
    kubectl.run(
        "patch",
        "incident",
        "api-down",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    )
    [row] = kubectl.table("get", "incidents", "-n", namespace)
    assert row == {
        "NAME": "api-down",
        "SEVERITY": "critical",
        "PHASE": "Acknowledged",
        "NEEDS-HUMAN": "",
        "ACK-BY": "jane",
        "LEVEL": "2",
        "ON-CALL": "DevOps Lead",
        "TARGET": "Deployment/shop/api",
        "READY": "",  # no operator runs in this test
        "AGE": row["AGE"],
    }
