"""What a cache store keeps, and that a write-through copy is never replaced by an older event.

The stores are fed by real watches in the e2e tests; here only their bookkeeping, which needs
no API server: the events and copies are handed to the store directly.
"""

from typing import Any

from oncall_operator.adapters import caches
from oncall_operator.domain import workload

MANAGED = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]


def deployment(rv: str, limit: str = "100Mi", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "u1",
            "generation": 3,
            "resourceVersion": rv,
            "labels": {"app": "web"},
            "annotations": {"team": "shop"},
            "managedFields": MANAGED,
            **meta,
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "limit": limit}]}}},
        "status": {"replicas": 1, "updatedReplicas": 1, "conditions": [{"type": "Available"}]},
    }


def store() -> caches.Store:
    s = caches.Store("deployments", "/apis/apps/v1/deployments", "Deployment", "apps/v1", caches.trim_workload)
    s.synced = True
    return s


def test_an_unsynced_store_vouches_for_nothing() -> None:
    s = store()
    s.synced = False
    s.event("ADDED", deployment("5"))
    assert s.get("shop", "web") == (False, None)


def test_a_workload_is_kept_trimmed_with_what_the_plan_and_the_rollout_check_read() -> None:
    s = store()
    s.event("ADDED", deployment("5"))
    known, obj = s.get("shop", "web")
    assert known and obj is not None
    assert (obj["kind"], obj["apiVersion"]) == ("Deployment", "apps/v1")
    assert "managedFields" not in obj["metadata"] and obj["metadata"]["annotations"] == {"team": "shop"}
    assert obj["status"] == {"replicas": 1, "updatedReplicas": 1}
    assert s.get("shop", "other") == (True, None)  # synced and absent: it does not exist


def test_a_daemonset_keeps_what_its_rollout_check_reads() -> None:
    s = caches.Store("daemonsets", "/apis/apps/v1/daemonsets", "DaemonSet", "apps/v1", caches.trim_workload)
    s.synced = True
    counts = {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 1}
    ds = deployment("5") | {
        "status": {"observedGeneration": 3, "numberAvailable": 2, "numberMisscheduled": 0, **counts}
    }
    s.event("ADDED", ds)
    known, obj = s.get("shop", "web")
    assert known and obj is not None and obj["kind"] == "DaemonSet"
    assert obj["status"] == {"observedGeneration": 3, "numberAvailable": 2, **counts}
    assert not workload.rollout_complete(obj)  # one of two pods still runs the old template


def test_an_event_older_than_a_write_through_copy_is_dropped() -> None:
    s = store()
    s.event("ADDED", deployment("5"))
    s.put(deployment("9", limit="200Mi"))  # what our patch returned
    s.event("MODIFIED", deployment("7"))  # a status update from before the patch, delivered late
    assert s.get("shop", "web")[1]["spec"]["template"]["spec"]["containers"][0]["limit"] == "200Mi"  # type: ignore[index]
    s.event("MODIFIED", deployment("9", limit="200Mi"))
    s.event("MODIFIED", deployment("11", limit="300Mi"))
    assert s.items["shop", "web"][0] == "11"
    s.put(deployment("10", limit="250Mi"))  # a copy older than what the watch told: ignored
    assert s.items["shop", "web"][0] == "11"
    s.event("DELETED", deployment("12", limit="300Mi"))
    assert s.get("shop", "web") == (True, None)


def test_a_resource_version_that_is_not_an_integer_disables_write_through_only() -> None:
    s = store()
    s.event("ADDED", deployment("a1"))
    s.put(deployment("b2", limit="200Mi"))
    assert s.items["shop", "web"][0] == "a1"
    s.event("MODIFIED", deployment("c3", limit="300Mi"))
    assert s.items["shop", "web"][0] == "c3"


