"""Generated Alertmanager payloads through the real intake app and the real Incident writer, on the real API server.

``tests/integration/test_intake_fuzz.py`` fuzzes the HTTP side with a recording writer; here
every accepted payload is created or updated as an Incident by ``executor/alerts.write`` on
the session's control plane, so what the API server refuses (a schema bound, a status too
big) would show up as a 5xx. For every example:

- never a 5xx: bad input is a 400 with a JSON reason whose ``field`` names the broken field;
  a broken *required* field (version, groupKey, status, alerts, an alert's status or labels)
  is a 400 naming exactly that field;
- a 200 names an Incident in one of the alert's namespaces (or the operator's own, when the
  alert's namespace does not exist), which holds under the status byte budget.

``ONCALL_FUZZ_EXAMPLES`` sets the examples per test (default 40); the 10,000 run is
``ONCALL_FUZZ_EXAMPLES=10000 hack/pytest.sh tests/e2e/test_intake_fuzz_real.py``.
"""

import copy
import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncall_operator import devcluster
from oncall_operator.adapters import apiserver, intake, kube
from oncall_operator.api import incident
from oncall_operator.domain import alerts, bounds, ratelimit
from oncall_operator.executor import alerts as flow
from tests.conftest import eventually
from tests.e2e.conftest import Kubectl
from tests.integration.test_intake_fuzz import TOKEN, Served, break_one, valid

