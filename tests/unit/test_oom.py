"""OOM kills are read from both container states and each kill gets one stable identity."""

from typing import Any

import pytest

from oncall_operator.domain import oom

UID = "0b5d8d0e-1111-2222-3333-444455556666"
OOM = {"reason": "OOMKilled", "exitCode": 137, "startedAt": "2026-01-05T09:00:00Z"}


def pod(*statuses: dict[str, Any], init: tuple[dict[str, Any], ...] = (), owner: str | None = "ReplicaSet") -> Any:
    meta: dict[str, Any] = {"name": "web-abc", "namespace": "shop", "uid": UID, "labels": {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner, "name": "web-5f", "uid": "rs-uid", "controller": True}
        ]
    containers = [{"name": "app", "resources": {"limits": {"memory": "256Mi"}, "requests": {"memory": "128Mi"}}}]
    return {
        "metadata": meta,
        "spec": {"containers": containers, "initContainers": [{"name": "migrate"}]},
        "status": {"qosClass": "Burstable", "containerStatuses": list(statuses), "initContainerStatuses": list(init)},
    }


def cs(restarts: int, state: dict[str, Any] | None = None, last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "app", "restartCount": restarts, "state": state or {"running": {}}, "lastState": last or {}}


def killed(finished: str, **extra: Any) -> dict[str, Any]:
    return {"terminated": {**OOM, "finishedAt": finished, **extra}}


T1, T2 = "2026-01-05T09:00:05Z", "2026-01-05T09:10:05Z"


@pytest.mark.parametrize(
    ("statuses", "keys"),
    [
        pytest.param([cs(0)], [], id="running, never killed"),
        pytest.param([cs(0, state=killed(T1))], [f"{UID}/app/{T1}"], id="terminated now"),
        pytest.param([cs(1, last=killed(T1))], [f"{UID}/app/{T1}"], id="restarted after the kill"),
        pytest.param(
            [cs(1, state=killed(T2), last=killed(T1))],
            [f"{UID}/app/{T1}", f"{UID}/app/{T2}"],
            id="two kills, oldest first",
        ),
        pytest.param(
            [cs(3, last={"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": T1}})], [], id="other exit"
        ),
        pytest.param(
            [cs(2, last={"terminated": {**OOM, "containerID": "containerd://c1"}})],
            [f"{UID}/app/containerd://c1"],
            id="no finishedAt: container ID",
        ),
        pytest.param([cs(2, last={"terminated": dict(OOM)})], [f"{UID}/app/restart-2"], id="neither: restart count"),
    ],
)
def test_kills_and_their_keys(statuses: list[dict[str, Any]], keys: list[str]) -> None:
    facts = oom.read_pod(pod(*statuses))
    assert [k.key for k in facts.kills] == keys
    assert oom.has_oom(pod(*statuses)["status"]) == bool(keys)


def test_one_kill_seen_terminated_then_in_backoff_then_restarted_has_one_key() -> None:
    # restartCount is N while terminated or in back-off and N+1 once running: not part of the key
    seen = [
        pod(cs(4, state=killed(T1))),
        pod(cs(4, state={"waiting": {"reason": "CrashLoopBackOff"}}, last=killed(T1))),
        pod(cs(5, last=killed(T1))),
    ]
    assert len({k.key for p in seen for k in oom.read_pod(p).kills}) == 1


def test_facts_carry_what_the_container_ran_with() -> None:
    [k] = oom.read_pod(pod(cs(1, last=killed(T1)))).kills
    assert (k.container, k.init, k.restart_count, k.finished_at, k.exit_code, k.limit, k.request) == (
        "app",
        False,
        1,
        T1,
        137,
        "256Mi",
        "128Mi",
    )


def test_init_container_kills_are_read_too() -> None:
    init = {"name": "migrate", "restartCount": 0, "state": killed(T1), "lastState": {}}
    [k] = oom.read_pod(pod(cs(0), init=(init,))).kills
    assert (k.container, k.init, k.limit) == ("migrate", True, None)


@pytest.mark.parametrize(
    ("owner", "kind"), [("ReplicaSet", "ReplicaSet"), ("StatefulSet", "StatefulSet"), (None, None)]
)
def test_controller_owner(owner: str | None, kind: str | None) -> None:
    found = oom.read_pod(pod(cs(0), owner=owner)).owner
    assert (found.kind if found else None) == kind


def test_has_oom_tolerates_missing_fields() -> None:
    assert not oom.has_oom(None)
    assert not oom.has_oom({})
    assert not oom.has_oom({"containerStatuses": [{"name": "a"}]})