def test_namespaces_keep_only_their_annotations() -> None:
    c = caches.Caches()
    ns = {"metadata": {"name": "shop", "resourceVersion": "4", "labels": {"a": "b"}, "annotations": {"x": "y"}}}
    assert c.namespace_annotations("shop") is None  # not listed yet: the caller GETs
    c.namespaces.synced = True
    c.namespaces.event("ADDED", ns)
    assert c.namespace_annotations("shop") == {"x": "y"}
    assert c.namespace_annotations("gone") == {}
    assert "labels" not in c.namespaces.items["", "shop"][1]


def test_preconditions_pin_identity_spec_labels_and_the_annotations_the_plan_reads() -> None:
    ops = caches.preconditions(deployment("5", annotations={"team": "shop", "oncall.dev/remediated-kill": "k1"}))
    assert ops == [
        {"op": "test", "path": "/metadata/uid", "value": "u1"},
        {"op": "test", "path": "/metadata/generation", "value": 3},
        {"op": "test", "path": "/metadata/labels", "value": {"app": "web"}},
        {"op": "test", "path": "/metadata/annotations/oncall.dev~1remediation", "value": None},  # absent
        {"op": "test", "path": "/metadata/annotations/oncall.dev~1remediated-kill", "value": "k1"},
        {"op": "test", "path": "/metadata/annotations/argocd.argoproj.io~1tracking-id", "value": None},
    ]
    bare = deployment("5")
    del bare["metadata"]["annotations"], bare["metadata"]["labels"]
    assert caches.preconditions(bare)[2:] == [
        {"op": "test", "path": "/metadata/labels", "value": None},
        {"op": "test", "path": "/metadata/annotations", "value": None},
    ]


def test_scopes_give_a_store_per_watched_namespace_and_none_for_a_pattern() -> None:
    c = caches.Caches(("team-a", "team-*"))
    assert sorted(c.workloads) == [
        ("CronJob", "team-a"),
        ("DaemonSet", "team-a"),
        ("Deployment", "team-a"),
        ("StatefulSet", "team-a"),
    ]
    assert c.workloads["CronJob", "team-a"].path == "/apis/batch/v1/namespaces/team-a/cronjobs"
    assert c.workloads["DaemonSet", "team-a"].path == "/apis/apps/v1/namespaces/team-a/daemonsets"
    assert c.workload("Deployment", "team-b", "web") == (False, None)
    assert c.incidents["team-a"].selector == "oncall.dev/trigger=OOMKilled"
    assert c.incidents["team-a"].path == "/apis/oncall.dev/v1alpha1/namespaces/team-a/incidents"
    many = caches.Caches(tuple(f"team-{i}" for i in range(40)))
    assert len(many.stores()) == 6 * caches.MAX_NAMESPACES + 1  # the connection pool stays for the hot path


def test_vpas_are_known_only_once_listed_and_kept_to_what_the_plan_reads() -> None:
    c = caches.Caches(("team-a",))
    assert c.vpas_in("team-a") is None  # not listed (or not served): the caller lists them itself
    store = c.vpas["team-a"]
    assert store.path == "/apis/autoscaling.k8s.io/v1/namespaces/team-a/verticalpodautoscalers"
    store.synced = True
    assert c.vpas_in("team-a") == []
    vpa = {
        "metadata": {"name": "web-vpa", "namespace": "team-a", "resourceVersion": "3", "managedFields": MANAGED},
        "spec": {"targetRef": {"kind": "Deployment", "name": "web"}, "updatePolicy": {"updateMode": "Auto"}},
        "status": {"recommendation": {"containerRecommendations": [{"containerName": "app"}]}},
    }
    store.event("ADDED", vpa)
    [kept] = c.vpas_in("team-a") or []
    assert kept == {"metadata": {"name": "web-vpa", "namespace": "team-a", "resourceVersion": "3"}, "spec": vpa["spec"]}
    assert workload.vpa_manager([kept], "Deployment", "web") == "VerticalPodAutoscaler web-vpa (updateMode Auto)"
    assert c.vpas_in("team-b") is None  # no store for it
