"""The Incident a write hands back without validating the answer is the one the API server keeps.

:func:`oncall_operator.adapters.incidents.as_written` builds the written Incident from what was
sent and the answer's metadata instead of validating the answer again (issue 18: a storm's CPU).
That holds only if the API server neither prunes, defaults nor rewrites anything the models send:
here a create and status writes of every part of a status (enums, times with and without
microseconds, conditions, maps, lists, a status over the byte budget that is compacted on the
way) go to the real API server, and what the writer kept must equal the answer validated, and a
fresh read validated.
"""

import datetime as dt
from typing import Any

import kubernetes
import pytest

from oncall_operator import devcluster
from oncall_operator.adapters import apiserver, incidents, kube
from oncall_operator.api import base, incident
from oncall_operator.domain import bounds

pytestmark = pytest.mark.e2e

T0 = dt.datetime(2026, 12, 3, 16, 0, tzinfo=dt.UTC)
SPEC = incident.IncidentSpec(
    title="checkout down — 5xx",
    severity=base.Severity.CRITICAL,
    source=incident.Source(
        type=incident.SourceType.ALERTMANAGER,
        alert_name="CheckoutDown",
        group_key='{}:{alertname="CheckoutDown"}',
        labels={"alertname": "CheckoutDown", "severity": "critical"},
        annotations={"summary": "5xx above 5 %"},
        generator_url="http://prometheus.local/graph?g0.expr=up",
    ),
    escalation_policy_ref=base.ObjectRef(name="payments"),
    description='ünïcode and "quotes"\n',
)


def rich(now: dt.datetime) -> incident.IncidentStatus:
    """A status with a value in every part the operator writes."""
    later = now + dt.timedelta(seconds=90, microseconds=123456)
    return incident.IncidentStatus(
        observed_generation=1,
        conditions=[
            base.Condition(type="Ready", status=base.ConditionStatus.TRUE, reason="Resolved", last_transition_time=now)
        ],
        phase=incident.Phase.TRIGGERED,
        on_call="Ada",
        target="Deployment/shop/checkout",
        occurrences=3,
        first_seen=now,
        last_seen=later,
        escalation=incident.Escalation(
            level=1,
            started_at=now,
            next_step_at=later,
            notifications=[
                incident.Notification(
                    key="page/L1/loop0@1",
                    at=now,
                    level=1,
                    user="Ada",
                    channel="email",
                    result="Pending",
                    text="checkout down",
                    claimed_by="pod-a/1",
                    retry_at=later,
                    attempts=1,
                )
            ],
        ),
        actions=[incident.ActionRecord(at=now, action="raise", state=incident.ActionState.APPLIED, patch="[]")],
        detections=[incident.Detection(at=later, key="uid/app/1", restart_count=2, limit="200Mi")],
        guardrails=incident.Guardrails(action_times=[now], last_action_at=now, raises=1, seen=["uid/app/1"]),
        checklist=[incident.ChecklistItem(title="look at the dashboard"), incident.ChecklistItem(title="x", done=True)],
        timeline=[incident.TimelineEntry(at=later, type="Note", message="é ✓ <b>", actor="ada@example.com")],
        alert_fingerprints=["0123456789abcdef"],
    )


def over_budget(now: dt.datetime) -> incident.IncidentStatus:
    """A status the writer must compact before it is sent."""
    entries = [incident.TimelineEntry(at=now, type="Note", message="x" * 3000) for _ in range(400)]
    return rich(now).model_copy(update={"timeline": entries})


def to(status: incident.IncidentStatus) -> incidents.Mutation:
    return lambda _: status


@pytest.fixture
async def api(control_plane: devcluster.ControlPlane, crds: None) -> Any:
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    found = apiserver.Api(kube.Kube(client))
    yield found
    await found.close()


async def test_what_a_create_and_each_status_write_keep_is_what_the_api_server_holds(
    api: apiserver.Api, namespace: str
) -> None:
    raw, created = await incidents.create_async(api, namespace, "checkout-down", SPEC, {"app": "checkout"})
    assert created
    kept = incidents.as_written(incident.Incident(spec=SPEC), None, raw)
    assert kept == incident.Incident.model_validate(raw)

    path = f"/apis/oncall.dev/v1alpha1/namespaces/{namespace}/incidents/checkout-down"
    statuses = [rich(T0), rich(T0).model_copy(update={"phase": incident.Phase.ACKNOWLEDGED}), over_budget(T0)]
    assert bounds.size(statuses[-1]) > bounds.STATUS_BUDGET
    for status in statuses:
        written = await incidents.update_status_async(api, namespace, "checkout-down", to(status), known=raw)
        assert written is not None and written.changed
        answered = incident.Incident.model_validate(written.raw)
        assert written.incident == answered
        assert written.incident.metadata.model_extra == answered.metadata.model_extra  # the new resourceVersion
        read = await api.call("GET", path)
        assert read is not None and written.incident == incident.Incident.model_validate(read)
        raw = written.raw
    assert written.incident.status is not None and bounds.size(written.incident.status) <= bounds.STATUS_BUDGET