EXAMPLES = int(os.environ.get("ONCALL_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
pytestmark = pytest.mark.timeout(max(300, EXAMPLES * 2))
HOME = "fuzz-home"
ALERT_NAMESPACES = ("fuzz-alpha", "fuzz-beta")
NAMESPACES = st.sampled_from([*ALERT_NAMESPACES, "not-here", "", "Bad_Name", "kube-system/../x"])


@pytest.fixture(scope="module")
def real(control_plane: devcluster.ControlPlane, kubectl: Kubectl, crds: None) -> Iterator[tuple[Served, Any]]:
    for ns in (HOME, *ALERT_NAMESPACES):
        kubectl.run("create", "namespace", ns, check=False)
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    custom = kubernetes.client.CustomObjectsApi(client)
    probe = {"apiVersion": "oncall.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "probe"}}
    probe["spec"] = {"title": "probe", "severity": "info"}

    def storage_ready() -> bool:  # a CRD just (re)applied answers 429 "storage is (re)initializing" for a while
        try:
            custom.create_namespaced_custom_object("oncall.dev", "v1alpha1", HOME, "incidents", probe, dry_run="All")
            for ns in (HOME, *ALERT_NAMESPACES):
                for plural in ("incidents", "runbooks"):
                    custom.list_namespaced_custom_object("oncall.dev", "v1alpha1", ns, plural)
            custom.get_namespaced_custom_object("oncall.dev", "v1alpha1", HOME, "incidents", "probe")
        except kubernetes.client.ApiException as error:
            return error.status == 404
        return True

    eventually(storage_ready, 60, what="the Incident storage")
    made: list[apiserver.Api] = []
    saved = flow.NEW_INCIDENTS
    flow.NEW_INCIDENTS = ratelimit.Buckets(per_minute=1e9, burst=1e9)  # the limit has its own test below

    async def write(payload: alerts.Payload) -> intake.Accepted:
        if not made:
            made.append(apiserver.Api(kube.Kube(client)))  # made on the server's loop, where it is used
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return await flow.write(made[0], payload, now, HOME, ())

    served = Served(TOKEN, write=write, write_timeout=60)
    try:
        yield served, custom
    finally:
        if made:
            served._run(made[0].close())
        served.close()
        flow.NEW_INCIDENTS = saved


def namespaces_of(body: dict[str, Any]) -> set[str]:
    labels = [body.get("commonLabels") or {}, *[a.get("labels") or {} for a in body.get("alerts") or []]]
    return {v for d in labels if isinstance(d, dict) for k, v in d.items() if k == "namespace"}


def check(real: tuple[Served, Any], body: dict[str, Any], status: int, answer: Any) -> None:
    _, custom = real
    assert status in (200, 400), (status, answer)
    assert isinstance(answer, dict)
    if status == 400:
        assert answer["field"] and answer["error"].startswith(f"{answer['field']}: "), answer
        return
    assert answer["status"] == "accepted"
    if not answer["incident"]:
        return  # the resolution of a group that never opened one
    ns, name = answer["incident"].split("/")
    assert ns == HOME or ns in namespaces_of(body), (ns, namespaces_of(body))
    obj = custom.get_namespaced_custom_object("oncall.dev", "v1alpha1", ns, "incidents", name)
    status_obj = incident.IncidentStatus.model_validate(obj["status"])
    assert bounds.size(status_obj) <= bounds.STATUS_BUDGET


REQUIRED: dict[str, Any] = {
    "version": st.sampled_from([None, 4, "3", "", [], {}]),
    "groupKey": st.sampled_from([None, "", 1, [], {"k": "v"}]),
    "status": st.sampled_from([None, "", "FIRING", "ok", 0, []]),
    "alerts": st.sampled_from([None, [], {}, "a", 1]),
    "alerts[0]": st.sampled_from([None, "x", 1, [], True]),
    "alerts[0].status": st.sampled_from([None, "", "pending", 1, {}]),
    "alerts[0].labels": st.sampled_from([None, {}, [], "a=b", {"a": 1}, {"": "x"}]),
}
DELETABLE = ("version", "groupKey", "status", "alerts", "alerts[0].status", "alerts[0].labels")


def _set(body: dict[str, Any], field: str, value: Any, delete: bool) -> None:
    parts = [int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]", field) if p]
    parent: Any = body
    for p in parts[:-1]:
        parent = parent[p]
    if delete:
        del parent[parts[-1]]
    else:
        parent[parts[-1]] = value


@FUZZ
@given(data=st.data(), ns=NAMESPACES, field=st.sampled_from(sorted(REQUIRED)))
def test_each_broken_required_field_is_a_400_naming_it(
    real: tuple[Served, Any], data: st.DataObject, ns: str, field: str
) -> None:
    body = valid(data.draw(st.integers(1, 3)))
    body["commonLabels"]["namespace"] = ns
    delete = field in DELETABLE and data.draw(st.booleans(), label="delete")
    _set(body, field, None if delete else data.draw(REQUIRED[field], label="value"), delete)
    status, answer = real[0].post(json.dumps(body).encode())
    assert status == 400, (field, status, answer)
    assert answer["field"] == field, (field, answer)


@FUZZ
@given(data=st.data(), ns=NAMESPACES, n=st.integers(1, 3), state=st.sampled_from(["firing", "resolved"]))
def test_any_one_field_broken_is_written_or_refused_never_a_5xx(
    real: tuple[Served, Any], data: st.DataObject, ns: str, n: int, state: str
) -> None:
    body = valid(n, state)
    body["groupKey"] = data.draw(st.text(min_size=1, max_size=40), label="groupKey")
    for a in body["alerts"]:
        a["labels"]["namespace"] = ns
        if state == "resolved":
            a["endsAt"] = "2026-03-10T09:30:00Z"
    break_one(body, data)
    check(real, body, *real[0].post(json.dumps(copy.deepcopy(body)).encode()))


@FUZZ
@given(
    labels=st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=30), max_size=6),
    ns=st.lists(NAMESPACES, min_size=1, max_size=3),
    size=st.integers(1, 40),
    big=st.integers(0, 4000),
)
def test_well_formed_payloads_are_written_in_the_alerts_namespace_under_budget(
    real: tuple[Served, Any], labels: dict[str, str], ns: list[str], size: int, big: int
) -> None:
    body = valid(size)
    body["groupKey"] = json.dumps([labels, ns, size])
    for i, a in enumerate(body["alerts"]):
        a["labels"] = {**labels, "alertname": "Fuzz", "namespace": ns[i % len(ns)], "i": str(i)}
        a["annotations"] = {"summary": "s" * big}
    body["commonLabels"] = {"alertname": "Fuzz", **({"namespace": ns[0]} if len(set(ns)) == 1 else {})}
    status, answer = real[0].post(json.dumps(body).encode())
    assert status == 200, answer
    check(real, body, status, answer)


def test_the_biggest_group_is_kept_not_dropped(real: tuple[Served, Any]) -> None:
    body = valid(1500)
    body["groupKey"] = "biggest-outage"
    for a in body["alerts"]:
        a["labels"]["namespace"] = ALERT_NAMESPACES[0]
        a["annotations"] = {"summary": "x" * 2000}
    raw = json.dumps(body).encode()
    assert len(raw) > 1024 * 1024  # over the old 1 MiB limit, which answered 413 (never retried)
    status, answer = real[0].post(raw)
    assert status == 200, answer
    ns, name = answer["incident"].split("/")
    obj = real[1].get_namespaced_custom_object("oncall.dev", "v1alpha1", ns, "incidents", name)
    assert obj["status"]["truncatedAlerts"] == 500 and obj["status"]["occurrences"] == 1000
    check(real, body, status, answer)


def test_new_incidents_per_namespace_are_limited_with_retry_after(real: tuple[Served, Any]) -> None:
    served, _ = real
    flow.NEW_INCIDENTS = ratelimit.Buckets(per_minute=1, burst=2)
    try:
        codes = []
        for i in range(3):
            body = valid(1)
            body["groupKey"] = f"storm-{i}"
            body["alerts"][0]["labels"]["namespace"] = ALERT_NAMESPACES[1]
            body["commonLabels"]["namespace"] = ALERT_NAMESPACES[1]
            codes.append(served.post(json.dumps(body).encode()))
        assert [c for c, _ in codes] == [200, 200, 429]
        assert "retry" in codes[2][1]["error"]
        again = valid(1)
        again["groupKey"] = "storm-0"  # an update of an existing Incident is never limited
        again["alerts"][0]["labels"]["namespace"] = again["commonLabels"]["namespace"] = ALERT_NAMESPACES[1]
        assert served.post(json.dumps(again).encode())[0] == 200
    finally:
        flow.NEW_INCIDENTS = ratelimit.Buckets(per_minute=1e9, burst=1e9)
