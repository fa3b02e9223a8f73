"""The remediation's watch-fed caches never make it act on a stale picture.

The operator answers a kill from caches of workloads, namespaces and Incidents kept by watches
(``adapters/caches.py``). These tests change what it reads right before the kill, so the cache
may not have the change yet when the kill arrives, and check that the outcome is the one the
latest state calls for: the patch carries preconditions (uid, generation, labels, annotations)
that make the API server refuse it on an object that changed; any decision other than a patch
is made again on a fresh read; a cached Incident is trusted only when it has recorded the last
change the operator made to the workload (its ``oncall.dev/remediated-kill`` marker).

Same set-up as ``test_oom_remediation.py`` (its fixtures): a real control plane, the test plays the kubelet.
"""

from typing import Any

import pytest

from tests.e2e import test_oom_remediation as same_setup
from tests.e2e.oom_support import Cluster, memory, runbook, workload

pytestmark = pytest.mark.e2e
D = "Deployment"
# the same fixtures (a module-scoped operator of this module's own, every pod checked untouched)
cluster, home, op, pods_untouched = same_setup.cluster, same_setup.home, same_setup.op, same_setup.pods_untouched


def first(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"]["containers"][0])


def test_a_workload_changed_right_before_the_kill_is_patched_from_its_latest_state(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(namespace, runbook(), workload(D, "web", "200Mi"))
    pod = cluster.wait_pod(namespace, "app=web")
    cluster.settled(D, namespace, "web")
    # a person edits the template and the Deployment's annotations, and the old pod dies at once
    env = {"op": "add", "path": "/spec/template/spec/containers/0/env", "value": [{"name": "MODE", "value": "lean"}]}
    team = {"op": "add", "path": "/metadata/annotations/team", "value": "shop"}
    cluster.apps.patch_namespaced_deployment("web", namespace, [env, team])
    cluster.kill(namespace, pod)
    raised = cluster.wait_limit(D, namespace, "web", "300Mi")
    assert first(raised)["env"] == [{"name": "MODE", "value": "lean"}]
    assert raised["metadata"]["annotations"]["team"] == "shop"
    inc = cluster.wait_incident(namespace, D, "web", "raised", phase="Mitigated", occurrences=1)
    [action] = inc["status"]["actions"]
    assert (action["state"], action["before"], action["after"]) == (
        "Applied",
        "limits.memory=200Mi",
        "limits.memory=300Mi",
    )

    # a person raises the limit by hand, and a pod of the previous template dies right after:
    # that kill is superseded; a plan on a cached 300Mi must not raise "300Mi -> 400Mi" over it
    old = cluster.wait_pod(namespace, "app=web", limit="300Mi")
    cluster.make_ready(namespace, old)  # available: the controller keeps it until a newer pod is
    by_hand = [{"op": "replace", "path": "/spec/template/spec/containers/0/resources/limits/memory", "value": "450Mi"}]
    cluster.apps.patch_namespaced_deployment("web", namespace, by_hand)
    cluster.kill(namespace, old)
    inc = cluster.wait_incident(namespace, D, "web", "superseded", occurrences=2)
    assert "Superseded" in [e["type"] for e in inc["status"]["timeline"]]
    assert inc["status"]["guardrails"]["raises"] == 1 and len(inc["status"]["actions"]) == 1
    assert memory(first(cluster.workload(D, namespace, "web"))) == "450Mi"


def test_a_namespace_opt_out_is_honoured_both_ways(cluster: Cluster, namespace: str) -> None:
    """The namespace's annotation comes from the watch: the plan sees it as soon as its event is in.

    Staleness is bounded by the watch's delivery (and, every ~5 minutes, one reconnect);
    after an error the cache answers nothing until it has listed again, and reads go to the
    API. A refusal is always made again on a fresh read, so a stale cache can only make the
    operator act where an opt-out arrived within that delivery delay, as a GET made one round
    trip before the patch could.
    """
    cluster.apply(namespace, runbook(), workload(D, "web", "100Mi"))
    pod = cluster.wait_pod(namespace, "app=web")
    before = cluster.settled(D, namespace, "web")
    cluster.kubectl.run("annotate", "namespace", namespace, "oncall.dev/remediation=disabled")
    cluster.kill(namespace, pod)
    inc = cluster.wait_incident(namespace, D, "web", "opted out", occurrences=1, action="OptedOut")
    assert inc["status"]["actions"][0]["state"] == "Refused"
    cluster.assert_not_written_by_operator(D, namespace, "web", before)

    cluster.kubectl.run("annotate", "namespace", namespace, "oncall.dev/remediation-")
    cluster.kill(namespace, pod, restarts=2)
    cluster.wait_limit(D, namespace, "web", "200Mi")
    inc = cluster.wait_incident(namespace, D, "web", "applied", occurrences=2, action="Applied")
    assert [a["state"] for a in inc["status"]["actions"]] == ["Refused", "Applied"]


def test_the_cap_holds_for_kills_in_quick_succession(cluster: Cluster, namespace: str) -> None:
    """Each new pod is killed as soon as the controller makes it, without waiting for the Incident.

    The second raise's kill can arrive before the first raise is recorded; the per-workload lock
    and the write-through of the operator's own Incident writes make every plan count the raises
    before it, so the third kill meets ``maxRaises`` and nothing more is written to the workload.
    """
    rule = {"maxLimit": "1Gi", "maxRaises": 2}
    cluster.apply(namespace, runbook(rule=rule), workload(D, "leaky", "100Mi"))
    for limit in ("100Mi", "200Mi", "300Mi"):
        cluster.kill(namespace, cluster.wait_pod(namespace, "app=leaky", limit=limit))
    last = cluster.wait_pod(namespace, "app=leaky", limit="300Mi")
    cluster.kill(namespace, last, restarts=2)  # the same pod again, right away
    inc = cluster.wait_incident(namespace, D, "leaky", "refused at maxRaises", occurrences=4)
    status = inc["status"]
    assert status["guardrails"]["raises"] == 2
    assert [(a["state"], a["after"]) for a in status["actions"]] == [
        ("Applied", "limits.memory=200Mi"),
        ("Applied", "limits.memory=300Mi"),
        ("Refused", "limits.memory=400Mi"),
        ("Refused", "limits.memory=400Mi"),
    ]
    assert all(a["reason"].startswith("RaiseLimitReached:") for a in status["actions"][2:])
    assert memory(first(cluster.workload(D, namespace, "leaky"))) == "300Mi"
